"""Every tensor contract between our Triton models, declared once, as data.

Tensor names cross four processes (the entry model, preprocessing, the scheduler, the LLM) and the
ensemble's config. Each model's `model.py` names its tensors only through this module, the entry
model maps one model's outputs onto the next one's inputs with the maps below, and
`deploy.config_checks` holds every `config.pbtxt` (the ensemble's step maps included) to them, so
that a renamed tensor fails a static check instead of a request.

The entry interface and the LLM's are TensorRT-LLM's (its ensemble and its `tensorrt_llm` model);
the names between them are ours, spelled as TensorRT-LLM's preprocessing/postprocessing spell theirs.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


class Entry:
    """TensorRT-LLM's ensemble interface, served by `ensemble` and `ltr_bls` alike."""

    TEXT_INPUT = "text_input"
    PROMPT_TOKEN_IDS = "prompt_token_ids"
    MAX_TOKENS = "max_tokens"
    BAD_WORDS = "bad_words"
    STOP_WORDS = "stop_words"
    END_ID = "end_id"
    PAD_ID = "pad_id"
    TOP_K = "top_k"
    TOP_P = "top_p"
    TEMPERATURE = "temperature"
    SEED = "seed"
    STREAM = "stream"
    EXPECTED_OUTPUT_LEN = "expected_output_len"  # experiments only: read by the `oracle` policy alone
    INPUTS = (TEXT_INPUT, PROMPT_TOKEN_IDS, MAX_TOKENS, BAD_WORDS, STOP_WORDS, END_ID, PAD_ID, TOP_K, TOP_P,
              TEMPERATURE, SEED, STREAM, EXPECTED_OUTPUT_LEN)

    TEXT_OUTPUT = "text_output"
    OUTPUT_TOKEN_COUNT = "output_token_count"
    FINISH_REASON = "finish_reason"
    OUTPUTS = (TEXT_OUTPUT, OUTPUT_TOKEN_COUNT, FINISH_REASON)


class Preprocessing:
    """Text and words in, the LLM's ids and the predictor's score out (TensorRT-LLM's spelling)."""

    QUERY = "QUERY"
    PROMPT_TOKEN_IDS = "PROMPT_TOKEN_IDS"
    REQUEST_OUTPUT_LEN = "REQUEST_OUTPUT_LEN"  # an input and, checked, an output of the same name
    BAD_WORDS_DICT = "BAD_WORDS_DICT"
    STOP_WORDS_DICT = "STOP_WORDS_DICT"
    END_ID = "END_ID"
    PAD_ID = "PAD_ID"
    INPUTS = (QUERY, PROMPT_TOKEN_IDS, REQUEST_OUTPUT_LEN, BAD_WORDS_DICT, STOP_WORDS_DICT, END_ID, PAD_ID)

    INPUT_ID = "INPUT_ID"
    REQUEST_INPUT_LEN = "REQUEST_INPUT_LEN"
    BAD_WORDS_IDS = "BAD_WORDS_IDS"
    STOP_WORDS_IDS = "STOP_WORDS_IDS"
    OUT_END_ID = "OUT_END_ID"
    OUT_PAD_ID = "OUT_PAD_ID"
    SCORE = "SCORE"
    OUTPUTS = (INPUT_ID, REQUEST_INPUT_LEN, REQUEST_OUTPUT_LEN, BAD_WORDS_IDS, STOP_WORDS_IDS, OUT_END_ID,
               OUT_PAD_ID, SCORE)


class Predictor:
    """The length predictor (its ONNX file has the same names, with a [batch, 1] score)."""

    INPUT_IDS = "input_ids"
    ATTENTION_MASK = "attention_mask"
    INPUTS = (INPUT_IDS, ATTENTION_MASK)
    SCORE = "score"  # higher = longer predicted answer; a rank, not a length
    OUTPUTS = (SCORE,)


