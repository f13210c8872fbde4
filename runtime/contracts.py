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
    RANDOM_SEED = "random_seed"  # TensorRT-LLM <= 0.14's name for `seed`; both are accepted
    STREAM = "stream"
    MIN_TOKENS = "min_tokens"
    MIN_LENGTH = "min_length"  # TensorRT-LLM <= 0.14's name for `min_tokens`; both are accepted
    LENGTH_PENALTY = "length_penalty"
    REPETITION_PENALTY = "repetition_penalty"
    PRESENCE_PENALTY = "presence_penalty"
    FREQUENCY_PENALTY = "frequency_penalty"
    RETURN_LOG_PROBS = "return_log_probs"
    RETURN_CONTEXT_LOGITS = "return_context_logits"
    RETURN_GENERATION_LOGITS = "return_generation_logits"
    BEAM_WIDTH = "beam_width"
    NUM_RETURN_SEQUENCES = "num_return_sequences"
    EXCLUDE_INPUT_IN_OUTPUT = "exclude_input_in_output"
    EMBEDDING_BIAS_WORDS = "embedding_bias_words"
    EMBEDDING_BIAS_WEIGHTS = "embedding_bias_weights"
    EXPECTED_OUTPUT_LEN = "expected_output_len"  # experiments only: read by the `oracle` policy alone
    INPUTS = (TEXT_INPUT, PROMPT_TOKEN_IDS, MAX_TOKENS, BAD_WORDS, STOP_WORDS, END_ID, PAD_ID, TOP_K, TOP_P,
              TEMPERATURE, SEED, RANDOM_SEED, STREAM, MIN_TOKENS, MIN_LENGTH, LENGTH_PENALTY, REPETITION_PENALTY,
              PRESENCE_PENALTY, FREQUENCY_PENALTY, RETURN_LOG_PROBS, RETURN_CONTEXT_LOGITS, RETURN_GENERATION_LOGITS,
              BEAM_WIDTH, NUM_RETURN_SEQUENCES, EXCLUDE_INPUT_IN_OUTPUT, EMBEDDING_BIAS_WORDS, EMBEDDING_BIAS_WEIGHTS,
              EXPECTED_OUTPUT_LEN)

    TEXT_OUTPUT = "text_output"
    OUTPUT_TOKEN_COUNT = "output_token_count"
    FINISH_REASON = "finish_reason"
    # TensorRT-LLM's other ensemble outputs, passed on from the engine (runtime/contracts.ENGINE_OUTPUTS_TO_ENTRY)
    CUM_LOG_PROBS = "cum_log_probs"
    OUTPUT_LOG_PROBS = "output_log_probs"
    CONTEXT_LOGITS = "context_logits"
    GENERATION_LOGITS = "generation_logits"
    BATCH_INDEX = "batch_index"
    SEQUENCE_INDEX = "sequence_index"
    # Ours: INT32 [1] on every response, the answer length the scheduler expects for this request (the
    # predictor's score through its version's calibration, capped at max_tokens); -1 without a calibration.
    EXPECTED_OUTPUT_TOKENS = "expected_output_tokens"
    OUTPUTS = (TEXT_OUTPUT, OUTPUT_TOKEN_COUNT, FINISH_REASON, CUM_LOG_PROBS, OUTPUT_LOG_PROBS, CONTEXT_LOGITS,
               GENERATION_LOGITS, BATCH_INDEX, SEQUENCE_INDEX, EXPECTED_OUTPUT_TOKENS)


