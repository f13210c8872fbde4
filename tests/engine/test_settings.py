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
    assert (req.prompt_len, req.max_new_tokens, req.end_id, req.seed) == (3, 5, 128009, 7)
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
