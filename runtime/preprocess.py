"""Turn one ensemble request into the tensors the LLM and the predictor need, or a clear error.

`Preprocessor.prepare` is the `preprocessing` model's whole request check, in its order, free of
Triton: the model reads the request's tensors into a dict and answers with what this returns.
Errors here reject that request alone (the Triton model answers it with an error response); the
server and the other requests in the same batch are unaffected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from runtime.contracts import Preprocessing
from runtime.llama3_tokenizer import Tokenizer
from runtime.triton_tensors import first_value
from runtime.word_lists import pack_words


class BadRequest(ValueError):
    """A client error; the message is returned to the client as is."""


@dataclass(frozen=True)
class Limits:
    """The engine's limits (TensorRT-LLM: the engine's max_input_len / max_seq_len), and the
    request-size bounds that keep one request from costing the server more than a request should:
    the prompt's bytes are checked before it is tokenized (tokenizing 50 MB takes seconds), and
    stop/bad word lists are bounded in count and in bytes per word."""

    max_input_len: int
    max_output_len: int
    max_prompt_bytes: int = 1 << 17
    max_words: int = 64
    max_word_bytes: int = 256


INT32_MAX = 2**31 - 1


def decode_utf8(raw: bytes | str, name: str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{name} is not valid UTF-8 (byte {exc.start})") from None


def check_prompt_bytes(raw: bytes | str, limits: Limits, name: str = "text_input") -> None:
    """Bound the prompt by its size before any work is spent on it (decoding, tokenizing)."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > limits.max_prompt_bytes:
        raise BadRequest(f"{name} is {size} bytes, over the limit of {limits.max_prompt_bytes} bytes")


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


def check_token_id(value: int, vocab_size: int, name: str) -> int:
    """An id the engine will compare tokens with (end_id, pad_id) must name a token."""
    if not 0 <= int(value) < vocab_size:
        raise BadRequest(f"{name} {value} is outside the vocabulary [0, {vocab_size})")
    return int(value)


def check_sampling(temperature: float | None, top_k: int | None, top_p: float | None) -> None:
    """Sampling parameters the engine can use: finite temperature >= 0, top_k >= 0 (0: off),
    0 < top_p <= 1. None: the client left it out."""
    if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
        raise BadRequest(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and not 0 <= top_k <= INT32_MAX:
        raise BadRequest(f"top_k must be >= 0 (0 turns it off), got {top_k}")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise BadRequest(f"top_p must be in (0, 1], got {top_p}")


def check_words(words: Sequence[bytes | str], limits: Limits, name: str = "stop_words") -> None:
    """Bound a stop/bad word list before it is tokenized: every word costs the engine a check per step."""
    if len(words) > limits.max_words:
        raise BadRequest(f"{name} holds {len(words)} words, over the limit of {limits.max_words}")
    for word in words:
        size = len(word.encode("utf-8")) if isinstance(word, str) else len(word)
        if size > limits.max_word_bytes:
            raise BadRequest(f"{name} holds a word of {size} bytes, over the limit of {limits.max_word_bytes} bytes")


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
    """TensorRT-LLM's `[2, N]` word-list format (runtime.word_lists) of the tokenized words. Empty
    input gives shape [2, 0]."""
    # "\n" is a common stop word: no blank check
    return pack_words([tokenizer.encode(decode_utf8(word, "stop/bad word")) for word in words])


def embedding_bias(tokenizer: Tokenizer, words: Sequence[bytes | str], weights: np.ndarray | None,
                   limits: Limits) -> np.ndarray:
    """TensorRT-LLM's `embedding_bias`: a [vocab] FP32 vector with each word's weight added at each of
    its tokens' ids (a word of several tokens biases all of them), for the engine to add to its logits.
    No words: an empty vector, which the scheduler does not pass on."""
    weights = np.zeros(0, np.float32) if weights is None else np.asarray(weights, np.float32).reshape(-1)
    if len(words) != weights.size:
        raise BadRequest(f"embedding_bias_words has {len(words)} words but embedding_bias_weights "
                         f"{weights.size} weights")
    check_words(words, limits, "embedding_bias_words")
    if not words:
        return np.zeros(0, np.float32)
    if not np.all(np.isfinite(weights)):
        raise BadRequest("embedding_bias_weights must be finite")
    bias = np.zeros(tokenizer.vocab_size, np.float32)
    for word, weight in zip(words, weights):
        for token in tokenizer.encode(decode_utf8(word, "embedding_bias_words")):
            bias[token] += weight
    return bias


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check: preprocessing's outputs but the score (runtime.contracts
    names), and the prompt's ids for the predictor, which scores the whole batch at once."""

    tensors: dict[str, np.ndarray]
    predictor_ids: list[int]