class Preprocessing:
    """Text and words in, the LLM's ids and the predictor's score out (TensorRT-LLM's spelling)."""

    QUERY = "QUERY"
    PROMPT_TOKEN_IDS = "PROMPT_TOKEN_IDS"
    REQUEST_OUTPUT_LEN = "REQUEST_OUTPUT_LEN"  # an input and, checked, an output of the same name
    BAD_WORDS_DICT = "BAD_WORDS_DICT"
    STOP_WORDS_DICT = "STOP_WORDS_DICT"
    END_ID = "END_ID"
    PAD_ID = "PAD_ID"
    EMBEDDING_BIAS_WORDS = "EMBEDDING_BIAS_WORDS"
    EMBEDDING_BIAS_WEIGHTS = "EMBEDDING_BIAS_WEIGHTS"
    INPUTS = (QUERY, PROMPT_TOKEN_IDS, REQUEST_OUTPUT_LEN, BAD_WORDS_DICT, STOP_WORDS_DICT, END_ID, PAD_ID,
              EMBEDDING_BIAS_WORDS, EMBEDDING_BIAS_WEIGHTS)

    INPUT_ID = "INPUT_ID"
    REQUEST_INPUT_LEN = "REQUEST_INPUT_LEN"
    BAD_WORDS_IDS = "BAD_WORDS_IDS"
    STOP_WORDS_IDS = "STOP_WORDS_IDS"
    OUT_END_ID = "OUT_END_ID"
    OUT_PAD_ID = "OUT_PAD_ID"
    EMBEDDING_BIAS = "EMBEDDING_BIAS"  # FP32 [vocab] (empty without bias words)
    SCORE = "SCORE"
    OUTPUTS = (INPUT_ID, REQUEST_INPUT_LEN, REQUEST_OUTPUT_LEN, BAD_WORDS_IDS, STOP_WORDS_IDS, OUT_END_ID,
               OUT_PAD_ID, EMBEDDING_BIAS, SCORE)


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
    LEN_PENALTY = "len_penalty"
    REPETITION_PENALTY = "repetition_penalty"
    PRESENCE_PENALTY = "presence_penalty"
    FREQUENCY_PENALTY = "frequency_penalty"
    MIN_TOKENS = "min_tokens"
    RETURN_LOG_PROBS = "return_log_probs"
    BEAM_WIDTH = "beam_width"
    EMBEDDING_BIAS = "embedding_bias"
    # Sampling and stopping inputs the scheduler forwards when its own client gave them (TensorRT-LLM
    # 1.0's names, those of deploy/gpu/tensorrt_llm/config.pbtxt).
    PASSED_THROUGH = (END_ID, PAD_ID, STOP_WORDS_LIST, BAD_WORDS_LIST, TEMPERATURE, RUNTIME_TOP_K, RUNTIME_TOP_P, SEED,
                      LEN_PENALTY, REPETITION_PENALTY, PRESENCE_PENALTY, FREQUENCY_PENALTY, MIN_TOKENS,
                      RETURN_LOG_PROBS, BEAM_WIDTH, EMBEDDING_BIAS)

    # Each call carries one of these flags: a generation call streams, a `stop` call (same request id)
    # ends a live generation. So neither is sent on every call.
    STREAMING = "streaming"
    STOP = "stop"

    # TensorRT-LLM inputs only the CPU stand-in reads (the scheduler never sends them).
    RANDOM_SEED = "random_seed"
    EXCLUDE_INPUT_IN_OUTPUT = "exclude_input_in_output"

    OUTPUT_IDS = "output_ids"
    SEQUENCE_LENGTH = "sequence_length"
    OUTPUT_LOG_PROBS = "output_log_probs"  # [beam, tokens]: each new token's log-prob (with return_log_probs)
    CUM_LOG_PROBS = "cum_log_probs"  # [beam]; the scheduler sums output_log_probs itself (merged chunks)
    BATCH_INDEX = "batch_index"
    SEQUENCE_INDEX = "sequence_index"
    OUTPUTS_READ = (OUTPUT_IDS, SEQUENCE_LENGTH, OUTPUT_LOG_PROBS)


