"""Config parameters and input tensors → engine objects, as the Triton stand-in parses them."""

from __future__ import annotations

import numpy as np
import pytest

from engine.settings import EngineSettings, parse_request, parse_word_list

PARAMS = {"mode": "timing", "max_batch_slots": "8", "max_input_len": "16", "max_output_len": "32",
          "max_tokens_in_paged_kv_cache": "0", "batch_scheduler_policy": "guaranteed_no_evict"}


def tensors(ids: list[int], out: int, **extra: np.ndarray) -> dict[str, np.ndarray]:
    t = {"input_ids": np.array([ids], np.int32), "input_lengths": np.array([len(ids)], np.int32),
         "request_output_len": np.array([out], np.int32)}
    t.update(extra)
    return t


def test_env_overrides_mode() -> None:
    assert EngineSettings.from_parameters(PARAMS, environ={}).mode == "timing"
    assert EngineSettings.from_parameters(PARAMS, environ={"LTR_LLM_MODE": "hf"}).mode == "hf"
    with pytest.raises(ValueError):
        EngineSettings.from_parameters({**PARAMS, "mode": "fast"}, environ={})


def test_parameters_reach_engine() -> None:
    s = EngineSettings.from_parameters({**PARAMS, "max_tokens_in_paged_kv_cache": "500",
                                        "cost_step_overhead_s": "0.002"}, environ={})
    eng = s.build_engine()
    assert eng.max_batch_size == 8 and eng.kv_budget == 500
    assert s.cost_model.step_overhead_s == 0.002


def test_parse_good_request() -> None:
    s = EngineSettings.from_parameters(PARAMS, environ={})
    req, streaming, exclude = parse_request(
        "x", tensors([1, 2, 3], 5, streaming=np.array([True]), end_id=np.array([128009], np.int32),
                     seed=np.array([7], np.uint64)), s)
    assert (req.prompt_len, req.max_tokens, req.end_id, req.seed) == (3, 5, 128009, 7)
    assert streaming and exclude


@pytest.mark.parametrize("ids,out,extra,msg", [
    (list(range(17)), 5, {}, "max_input_len"), ([1], 33, {}, "max_output_len"),
    ([1, 2], 5, {"input_lengths": np.array([3], np.int32)}, "input_lengths 3 exceeds the 2 ids"),
    ([1], 5, {"beam_width": np.array([2], np.int32)}, "beam_width"),
])
def test_parse_bad_requests(ids: list[int], out: int, extra: dict[str, np.ndarray], msg: str) -> None:
    s = EngineSettings.from_parameters(PARAMS, environ={})
    with pytest.raises(ValueError, match=msg):
        parse_request("x", tensors(ids, out, **extra), s)


@pytest.mark.parametrize("ids,out,msg", [
    ([], 5, "empty prompt"), ([1, 2], 0, "request_output_len must be >= 1"), ([1] * 16, 32, "KV tokens"),
])
def test_request_checks_left_to_the_engine(ids: list[int], out: int, msg: str) -> None:
    """parse_request leaves these to `BatchingEngine.validate`; the model submits what it parsed."""
    s = EngineSettings.from_parameters({**PARAMS, "max_tokens_in_paged_kv_cache": "40"}, environ={})
    req, _, _ = parse_request("x", tensors(ids, out), s)
    with pytest.raises(ValueError, match=msg):
        s.build_engine().validate(req)


def test_word_list_format() -> None:
    # Two stop words: [5, 6] and [9]; offsets 2, 3; padded with -1.
    arr = np.array([[[5, 6, 9, 0], [2, 3, -1, -1]]], np.int32)
    assert parse_word_list(arr) == ((5, 6), (9,))
    assert parse_word_list(None) == ()


def test_length_table_parameters(tmp_path) -> None:  # noqa: ANN001
    from engine.lengths import LengthTable, prompt_key

    LengthTable.from_samples("toy", {prompt_key([1, 2]): [3]}).save(tmp_path / "toy.json")
    table, line = EngineSettings.from_parameters(
        {**PARAMS, "length_table": str(tmp_path / "toy.json"), "unknown_prompt_lengths": "cap"}, environ={}
    ).load_lengths()
    assert table is not None and table.answer_length([1, 2], 0) == 3 and table.answer_length([9], 0) is None
    assert "'toy'" in line and "run to max_tokens" in line
    missing, line = EngineSettings.from_parameters({**PARAMS, "length_table": str(tmp_path / "no.json")},
                                                   environ={}).load_lengths()
    assert missing is None and "missing" in line and "make lengths" in line
    assert EngineSettings.from_parameters(PARAMS, environ={}).load_lengths()[0] is None
    with pytest.raises(ValueError, match="unknown_prompt_lengths"):
        EngineSettings.from_parameters({**PARAMS, "unknown_prompt_lengths": "guess"}, environ={})


