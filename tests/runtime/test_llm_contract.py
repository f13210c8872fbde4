"""A call to the LLM carries exactly the contract's inputs: those of every call, the client's
pass-through ones, and one flag."""

from __future__ import annotations

import numpy as np
import pytest

from runtime import llm_contract as llm


def test_a_streaming_call_sends_the_prompt_its_length_and_the_token_budget():
    ids = np.array([5, 6, 7], np.int32)
    tensors = llm.call_inputs(ids, 12, {}, llm.STREAMING)
    assert list(tensors) == [*llm.SENT_ON_EVERY_CALL, llm.STREAMING]
    assert tensors["input_ids"].tolist() == [[5, 6, 7]]
    assert tensors["input_lengths"].tolist() == [[3]] and tensors["input_lengths"].dtype == np.int32
    assert tensors["request_output_len"].tolist() == [[12]] and tensors["request_output_len"].dtype == np.int32
    assert tensors["streaming"].tolist() == [[True]]


def test_a_stop_call_passes_the_clients_inputs_through():
    seed = np.array([[7]], np.uint64)
    tensors = llm.call_inputs(np.array([1], np.int32), 4, {"seed": seed}, llm.STOP)
    assert set(tensors) == {*llm.SENT_ON_EVERY_CALL, "seed", "stop"}
    assert tensors["seed"] is seed and tensors["stop"].tolist() == [[True]]


def test_names_outside_the_contract_are_refused():
    ids = np.array([1], np.int32)
    with pytest.raises(ValueError, match="beam_width"):
        llm.call_inputs(ids, 4, {"beam_width": np.array([[2]], np.int32)}, llm.STREAMING)
    with pytest.raises(ValueError, match="exclude_input_in_output"):
        llm.call_inputs(ids, 4, {}, "exclude_input_in_output")