class Scheduler:
    """`ltr_scheduler`: the LLM's inputs plus the score in; token ids with their context out."""

    SCORE = "score"
    EXPECTED_OUTPUT_LEN = Entry.EXPECTED_OUTPUT_LEN
    # The client's inputs the scheduler resolves itself rather than passing on (runtime/engine_inputs.py):
    # older aliases folded into the engine's names, requests it refuses when set (no logits relayed, one
    # sequence per request), and the prompt in a non-streaming answer (the engine is always streamed).
    RANDOM_SEED = LLM.RANDOM_SEED
    MIN_LENGTH = Entry.MIN_LENGTH
    RETURN_CONTEXT_LOGITS = Entry.RETURN_CONTEXT_LOGITS
    RETURN_GENERATION_LOGITS = Entry.RETURN_GENERATION_LOGITS
    NUM_RETURN_SEQUENCES = Entry.NUM_RETURN_SEQUENCES
    EXCLUDE_INPUT_IN_OUTPUT = LLM.EXCLUDE_INPUT_IN_OUTPUT
    RESOLVED = (RANDOM_SEED, MIN_LENGTH, RETURN_CONTEXT_LOGITS, RETURN_GENERATION_LOGITS, NUM_RETURN_SEQUENCES,
                EXCLUDE_INPUT_IN_OUTPUT)
    INPUTS = (*LLM.SENT_ON_EVERY_CALL, SCORE, *LLM.PASSED_THROUGH, *RESOLVED, LLM.STREAMING, LLM.STOP,
              EXPECTED_OUTPUT_LEN)

    OUTPUT_IDS = LLM.OUTPUT_IDS  # the new tokens of this response
    SEQUENCE_LENGTH = LLM.SEQUENCE_LENGTH
    CONTEXT_IDS = "context_ids"  # the last tokens sent before, for incremental detokenization
    IS_FINAL = "is_final"
    FINISH_REASON = "finish_reason"  # "stop" | "length" | "cancelled" on the final response
    # TensorRT-LLM's outputs beside the tokens: [1] / [1, n] log-probs of this response's tokens (empty
    # without return_log_probs; cum over the whole answer so far), logits never (empty), indices 0.
    CUM_LOG_PROBS = LLM.CUM_LOG_PROBS
    OUTPUT_LOG_PROBS = LLM.OUTPUT_LOG_PROBS
    CONTEXT_LOGITS = Entry.CONTEXT_LOGITS
    GENERATION_LOGITS = Entry.GENERATION_LOGITS
    BATCH_INDEX = LLM.BATCH_INDEX
    SEQUENCE_INDEX = LLM.SEQUENCE_INDEX
    ENGINE_OUTPUTS = (CUM_LOG_PROBS, OUTPUT_LOG_PROBS, CONTEXT_LOGITS, GENERATION_LOGITS, BATCH_INDEX, SEQUENCE_INDEX)
    EXPECTED_OUTPUT_TOKENS = Entry.EXPECTED_OUTPUT_TOKENS  # INT32 [1], every response (Entry's comment)
    # What reaches the client unchanged, through postprocessing (ensemble) or in-process (ltr_bls)
    RELAYED = (*ENGINE_OUTPUTS, EXPECTED_OUTPUT_TOKENS)
    OUTPUTS = (OUTPUT_IDS, SEQUENCE_LENGTH, CONTEXT_IDS, IS_FINAL, FINISH_REASON, *RELAYED)


