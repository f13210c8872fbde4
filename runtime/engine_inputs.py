"""What the scheduler adds to a request's engine inputs, so that both targets end and sample alike.

Two gaps between what clients send and what TensorRT-LLM does with it:

- **Two end tokens.** Llama-3-Instruct ends a turn with `<|eot_id|>` (128009) and a text with
  `<|end_of_text|>` (128001); Meta's generation config stops on both. TensorRT-LLM takes one
  `end_id` (preprocessing sends 128009) plus `stop_words_list`, which carries only what the client
  typed. So every end token other than the request's `end_id` is added here as a one-token stop
  word, on every path (text_input, prompt_token_ids, the OpenAI server's completions and chat: all
  reach the engine through the scheduler). TensorRT-LLM keeps a matched stop word in `output_ids`
  (its own LLM API trims it: `include_stop_str_in_output` defaults to False), whereas `end_id` is
  left out; the stand-in does the same. The added ids are therefore cut from the answer by the
  relay (`answer_tokens`): the client sees the same answer whichever token ended it.
- **Sampling defaults.** TensorRT-LLM's `runtime_top_k` / `runtime_top_p` default to 0 and 0.0,
  which its sampling setup turns into top-k 1: a request with only `temperature` decodes
  greedily. A client that sends a temperature above 0 asks for sampling (OpenAI's and vLLM's
  top_p default is 1.0), so `top_k` 0 / `top_p` 1.0 (the whole distribution at that temperature)
  are filled in when it sent neither. Without a temperature the request stays greedy on both
  targets (TensorRT-LLM's default, which the stand-in follows: engine.settings).

And the client's inputs the scheduler resolves rather than passes on (`resolve_inputs`): TensorRT-LLM
<= 0.14's names `random_seed` and `min_length` become the engine's `seed` and `min_tokens`, and what
this pipeline cannot serve is refused with a clear message (a 400) before the request queues.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from runtime.contracts import LLM, Scheduler
from runtime.preprocess import BadRequest
from runtime.triton_tensors import first_value
from runtime.word_lists import pack_words, unpack_words

# Meta's generation_config.json for Llama-3-8B/70B-Instruct: "eos_token_id": [128001, 128009].
LLAMA3_END_TOKENS = (128001, 128009)


def parse_token_ids(text: str) -> tuple[int, ...]:
    """A config parameter's comma-separated token ids ("128001,128009"; "" = none)."""
    return tuple(int(part) for part in text.replace(" ", "").split(",") if part)


def add_stop_tokens(word_list: np.ndarray | None, tokens: Iterable[int]) -> np.ndarray:
    """`word_list` (TensorRT-LLM's [1, 2, N] format, runtime.word_lists; None or empty: no words) with
    each of `tokens` appended as a one-token word, unless it is one already."""
    words = unpack_words(word_list)
    for token in tokens:
        if (int(token),) not in words:
            words.append((int(token),))
    return pack_words(words)[None]


def sampling_defaults(passed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`runtime_top_k` 0 / `runtime_top_p` 1.0 when a temperature above 0 came without either
    (module docstring); nothing otherwise."""
    temperature = first_value(passed.get(LLM.TEMPERATURE))
    if temperature is None or float(temperature) <= 0:
        return {}
    if passed.get(LLM.RUNTIME_TOP_K) is not None or passed.get(LLM.RUNTIME_TOP_P) is not None:
        return {}
    return {LLM.RUNTIME_TOP_K: np.array([[0]], dtype=np.int32), LLM.RUNTIME_TOP_P: np.array([[1.0]], dtype=np.float32)}


def engine_inputs(passed: Mapping[str, np.ndarray],
                  end_tokens: Sequence[int] = LLAMA3_END_TOKENS) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """The pass-through inputs as the engine gets them, and the end tokens added as stop words
    (to be cut from the answer: `answer_tokens`)."""
    out = {**passed, **sampling_defaults(passed)}
    end_id = first_value(passed.get(LLM.END_ID))
    added = tuple(int(t) for t in end_tokens if end_id is None or int(t) != int(end_id))
    if added:
        out[LLM.STOP_WORDS_LIST] = add_stop_tokens(passed.get(LLM.STOP_WORDS_LIST), added)
    return out, added


def answer_tokens(chunk: list[int], end_tokens: Sequence[int]) -> list[int]:
    """`chunk` up to (not including) an added end token: the engine stops there, so it can only be
    the answer's last token, and it is not part of the answer (as `end_id` is not)."""
    for i, token in enumerate(chunk):
        if token in end_tokens:
            return chunk[:i]
    return chunk


# Older names -> the engine's (TensorRT-LLM 1.0's); when a client sends both, the engine's name wins.
ALIASES = {Scheduler.RANDOM_SEED: LLM.SEED, Scheduler.MIN_LENGTH: LLM.MIN_TOKENS}


def resolve_inputs(passed: Mapping[str, np.ndarray], resolved: Mapping[str, np.ndarray],
                   max_beam_width: int = 1) -> dict[str, np.ndarray]:
    """The engine's pass-through inputs with the client's older aliases folded in; raises BadRequest
    for what neither this pipeline nor the engine serves (`resolved`: Scheduler.RESOLVED inputs sent)."""
    out = dict(passed)
    for alias, name in ALIASES.items():
        if alias in resolved and name not in out:
            out[name] = resolved[alias]
    for flag in (Scheduler.RETURN_CONTEXT_LOGITS, Scheduler.RETURN_GENERATION_LOGITS):
        if first_value(resolved.get(flag), False):
            raise BadRequest(f"{flag} is not supported: the scheduler relays tokens and log-probs, not logits")
    sequences = first_value(resolved.get(Scheduler.NUM_RETURN_SEQUENCES), 1)
    if sequences != 1:
        raise BadRequest(f"num_return_sequences must be 1 (one sequence per request), got {sequences}")
    beam = first_value(out.get(LLM.BEAM_WIDTH), 1)
    if not 1 <= beam <= max_beam_width:
        raise BadRequest(f"beam_width {beam} is not supported: the engine's max_beam_width is {max_beam_width}")
    min_tokens = first_value(out.get(LLM.MIN_TOKENS), 0)
    if min_tokens < 0:
        raise BadRequest(f"min_tokens must be >= 0, got {min_tokens}")
    repetition = first_value(out.get(LLM.REPETITION_PENALTY), 1.0)
    if not (math.isfinite(repetition) and repetition > 0):
        raise BadRequest(f"repetition_penalty must be a finite number > 0, got {repetition}")
    for name in (LLM.PRESENCE_PENALTY, LLM.FREQUENCY_PENALTY, LLM.LEN_PENALTY):
        value = first_value(out.get(name), 0.0)
        if not math.isfinite(value):
            raise BadRequest(f"{name} must be finite, got {value}")
    return out


def includes_prompt(resolved: Mapping[str, np.ndarray], streaming: bool) -> bool:
    """TensorRT-LLM's `exclude_input_in_output` false: a non-streaming answer starts with the prompt's
    tokens (streamed answers never do, there as here)."""
    return not streaming and not bool(first_value(resolved.get(Scheduler.EXCLUDE_INPUT_IN_OUTPUT), True))
