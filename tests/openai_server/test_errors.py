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


def test_each_error_has_openais_shape_status_type_and_code():
    from openai_server.errors import backend_unavailable, bad_request, internal, too_large, unauthorized, unknown_model

    def shape(error) -> tuple:
        return error.status, error.body(), error.headers, str(error)

    assert shape(too_large(1024)) == (413, {"error": {
        "message": "request body over 1024 bytes", "type": "invalid_request_error", "param": None,
        "code": "request_too_large"}}, {}, "413 invalid_request_error: request body over 1024 bytes")
    assert shape(unauthorized()) == (401, {"error": {
        "message": "missing or wrong API key (Authorization: Bearer <key>)", "type": "authentication_error",
        "param": None, "code": "invalid_api_key"}}, {},
        "401 authentication_error: missing or wrong API key (Authorization: Bearer <key>)")
    assert shape(unknown_model("gpt-4", "llama")) == (404, {"error": {
        "message": "the model 'gpt-4' does not exist; this server serves 'llama'", "type": "invalid_request_error",
        "param": None, "code": "model_not_found"}}, {},
        "404 invalid_request_error: the model 'gpt-4' does not exist; this server serves 'llama'")
    assert shape(backend_unavailable("connection refused", 3)) == (503, {"error": {
        "message": "Triton is not reachable: connection refused", "type": "service_unavailable", "param": None,
        "code": None}}, {"Retry-After": "3"}, "503 service_unavailable: Triton is not reachable: connection refused")
    assert shape(bad_request("no")) == (400, {"error": {"message": "no", "type": "invalid_request_error",
                                                        "param": None, "code": None}}, {},
                                        "400 invalid_request_error: no")
    assert shape(internal("boom"))[:3] == (500, {"error": {"message": "boom", "type": "internal_error",
                                                           "param": None, "code": None}}, {})


def test_overload_by_default_says_retry_after_one_second_and_errors_do_not_share_headers():
    error = from_ensemble("server overloaded")
    assert error.headers == {"Retry-After": "1"} and error.type == "server_overloaded" and error.code is None
    assert from_ensemble("oops").message == "oops" and from_ensemble("oops").type == "internal_error"
    assert from_ensemble("oops").headers == {} and from_ensemble("oops").headers is not from_ensemble("x").headers
