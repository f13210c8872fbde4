"""What the scheduler adds to the engine inputs: Llama-3's other end token as a one-token stop word
(on every path into the scheduler), cut from the answer again; sampling defaults for a client that
sent a temperature alone."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.contracts import LLM, PREPROCESSING_TO_SCHEDULER
from runtime.engine_inputs import (
    LLAMA3_END_TOKENS,
    add_stop_tokens,
    answer_tokens,
    engine_inputs,
    parse_token_ids,
    sampling_defaults,
)
from runtime.llama3_tokenizer import DEFAULT_TOKENIZER_FILE, load_tokenizer
from runtime.preprocess import Limits, Preprocessor, word_list


def words_of(tensor: np.ndarray) -> list[list[int]]:
    rows = np.asarray(tensor).reshape(2, -1)
    offsets = [int(o) for o in rows[1] if o >= 0]
    return [rows[0, a:b].tolist() for a, b in zip([0, *offsets[:-1]], offsets)]


def test_end_tokens_are_read_from_the_config_parameter():
    assert parse_token_ids("128001,128009") == LLAMA3_END_TOKENS == (128001, 128009)
    assert parse_token_ids("") == () and parse_token_ids(" 5 , 6 ") == (5, 6)


def test_a_one_token_word_is_appended_to_the_clients_words_once():
    client = np.array([[[7, 8, 9, 0], [2, 3, -1, -1]]], dtype=np.int32)  # words [7, 8] and [9]
    merged = add_stop_tokens(client, [128001, 9])
    assert merged.shape[:2] == (1, 2) and merged.dtype == np.int32
    assert words_of(merged) == [[7, 8], [9], [128001]]
    assert words_of(add_stop_tokens(None, [128001])) == [[128001]]
    assert words_of(add_stop_tokens(np.zeros((1, 2, 0), np.int32), [128001])) == [[128001]]


def test_the_format_is_the_one_preprocessing_and_tensorrt_llm_use():
    class Ids:
        def encode(self, text):
            return [ord(c) for c in text]

    client = word_list(Ids(), ["ab", "c"])[None]
    assert words_of(add_stop_tokens(client, [128001])) == [[97, 98], [99], [128001]]
    expected = word_list(Ids(), ["ab", "c", chr(128001)])  # as if it had been one more word
    assert np.array_equal(add_stop_tokens(client, [128001])[0], expected)


def test_the_end_token_that_is_not_the_end_id_becomes_a_stop_word():
    passed = {LLM.END_ID: np.array([[128009]], np.int32)}
    out, added = engine_inputs(passed)
    assert added == (128001,) and words_of(out[LLM.STOP_WORDS_LIST]) == [[128001]]
    out, added = engine_inputs({LLM.END_ID: np.array([[128001]], np.int32)})  # a client that chose the other one
    assert added == (128009,)
    out, added = engine_inputs({})  # no end_id at all (a direct caller of ltr_scheduler): both
    assert added == (128001, 128009) and words_of(out[LLM.STOP_WORDS_LIST]) == [[128001], [128009]]
    assert engine_inputs(passed, end_tokens=())[0] == passed  # `end_tokens` "" in the config: off


@pytest.fixture(scope="module")
def preprocessor():
    if not DEFAULT_TOKENIZER_FILE.is_file():
        pytest.skip("build/tokenizer/tokenizer.model missing: run make tokenizer")
    return Preprocessor(load_tokenizer(str(DEFAULT_TOKENIZER_FILE)), Limits(4096, 4096), add_bos=True,
                        predictor_ids=lambda text: [1])


@pytest.mark.parametrize("path", ["text_input", "prompt_token_ids", "openai completions with stop",
                                  "openai chat"])
def test_every_path_into_the_scheduler_stops_on_both_llama3_end_tokens(preprocessor, path):
    """text_input, prompt_token_ids, and the OpenAI server's completions (text, stop strings) and chat
    (the template's ids) all reach the scheduler as preprocessing's outputs."""
    tok = preprocessor.tokenizer
    inputs = {"QUERY": np.array([[b"Hello there"]], dtype=object), "REQUEST_OUTPUT_LEN": np.array([[16]], np.int32)}
    if path in ("prompt_token_ids", "openai chat"):
        inputs["PROMPT_TOKEN_IDS"] = np.array([[tok.bos_id, tok.special_id("<|start_header_id|>"), *tok.encode("user"),
                                                tok.special_id("<|end_header_id|>"), *tok.encode("\n\nHello there"),
                                                tok.eot_id]], np.int32)
    if path == "openai completions with stop":
        inputs["STOP_WORDS_DICT"] = np.array([[b"."]], dtype=object)
    prepared = preprocessor.prepare(inputs).tensors
    scheduled = {PREPROCESSING_TO_SCHEDULER[k]: v for k, v in prepared.items() if k in PREPROCESSING_TO_SCHEDULER}
    passed = {k: v for k, v in scheduled.items() if k in LLM.PASSED_THROUGH}
    out, added = engine_inputs(passed)
    assert int(out[LLM.END_ID].reshape(-1)[0]) == tok.eot_id == 128009
    assert added == (tok.eos_id,) == (128001,)
    expected = ([tok.encode(".")] if path == "openai completions with stop" else []) + [[128001]]
    assert words_of(out[LLM.STOP_WORDS_LIST]) == expected


def test_an_added_end_token_is_cut_from_the_answer():
    assert answer_tokens([5, 6, 128001], (128001,)) == [5, 6]
    assert answer_tokens([128001], (128001,)) == []
    assert answer_tokens([5, 6], (128001,)) == [5, 6] and answer_tokens([5, 128001], ()) == [5, 128001]


def test_a_temperature_alone_samples_the_whole_distribution_on_both_targets():
    temp = {LLM.TEMPERATURE: np.array([[0.7]], np.float32)}
    filled = sampling_defaults(temp)
    assert int(filled[LLM.RUNTIME_TOP_K][0, 0]) == 0 and float(filled[LLM.RUNTIME_TOP_P][0, 0]) == 1.0
    assert filled[LLM.RUNTIME_TOP_K].dtype == np.int32 and filled[LLM.RUNTIME_TOP_P].dtype == np.float32
    assert sampling_defaults({}) == {}  # no temperature: greedy, TensorRT-LLM's default
    assert sampling_defaults({LLM.TEMPERATURE: np.array([[0.0]], np.float32)}) == {}  # greedy asked for
    assert sampling_defaults({**temp, LLM.RUNTIME_TOP_K: np.array([[40]], np.int32)}) == {}  # the client's own
    assert sampling_defaults({**temp, LLM.RUNTIME_TOP_P: np.array([[0.9]], np.float32)}) == {}
    out, _ = engine_inputs(temp)
    assert LLM.RUNTIME_TOP_P in out



def test_older_aliases_are_folded_into_the_engines_names_which_win():
    from runtime.engine_inputs import resolve_inputs

    seed, old_seed = np.array([[7]], np.uint64), np.array([[9]], np.uint64)
    out = resolve_inputs({}, {"random_seed": old_seed, "min_length": np.array([[4]], np.int32)})
    assert out[LLM.SEED] is old_seed and out[LLM.MIN_TOKENS].tolist() == [[4]]
    assert resolve_inputs({LLM.SEED: seed}, {"random_seed": old_seed})[LLM.SEED] is seed


@pytest.mark.parametrize("passed, resolved, message", [
    ({LLM.BEAM_WIDTH: np.array([[2]], np.int32)}, {}, "beam_width 2 is not supported: the engine's max_beam_width is 1"),
    ({LLM.BEAM_WIDTH: np.array([[0]], np.int32)}, {}, "beam_width 0"),
    ({}, {"return_context_logits": np.array([[True]])}, "return_context_logits is not supported"),
    ({}, {"return_generation_logits": np.array([[True]])}, "return_generation_logits is not supported"),
    ({}, {"num_return_sequences": np.array([[2]], np.int32)}, "num_return_sequences must be 1"),
    ({LLM.MIN_TOKENS: np.array([[-1]], np.int32)}, {}, "min_tokens must be >= 0"),
    ({LLM.REPETITION_PENALTY: np.array([[0.0]], np.float32)}, {}, "repetition_penalty must be"),
    ({LLM.PRESENCE_PENALTY: np.array([[np.inf]], np.float32)}, {}, "presence_penalty must be finite"),
])
def test_what_the_pipeline_cannot_serve_is_a_bad_request(passed, resolved, message):
    from runtime.engine_inputs import resolve_inputs
    from runtime.preprocess import BadRequest

    with pytest.raises(BadRequest, match=message):
        resolve_inputs(passed, resolved)


def test_their_do_nothing_values_pass_and_a_wider_engine_takes_wider_beams():
    from runtime.engine_inputs import includes_prompt, resolve_inputs

    off = {"return_context_logits": np.array([[False]]), "return_generation_logits": np.array([[False]]),
           "num_return_sequences": np.array([[1]], np.int32)}
    assert resolve_inputs({LLM.BEAM_WIDTH: np.array([[1]], np.int32)}, off)
    assert resolve_inputs({LLM.BEAM_WIDTH: np.array([[4]], np.int32)}, {}, max_beam_width=4)
    exclude_false = {"exclude_input_in_output": np.array([[False]])}
    assert includes_prompt(exclude_false, streaming=False)
    assert not includes_prompt(exclude_false, streaming=True) and not includes_prompt({}, streaming=False)