class Postprocessing:
    """The scheduler's responses in, text out (TensorRT-LLM's spelling)."""

    TOKENS_BATCH = "TOKENS_BATCH"
    SEQUENCE_LENGTH = "SEQUENCE_LENGTH"
    CONTEXT_IDS = "CONTEXT_IDS"
    IS_FINAL = "IS_FINAL"
    FINISH_REASON = "FINISH_REASON"
    # Passed through unchanged, as TensorRT-LLM's postprocessing spelled them (IN -> OUT_IN)
    CUM_LOG_PROBS = "CUM_LOG_PROBS"
    OUTPUT_LOG_PROBS = "OUTPUT_LOG_PROBS"
    CONTEXT_LOGITS = "CONTEXT_LOGITS"
    GENERATION_LOGITS = "GENERATION_LOGITS"
    BATCH_INDEX = "BATCH_INDEX"
    SEQUENCE_INDEX = "SEQUENCE_INDEX"
    EXPECTED_OUTPUT_TOKENS = "EXPECTED_OUTPUT_TOKENS"
    PASSED = {name: "OUT_" + name for name in (CUM_LOG_PROBS, OUTPUT_LOG_PROBS, CONTEXT_LOGITS, GENERATION_LOGITS,
                                                BATCH_INDEX, SEQUENCE_INDEX, EXPECTED_OUTPUT_TOKENS)}
    INPUTS = (TOKENS_BATCH, SEQUENCE_LENGTH, CONTEXT_IDS, IS_FINAL, FINISH_REASON, *PASSED)

    OUTPUT = "OUTPUT"
    OUTPUT_TOKEN_COUNT = "OUTPUT_TOKEN_COUNT"
    FINISH_REASON_OUT = "FINISH_REASON_OUT"
    OUTPUTS = (OUTPUT, OUTPUT_TOKEN_COUNT, FINISH_REASON_OUT, *PASSED.values())