def test_parse_limits_hold_exactly_at_their_boundary() -> None:
    """max_input_len and max_output_len are inclusive, as in TensorRT-LLM: the limit passes, one more fails."""
    s = EngineSettings.from_parameters(PARAMS, environ={})
    req, _, _ = parse_request("x", tensors(list(range(16)), 32), s)
    assert (req.prompt_len, req.max_tokens, req.prompt_ids) == (16, 32, list(range(16)))
    with pytest.raises(ValueError, match="prompt of 17 tokens exceeds max_input_len 16"):
        parse_request("x", tensors(list(range(17)), 32), s)
    with pytest.raises(ValueError, match="request_output_len 33 exceeds max_output_len 32"):
        parse_request("x", tensors([1], 33), s)
    req, _, _ = parse_request("x", tensors([1, 2, 3], 5, input_lengths=np.array([3], np.int32)), s)
    assert req.prompt_ids == [1, 2, 3]  # input_lengths equal to the ids given is fine


def test_parse_request_reads_every_tensor() -> None:
    s = EngineSettings.from_parameters(PARAMS, environ={})
    req, streaming, exclude = parse_request(
        "id-1",
        tensors([5, 6, 7, 8], 9, input_lengths=np.array([[3]], np.int32), end_id=np.array([[2]], np.int32),
                seed=np.array([[11]], np.uint64), random_seed=np.array([[99]], np.uint64),
                runtime_top_k=np.array([[40]], np.int32), runtime_top_p=np.array([[0.5]], np.float32),
                temperature=np.array([[0.25]], np.float32), streaming=np.array([[False]]),
                exclude_input_in_output=np.array([[False]]), beam_width=np.array([[1]], np.int32),
                stop_words_list=np.array([[[5, 6, 9, 0], [2, 3, -1, -1]]], np.int32)),
        s, default_seed=3)
    assert (req.request_id, req.prompt_len, list(req.prompt_ids), req.max_tokens) == ("id-1", 3, [5, 6, 7], 9)
    assert (req.end_id, req.seed, req.top_k, req.stop_words) == (2, 11, 40, ((5, 6), (9,)))  # seed wins over random_seed
    assert (req.temperature, req.top_p) == (0.25, 0.5)
    assert all(type(v) is int for v in (req.prompt_len, req.max_tokens, req.end_id, req.seed, req.top_k, *req.prompt_ids))
    assert type(req.temperature) is float and type(req.top_p) is float
    assert streaming is False and exclude is False


def test_parse_request_defaults() -> None:
    s = EngineSettings.from_parameters(PARAMS, environ={})
    only = {"input_ids": np.array([[4, 5]], np.int32), "request_output_len": np.array([[6]], np.int32)}
    assert parse_request("y", only, s)[0].seed == 0  # no seed at all: 0, as in TensorRT-LLM
    req, streaming, exclude = parse_request("y", only, s, default_seed=3)
    assert (req.prompt_len, list(req.prompt_ids), req.max_tokens) == (2, [4, 5], 6)
    # no top_k / top_p: TensorRT-LLM's 0 / 0.0, which it turns into top-k 1 (greedy)
    assert (req.end_id, req.seed, req.top_k, req.top_p, req.temperature, req.stop_words) == (None, 3, 1, 0.0, 1.0, ())
    assert streaming is False and exclude is True  # exclude_input_in_output: the config's default
    assert parse_request("y", {**only, "random_seed": np.array([[8]], np.uint64)}, s)[0].seed == 8
    assert parse_request("y", {**only, "streaming": np.array([[True]])}, s)[1] is True
    assert parse_request("y", {**only, "exclude_input_in_output": np.array([[True]])},
                         EngineSettings.from_parameters({**PARAMS, "exclude_input_in_output": "false"}, environ={}))[2] is True
    assert parse_request("y", only, EngineSettings.from_parameters({**PARAMS, "exclude_input_in_output": "false"},
                                                                   environ={}))[2] is False
    flat = {"input_ids": np.array([4, 5, 6], np.int32), "request_output_len": np.array([6], np.int32)}
    assert parse_request("y", flat, s)[0].prompt_len == 3  # one unbatched sequence is fine too