class Preprocessor:
    """The checks of one request, cheapest and most telling first (its size before any decoding,
    the text before tokenizing it), then its tensors for the scheduler."""

    def __init__(self, tokenizer: Tokenizer, limits: Limits, add_bos: bool,
                 predictor_ids: Callable[[str], list[int]]) -> None:
        self.tokenizer = tokenizer
        self.limits = limits
        self.add_bos = add_bos
        self.predictor_ids = predictor_ids  # the predictor's own tokenizer

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Prepared:
        """`inputs`: the request's tensors by preprocessing's input names (absent = not sent).
        Raises BadRequest with the client's message."""
        P = Preprocessing
        queries = np.asarray(inputs[P.QUERY]).reshape(-1)
        if queries.size != 1:
            raise BadRequest(f"send one prompt per request (got a batch of {queries.size})")
        check_prompt_bytes(queries[0], self.limits)  # before any work is spent on it
        text = decode_text(queries[0])
        max_tokens = check_max_tokens(int(first_value(inputs[P.REQUEST_OUTPUT_LEN])), self.limits)
        if inputs.get(P.PROMPT_TOKEN_IDS) is None:
            input_ids = encode_prompt(self.tokenizer, text, self.limits, self.add_bos)
        else:
            input_ids = check_prompt_ids(inputs[P.PROMPT_TOKEN_IDS], self.tokenizer.vocab_size, self.limits)
        vocab = self.tokenizer.vocab_size
        end_id = check_token_id(first_value(inputs.get(P.END_ID), self.tokenizer.eot_id), vocab, "end_id")
        pad_id = check_token_id(first_value(inputs.get(P.PAD_ID), self.tokenizer.pad_id), vocab, "pad_id")
        bad = self._words(inputs.get(P.BAD_WORDS_DICT), "bad_words")
        stop = self._words(inputs.get(P.STOP_WORDS_DICT), "stop_words")
        bias = embedding_bias(self.tokenizer, _words_sent(inputs.get(P.EMBEDDING_BIAS_WORDS)),
                              inputs.get(P.EMBEDDING_BIAS_WEIGHTS), self.limits)
        tensors = {
            P.INPUT_ID: input_ids[None, :],
            P.REQUEST_INPUT_LEN: np.array([[input_ids.size]], dtype=np.int32),
            P.REQUEST_OUTPUT_LEN: np.array([[max_tokens]], dtype=np.int32),
            P.BAD_WORDS_IDS: bad[None],
            P.STOP_WORDS_IDS: stop[None],
            P.OUT_END_ID: np.array([[end_id]], dtype=np.int32),
            P.OUT_PAD_ID: np.array([[pad_id]], dtype=np.int32),
            P.EMBEDDING_BIAS: bias[None],
        }
        return Prepared(tensors, self.predictor_ids(text))

    def _words(self, tensor: np.ndarray | None, name: str) -> np.ndarray:
        words = _words_sent(tensor)
        check_words(words, self.limits, name)
        return word_list(self.tokenizer, words)


def _words_sent(tensor: np.ndarray | None) -> list:
    """A word-list input's words (any batch shape), empty ones dropped; none when it was not sent."""
    return [] if tensor is None else [w for w in np.asarray(tensor).reshape(-1) if len(w)]