# The pipeline's wiring, one map per hop (the ensemble's step maps say the same; config_checks holds
# them equal). Keys are the producing side's names, values the consuming side's.
ENTRY_TO_PREPROCESSING = {
    Entry.TEXT_INPUT: Preprocessing.QUERY, Entry.PROMPT_TOKEN_IDS: Preprocessing.PROMPT_TOKEN_IDS,
    Entry.MAX_TOKENS: Preprocessing.REQUEST_OUTPUT_LEN, Entry.BAD_WORDS: Preprocessing.BAD_WORDS_DICT,
    Entry.STOP_WORDS: Preprocessing.STOP_WORDS_DICT, Entry.END_ID: Preprocessing.END_ID,
    Entry.PAD_ID: Preprocessing.PAD_ID, Entry.EMBEDDING_BIAS_WORDS: Preprocessing.EMBEDDING_BIAS_WORDS,
    Entry.EMBEDDING_BIAS_WEIGHTS: Preprocessing.EMBEDDING_BIAS_WEIGHTS,
}
PREPROCESSING_TO_SCHEDULER = {
    Preprocessing.INPUT_ID: LLM.INPUT_IDS, Preprocessing.REQUEST_INPUT_LEN: LLM.INPUT_LENGTHS,
    Preprocessing.REQUEST_OUTPUT_LEN: LLM.REQUEST_OUTPUT_LEN, Preprocessing.BAD_WORDS_IDS: LLM.BAD_WORDS_LIST,
    Preprocessing.STOP_WORDS_IDS: LLM.STOP_WORDS_LIST, Preprocessing.OUT_END_ID: LLM.END_ID,
    Preprocessing.OUT_PAD_ID: LLM.PAD_ID, Preprocessing.EMBEDDING_BIAS: LLM.EMBEDDING_BIAS,
    Preprocessing.SCORE: Scheduler.SCORE,
}
# Passed straight from the client to the scheduler (preprocessing never sees them).
ENTRY_TO_SCHEDULER = {
    Entry.STREAM: LLM.STREAMING, Entry.TEMPERATURE: LLM.TEMPERATURE, Entry.TOP_K: LLM.RUNTIME_TOP_K,
    Entry.TOP_P: LLM.RUNTIME_TOP_P, Entry.SEED: LLM.SEED, Entry.EXPECTED_OUTPUT_LEN: Scheduler.EXPECTED_OUTPUT_LEN,
    Entry.RANDOM_SEED: Scheduler.RANDOM_SEED, Entry.MIN_TOKENS: LLM.MIN_TOKENS, Entry.MIN_LENGTH: Scheduler.MIN_LENGTH,
    Entry.LENGTH_PENALTY: LLM.LEN_PENALTY, Entry.REPETITION_PENALTY: LLM.REPETITION_PENALTY,
    Entry.PRESENCE_PENALTY: LLM.PRESENCE_PENALTY, Entry.FREQUENCY_PENALTY: LLM.FREQUENCY_PENALTY,
    Entry.RETURN_LOG_PROBS: LLM.RETURN_LOG_PROBS, Entry.RETURN_CONTEXT_LOGITS: Scheduler.RETURN_CONTEXT_LOGITS,
    Entry.RETURN_GENERATION_LOGITS: Scheduler.RETURN_GENERATION_LOGITS, Entry.BEAM_WIDTH: LLM.BEAM_WIDTH,
    Entry.NUM_RETURN_SEQUENCES: Scheduler.NUM_RETURN_SEQUENCES,
    Entry.EXCLUDE_INPUT_IN_OUTPUT: Scheduler.EXCLUDE_INPUT_IN_OUTPUT,
}
SCHEDULER_TO_POSTPROCESSING = {
    Scheduler.OUTPUT_IDS: Postprocessing.TOKENS_BATCH, Scheduler.SEQUENCE_LENGTH: Postprocessing.SEQUENCE_LENGTH,
    Scheduler.CONTEXT_IDS: Postprocessing.CONTEXT_IDS, Scheduler.IS_FINAL: Postprocessing.IS_FINAL,
    Scheduler.FINISH_REASON: Postprocessing.FINISH_REASON,
    Scheduler.CUM_LOG_PROBS: Postprocessing.CUM_LOG_PROBS, Scheduler.OUTPUT_LOG_PROBS: Postprocessing.OUTPUT_LOG_PROBS,
    Scheduler.CONTEXT_LOGITS: Postprocessing.CONTEXT_LOGITS,
    Scheduler.GENERATION_LOGITS: Postprocessing.GENERATION_LOGITS, Scheduler.BATCH_INDEX: Postprocessing.BATCH_INDEX,
    Scheduler.SEQUENCE_INDEX: Postprocessing.SEQUENCE_INDEX,
    Scheduler.EXPECTED_OUTPUT_TOKENS: Postprocessing.EXPECTED_OUTPUT_TOKENS,
}
POSTPROCESSING_TO_ENTRY = {
    Postprocessing.OUTPUT: Entry.TEXT_OUTPUT, Postprocessing.OUTPUT_TOKEN_COUNT: Entry.OUTPUT_TOKEN_COUNT,
    Postprocessing.FINISH_REASON_OUT: Entry.FINISH_REASON,
    **{Postprocessing.PASSED[into]: out for into, out in (
        (Postprocessing.CUM_LOG_PROBS, Entry.CUM_LOG_PROBS), (Postprocessing.OUTPUT_LOG_PROBS, Entry.OUTPUT_LOG_PROBS),
        (Postprocessing.CONTEXT_LOGITS, Entry.CONTEXT_LOGITS),
        (Postprocessing.GENERATION_LOGITS, Entry.GENERATION_LOGITS), (Postprocessing.BATCH_INDEX, Entry.BATCH_INDEX),
        (Postprocessing.SEQUENCE_INDEX, Entry.SEQUENCE_INDEX),
        (Postprocessing.EXPECTED_OUTPUT_TOKENS, Entry.EXPECTED_OUTPUT_TOKENS))},
}
# The engine's outputs (and the expected answer length) as the scheduler sends them and the client
# gets them, through postprocessing unchanged: `ltr_bls` passes them on in-process by this map (the
# ensemble by its step maps).
ENGINE_OUTPUTS_TO_ENTRY = {
    name: POSTPROCESSING_TO_ENTRY[Postprocessing.PASSED[SCHEDULER_TO_POSTPROCESSING[name]]]
    for name in Scheduler.RELAYED
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