class LLM:
    """TensorRT-LLM's `tensorrt_llm` interface as the scheduler uses it: whatever the scheduler
    sends or reads is named here, and the GPU `tensorrt_llm` config is held to exactly these."""

    INPUT_IDS = "input_ids"
    INPUT_LENGTHS = "input_lengths"
    REQUEST_OUTPUT_LEN = "request_output_len"
    SENT_ON_EVERY_CALL = (INPUT_IDS, INPUT_LENGTHS, REQUEST_OUTPUT_LEN)

    END_ID = "end_id"
    PAD_ID = "pad_id"
    STOP_WORDS_LIST = "stop_words_list"
    BAD_WORDS_LIST = "bad_words_list"
    TEMPERATURE = "temperature"
    RUNTIME_TOP_K = "runtime_top_k"
    RUNTIME_TOP_P = "runtime_top_p"
    SEED = "seed"
    # Sampling and stopping inputs the scheduler forwards when its own client gave them.
    PASSED_THROUGH = (END_ID, PAD_ID, STOP_WORDS_LIST, BAD_WORDS_LIST, TEMPERATURE, RUNTIME_TOP_K, RUNTIME_TOP_P, SEED)

    # Each call carries one of these flags: a generation call streams, a `stop` call (same request id)
    # ends a live generation. So neither is sent on every call.
    STREAMING = "streaming"
    STOP = "stop"

    # TensorRT-LLM inputs only the CPU stand-in reads (the scheduler never sends them).
    BEAM_WIDTH = "beam_width"
    RANDOM_SEED = "random_seed"
    EXCLUDE_INPUT_IN_OUTPUT = "exclude_input_in_output"

    OUTPUT_IDS = "output_ids"
    SEQUENCE_LENGTH = "sequence_length"
    OUTPUTS_READ = (OUTPUT_IDS, SEQUENCE_LENGTH)


class Scheduler:
    """`ltr_scheduler`: the LLM's inputs plus the score in; token ids with their context out."""

    SCORE = "score"
    EXPECTED_OUTPUT_LEN = Entry.EXPECTED_OUTPUT_LEN
    INPUTS = (*LLM.SENT_ON_EVERY_CALL, SCORE, *LLM.PASSED_THROUGH, LLM.STREAMING, LLM.STOP, EXPECTED_OUTPUT_LEN)

    OUTPUT_IDS = LLM.OUTPUT_IDS  # the new tokens of this response
    SEQUENCE_LENGTH = LLM.SEQUENCE_LENGTH
    CONTEXT_IDS = "context_ids"  # the last tokens sent before, for incremental detokenization
    IS_FINAL = "is_final"
    FINISH_REASON = "finish_reason"  # "stop" | "length" | "cancelled" on the final response
    OUTPUTS = (OUTPUT_IDS, SEQUENCE_LENGTH, CONTEXT_IDS, IS_FINAL, FINISH_REASON)


class Postprocessing:
    """The scheduler's responses in, text out (TensorRT-LLM's spelling)."""

    TOKENS_BATCH = "TOKENS_BATCH"
    SEQUENCE_LENGTH = "SEQUENCE_LENGTH"
    CONTEXT_IDS = "CONTEXT_IDS"
    IS_FINAL = "IS_FINAL"
    FINISH_REASON = "FINISH_REASON"
    INPUTS = (TOKENS_BATCH, SEQUENCE_LENGTH, CONTEXT_IDS, IS_FINAL, FINISH_REASON)

    OUTPUT = "OUTPUT"
    OUTPUT_TOKEN_COUNT = "OUTPUT_TOKEN_COUNT"
    FINISH_REASON_OUT = "FINISH_REASON_OUT"
    OUTPUTS = (OUTPUT, OUTPUT_TOKEN_COUNT, FINISH_REASON_OUT)


