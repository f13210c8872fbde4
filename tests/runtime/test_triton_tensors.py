"""The single-value input readers of the model.py files, with a fake `triton_python_backend_utils`."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.contracts import Scheduler
from runtime.triton_tensors import first_value, model_parameters, scalar, stop_requested


def test_first_value_is_a_python_scalar_of_any_single_value_shape():
    assert first_value(np.array([[12]], np.int32)) == 12 and type(first_value(np.array([[12]], np.int32))) is int
    assert first_value(np.array([0.5], np.float32)) == 0.5
    assert first_value(np.array([[[True]]])) is True
    assert first_value(np.array(np.uint64(7))) == 7
    assert first_value([3, 4]) == 3  # array-likes too


def test_an_absent_or_empty_tensor_gives_the_default():
    assert first_value(None, 9) == 9
    assert first_value(np.zeros((1, 0), np.int32), 9) == 9
    assert first_value(None) is None


def test_a_false_flag_is_false_not_the_default():
    assert first_value(np.array([[False]]), True) is False


def test_model_parameters_are_the_string_values():
    config = {"parameters": {"policy": {"string_value": "ltr"}, "max_inflight": {"string_value": "4"}}}
    assert model_parameters(config) == {"policy": "ltr", "max_inflight": "4"}
    assert model_parameters({}) == {}


class FakeTensor:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


@pytest.fixture()
def request_with(monkeypatch):
    """A request carrying the given tensors, read through a stand-in for Triton's helper module."""
    fake = SimpleNamespace(get_input_tensor_by_name=lambda request, name: request.get(name))
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    return lambda **arrays: {name: FakeTensor(array) for name, array in arrays.items()}


def test_scalar_reads_an_input_or_falls_back_to_the_default(request_with):
    request = request_with(END_ID=np.array([[128009]], np.int32))
    assert scalar(request, "END_ID", 0) == 128009
    assert scalar(request, "PAD_ID", 0) == 0


@pytest.mark.parametrize("arrays, expected", [
    ({}, False),
    ({"stop": np.array([[False]])}, False),
    ({"stop": np.array([[True]])}, True),
    ({"streaming": np.array([[True]])}, False),
])
def test_stop_requested_only_by_a_true_stop_flag(request_with, arrays, expected):
    assert stop_requested(request_with(**arrays)) is expected


def test_engine_outputs_have_tensorrt_llms_shapes_for_one_sequence():
    from runtime.triton_tensors import engine_outputs

    asked = engine_outputs([-0.5, -1.0], -2.5)
    assert asked["cum_log_probs"].tolist() == [[-2.5]] and asked["output_log_probs"].tolist() == [[[-0.5, -1.0]]]
    assert asked["context_logits"].shape == (1, 0, 0) and asked["generation_logits"].shape == (1, 1, 0, 0)
    assert asked["batch_index"].tolist() == [[0]] and asked["sequence_index"].tolist() == [[0]]
    not_asked = engine_outputs(None, 0.0)
    assert not_asked["cum_log_probs"].shape == (1, 0) and not_asked["output_log_probs"].shape == (1, 1, 0)
    assert {v.dtype.name for k, v in asked.items() if "index" not in k and "expected" not in k} == {"float32"}
    assert set(asked) == set(Scheduler.RELAYED)
    assert not_asked[Scheduler.EXPECTED_OUTPUT_TOKENS].tolist() == [[-1]]  # no calibration known


def test_queue_deadline_serves_late_by_default_and_refuses_past_the_ttft_target_when_asked():
    from runtime.triton_tensors import queue_deadline

    assert queue_deadline({"queue_timeout_s": "0", "slo_miss": "serve", "slo_ttft_s": "2"}) is None
    assert queue_deadline({"queue_timeout_s": "0", "slo_miss": "refuse", "slo_ttft_s": "3"}) == 3.0
    assert queue_deadline({"queue_timeout_s": "5", "slo_miss": "refuse", "slo_ttft_s": "3"}) == 5.0
    with pytest.raises(ValueError):
        queue_deadline({"slo_miss": "drop"})


def test_expected_output_tokens_is_the_rounded_calibrated_length():
    from runtime.triton_tensors import NO_EXPECTATION, engine_outputs, expected_tokens_value

    assert expected_tokens_value(211.6) == 212 and expected_tokens_value(0.2) == 0
    assert expected_tokens_value(None) == expected_tokens_value(float("nan")) == NO_EXPECTATION
    value = engine_outputs(None, 0.0, expected_tokens=37.4)[Scheduler.EXPECTED_OUTPUT_TOKENS]
    assert value.dtype.name == "int32" and value.tolist() == [[37]]
