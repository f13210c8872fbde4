"""Ensemble error messages become the HTTP status the client deserves."""

from __future__ import annotations

import numpy as np
import pytest

from openai_server.errors import from_ensemble
from runtime.llama3_tokenizer import load_tokenizer
from runtime.preprocess import (
    BadRequest,
    Limits,
    check_max_tokens,
    check_prompt_bytes,
    check_prompt_ids,
    check_sampling,
    check_token_id,
    check_words,
    decode_text,
    encode_prompt,
)


def preprocessing_messages() -> list[str]:
    """Every client error runtime.preprocess reports, as the ensemble passes it on."""
    limits = Limits(max_input_len=2, max_output_len=10)
    calls = [
        lambda: decode_text(b""), lambda: decode_text(b"\xff"), lambda: check_max_tokens(0, limits),
        lambda: check_max_tokens(11, limits), lambda: encode_prompt(load_tokenizer(), "one two three", limits),
        lambda: check_prompt_ids(np.array([]), 10, limits), lambda: check_prompt_ids(np.array([99]), 10, limits),
        lambda: check_prompt_ids(np.array([0.5]), 10, limits),
        lambda: check_prompt_bytes(b"x" * (limits.max_prompt_bytes + 1), limits),
        lambda: check_token_id(10, 10, "end_id"),
        lambda: check_words([b"w"] * (limits.max_words + 1), limits),
        lambda: check_words([b"w" * (limits.max_word_bytes + 1)], limits, "bad_words"),
        lambda: check_sampling(float("nan"), None, None),
        lambda: check_sampling(None, -1, None),
        lambda: check_sampling(None, None, 2.0),
    ]
    messages = []
    for call in calls:
        with pytest.raises(BadRequest) as info:
            call()
        messages.append(f"in ensemble 'ensemble', {info.value}")
    return messages


def test_every_preprocessing_client_error_is_a_400():
    for message in preprocessing_messages():
        error = from_ensemble(message)
        assert (error.status, error.type, error.message) == (400, "invalid_request_error", message)


def test_overload_is_a_503_with_retry_after():
    error = from_ensemble("server overloaded: 10000 requests already waiting", retry_after_s=2)
    assert error.status == 503 and error.headers == {"Retry-After": "2"}
    assert error.body()["error"]["message"].startswith("server overloaded")


def test_queue_timeout_is_a_503_with_retry_after():
    error = from_ensemble("queue timeout: waited 30 s without a free slot; retry later", retry_after_s=1)
    assert error.status == 503 and error.headers == {"Retry-After": "1"}


def test_anything_else_is_internal():
    for message in ("generation failed: CUDA error", "preprocessing failed: KeyError('x')"):
        assert from_ensemble(message).status == 500
    assert from_ensemble("generation failed: request needs 9000 KV tokens, more than the cache holds (8192)").status == 400
    assert from_ensemble("generation failed: tensorrt_llm: prompt of 313 tokens exceeds max_input_len 256").status == 400