@pytest.mark.parametrize("given,msg", [
    ({"request_output_len": np.array([[4]], np.int32)}, "^input_ids is required$"),
    ({"input_ids": np.array([[1, 2]], np.int32)}, "^request_output_len is required$"),
    ({"input_ids": np.array([[1, 2, 3], [3, 4, 5]], np.int32), "request_output_len": np.array([[4]], np.int32)},
     "one sequence per request, got batch 2$"),
    ({"input_ids": np.array([[1]], np.int32), "request_output_len": np.array([[4]], np.int32),
      "beam_width": np.array([[4]], np.int32)}, "^the stand-in supports beam_width 1 only$"),
])
def test_parse_request_names_what_is_missing(given: dict[str, np.ndarray], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_request("z", given, EngineSettings.from_parameters(PARAMS, environ={}))



def test_sampling_defaults_follow_tensorrt_llm() -> None:
    """A temperature alone decodes greedily, as on TensorRT-LLM; top_p 1.0 (what the scheduler fills
    in for a client that sent a temperature, runtime/engine_inputs.py) samples the whole distribution."""
    s = EngineSettings.from_parameters(PARAMS, environ={})
    only = {"input_ids": np.array([[4, 5]], np.int32), "request_output_len": np.array([[6]], np.int32),
            "temperature": np.array([[0.7]], np.float32)}
    greedy = parse_request("t", only, s)[0]
    assert (greedy.top_k, greedy.temperature) == (1, np.float32(0.7))
    sampled = parse_request("t", {**only, "runtime_top_k": np.array([[0]], np.int32),
                                  "runtime_top_p": np.array([[1.0]], np.float32)}, s)[0]
    assert (sampled.top_k, sampled.top_p) == (0, 1.0)
    top_k_only = parse_request("t", {**only, "runtime_top_k": np.array([[40]], np.int32)}, s)[0]
    assert (top_k_only.top_k, top_k_only.top_p) == (40, 0.0)
    top_p_only = parse_request("t", {**only, "runtime_top_p": np.array([[1.0]], np.float32)}, s)[0]
    assert (top_p_only.top_k, top_p_only.top_p) == (0, 1.0)  # an absent top_k is 0: no top-k limit


def test_the_stand_in_samples_exactly_when_tensorrt_llm_would():
    """The same tensors reach both targets; the stand-in's reading of them (engine.settings) is
    TensorRT-LLM's: greedy without top_k/top_p, sampling with what engine_inputs fills in."""
    from runtime.contracts import LLM
    from runtime.engine_inputs import engine_inputs

    settings = EngineSettings.from_parameters({}, environ={})
    base = {"input_ids": np.array([[4, 5]], np.int32), "request_output_len": np.array([[6]], np.int32)}
    temp = {LLM.TEMPERATURE: np.array([[0.7]], np.float32)}
    assert parse_request("a", {**base}, settings)[0].top_k == 1
    sent, _ = engine_inputs(temp)
    sampled = parse_request("b", {**base, **{k: v for k, v in sent.items() if k != LLM.STOP_WORDS_LIST}}, settings)[0]
    assert (sampled.top_k, sampled.top_p, sampled.temperature) == (0, 1.0, np.float32(0.7))


def test_tensorrt_llms_other_sampling_inputs_reach_the_request():
    tensors = {"input_ids": np.array([[1, 2]], np.int32), "request_output_len": np.array([[4]], np.int32),
               "min_tokens": np.array([[3]], np.int32), "repetition_penalty": np.array([[1.3]], np.float32),
               "presence_penalty": np.array([[0.5]], np.float32), "frequency_penalty": np.array([[0.25]], np.float32),
               "embedding_bias": np.array([[0.0, 1.0]], np.float32), "return_log_probs": np.array([[True]]),
               "len_penalty": np.array([[2.0]], np.float32)}
    req, _, _ = parse_request("r", tensors, EngineSettings())
    assert (req.min_tokens, req.presence_penalty, req.frequency_penalty) == (3, 0.5, 0.25)
    assert req.repetition_penalty == pytest.approx(1.3) and req.return_log_probs
    assert req.embedding_bias.tolist() == [0.0, 1.0]
    plain, _, _ = parse_request("p", {k: tensors[k] for k in ("input_ids", "request_output_len")}, EngineSettings())
    assert (plain.min_tokens, plain.repetition_penalty, plain.embedding_bias, plain.return_log_probs) == (
        0, 1.0, None, False)
    with pytest.raises(ValueError, match="beam_width 1 only"):
        parse_request("b", {**tensors, "beam_width": np.array([[2]], np.int32)}, EngineSettings())