# The pipeline's wiring, one map per hop (the ensemble's step maps say the same; config_checks holds
# them equal). Keys are the producing side's names, values the consuming side's.
ENTRY_TO_PREPROCESSING = {
    Entry.TEXT_INPUT: Preprocessing.QUERY, Entry.PROMPT_TOKEN_IDS: Preprocessing.PROMPT_TOKEN_IDS,
    Entry.MAX_TOKENS: Preprocessing.REQUEST_OUTPUT_LEN, Entry.BAD_WORDS: Preprocessing.BAD_WORDS_DICT,
    Entry.STOP_WORDS: Preprocessing.STOP_WORDS_DICT, Entry.END_ID: Preprocessing.END_ID,
    Entry.PAD_ID: Preprocessing.PAD_ID,
}
PREPROCESSING_TO_SCHEDULER = {
    Preprocessing.INPUT_ID: LLM.INPUT_IDS, Preprocessing.REQUEST_INPUT_LEN: LLM.INPUT_LENGTHS,
    Preprocessing.REQUEST_OUTPUT_LEN: LLM.REQUEST_OUTPUT_LEN, Preprocessing.BAD_WORDS_IDS: LLM.BAD_WORDS_LIST,
    Preprocessing.STOP_WORDS_IDS: LLM.STOP_WORDS_LIST, Preprocessing.OUT_END_ID: LLM.END_ID,
    Preprocessing.OUT_PAD_ID: LLM.PAD_ID, Preprocessing.SCORE: Scheduler.SCORE,
}
# Passed straight from the client to the scheduler (preprocessing never sees them).
ENTRY_TO_SCHEDULER = {
    Entry.STREAM: LLM.STREAMING, Entry.TEMPERATURE: LLM.TEMPERATURE, Entry.TOP_K: LLM.RUNTIME_TOP_K,
    Entry.TOP_P: LLM.RUNTIME_TOP_P, Entry.SEED: LLM.SEED, Entry.EXPECTED_OUTPUT_LEN: Scheduler.EXPECTED_OUTPUT_LEN,
}
SCHEDULER_TO_POSTPROCESSING = {
    Scheduler.OUTPUT_IDS: Postprocessing.TOKENS_BATCH, Scheduler.SEQUENCE_LENGTH: Postprocessing.SEQUENCE_LENGTH,
    Scheduler.CONTEXT_IDS: Postprocessing.CONTEXT_IDS, Scheduler.IS_FINAL: Postprocessing.IS_FINAL,
    Scheduler.FINISH_REASON: Postprocessing.FINISH_REASON,
}
POSTPROCESSING_TO_ENTRY = {
    Postprocessing.OUTPUT: Entry.TEXT_OUTPUT, Postprocessing.OUTPUT_TOKEN_COUNT: Entry.OUTPUT_TOKEN_COUNT,
    Postprocessing.FINISH_REASON_OUT: Entry.FINISH_REASON,
}


def llm_call_inputs(
    input_ids: np.ndarray, max_tokens: int, passed: Mapping[str, np.ndarray], flag: str
) -> dict[str, np.ndarray]:
    """The input tensors of one LLM call for a single prompt (batch of one); `flag` is LLM.STREAMING
    or LLM.STOP."""
    if flag not in (LLM.STREAMING, LLM.STOP):
        raise ValueError(f"a call is either {LLM.STREAMING!r} or {LLM.STOP!r}, not {flag!r}")
    unknown = set(passed) - set(LLM.PASSED_THROUGH)
    if unknown:
        raise ValueError(f"not pass-through inputs of the LLM contract: {sorted(unknown)}")
    return {
        LLM.INPUT_IDS: input_ids[None, :],
        LLM.INPUT_LENGTHS: np.array([[input_ids.size]], dtype=np.int32),
        LLM.REQUEST_OUTPUT_LEN: np.array([[max_tokens]], dtype=np.int32),
        **passed,
        flag: np.array([[True]]),
    }


def scheduler_stop_inputs() -> dict[str, np.ndarray]:
    """A `stop` call to the scheduler (TensorRT-LLM's convention: the live request's id, `stop: true`);
    the scheduler's required inputs come along, ignored."""
    return {
        LLM.INPUT_IDS: np.zeros((1, 1), dtype=np.int32), LLM.INPUT_LENGTHS: np.ones((1, 1), dtype=np.int32),
        LLM.REQUEST_OUTPUT_LEN: np.ones((1, 1), dtype=np.int32), Scheduler.SCORE: np.zeros((1, 1), dtype=np.float32),
        LLM.STOP: np.ones((1, 1), dtype=bool),
    }
