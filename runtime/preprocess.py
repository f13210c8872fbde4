"""Turn one ensemble request into the tensors the LLM and the predictor need, or a clear error.

Errors here reject that request alone (the Triton model answers it with an error response); the
server and the other requests in the same batch are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from runtime.llama3_tokenizer import Tokenizer


class BadRequest(ValueError):
    """A client error; the message is returned to the client as is."""


@dataclass(frozen=True)
class Limits:
    """The engine's limits (TensorRT-LLM: the engine's max_input_len / max_seq_len)."""

    max_input_len: int
    max_output_len: int


def decode_utf8(raw: bytes | str, name: str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{name} is not valid UTF-8 (byte {exc.start})") from None


def decode_text(raw: bytes | str, name: str = "text_input") -> str:
    text = decode_utf8(raw, name)
    if not text.strip():
        raise BadRequest(f"{name} is empty")
    return text


def check_max_tokens(max_tokens: int, limits: Limits) -> int:
    if max_tokens <= 0:
        raise BadRequest(f"max_tokens must be positive, got {max_tokens}")
    if max_tokens > limits.max_output_len:
        raise BadRequest(f"max_tokens {max_tokens} exceeds the engine limit of {limits.max_output_len}")
    return int(max_tokens)


def encode_prompt(tokenizer: Tokenizer, text: str, limits: Limits, add_bos: bool = True) -> np.ndarray:
    ids = tokenizer.encode(text)
    if add_bos:
        ids = [tokenizer.bos_id] + ids
    if len(ids) > limits.max_input_len:
        raise BadRequest(
            f"prompt is {len(ids)} tokens, over the engine's input limit of {limits.max_input_len}"
        )
    return np.asarray(ids, dtype=np.int32)


def check_prompt_ids(ids: np.ndarray, vocab_size: int, limits: Limits) -> np.ndarray:
    """Token ids a caller sends in place of text (`prompt_token_ids`), used as they are: the
    OpenAI server sends a chat template's ids this way, special tokens included, which text can
    never produce (special-token text in a prompt is encoded as text). No BOS is added."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        raise BadRequest("prompt_token_ids is empty")
    if not np.issubdtype(ids.dtype, np.integer):
        raise BadRequest(f"prompt_token_ids must be integers, got {ids.dtype}")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise BadRequest(f"prompt_token_ids holds ids outside the vocabulary [0, {vocab_size})")
    if ids.size > limits.max_input_len:
        raise BadRequest(f"prompt is {ids.size} tokens, over the engine's input limit of {limits.max_input_len}")
    return ids.astype(np.int32)


def word_list(tokenizer: Tokenizer, words: Sequence[bytes | str]) -> np.ndarray:
    """TensorRT-LLM's `[2, N]` word-list format: row 0 the concatenated token ids of all words,
    row 1 the end offset of each word, padded with -1. Empty input gives shape [2, 0]."""
    ids: list[int] = []
    offsets: list[int] = []
    for word in words:
        text = decode_utf8(word, "stop/bad word")  # "\n" is a common stop word: no blank check
        ids.extend(tokenizer.encode(text))
        offsets.append(len(ids))
    width = max(len(ids), len(offsets))
    out = np.full((2, width), -1, dtype=np.int32)
    out[0, : len(ids)] = ids
    out[0, len(ids):] = 0
    out[1, : len(offsets)] = offsets
    return out
