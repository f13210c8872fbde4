"""The tensor contracts: a call to the LLM carries exactly the contract's inputs (those of every
call, the client's pass-through ones, and one flag), and the hop maps name only contract tensors."""

from __future__ import annotations

import numpy as np
import pytest

from runtime import contracts
from runtime.contracts import LLM as llm
from runtime.contracts import llm_call_inputs


def test_a_streaming_call_sends_the_prompt_its_length_and_the_token_budget():
    ids = np.array([5, 6, 7], np.int32)
    tensors = llm_call_inputs(ids, 12, {}, llm.STREAMING)
    assert list(tensors) == [*llm.SENT_ON_EVERY_CALL, llm.STREAMING]
    assert tensors["input_ids"].tolist() == [[5, 6, 7]]
    assert tensors["input_lengths"].tolist() == [[3]] and tensors["input_lengths"].dtype == np.int32
    assert tensors["request_output_len"].tolist() == [[12]] and tensors["request_output_len"].dtype == np.int32
    assert tensors["streaming"].tolist() == [[True]]


def test_a_stop_call_passes_the_clients_inputs_through():
    seed = np.array([[7]], np.uint64)
    tensors = llm_call_inputs(np.array([1], np.int32), 4, {"seed": seed}, llm.STOP)
    assert set(tensors) == {*llm.SENT_ON_EVERY_CALL, "seed", "stop"}
    assert tensors["seed"] is seed and tensors["stop"].tolist() == [[True]]


def test_names_outside_the_contract_are_refused():
    ids = np.array([1], np.int32)
    with pytest.raises(ValueError, match="random_seed"):  # an alias the scheduler folds into `seed`
        llm_call_inputs(ids, 4, {"random_seed": np.array([[2]], np.uint64)}, llm.STREAMING)
    with pytest.raises(ValueError, match="exclude_input_in_output"):
        llm_call_inputs(ids, 4, {}, "exclude_input_in_output")


def test_every_hop_maps_the_producers_outputs_onto_the_consumers_inputs():
    C = contracts
    hops = [
        (C.ENTRY_TO_PREPROCESSING, C.Entry.INPUTS, C.Preprocessing.INPUTS),
        (C.PREPROCESSING_TO_SCHEDULER, C.Preprocessing.OUTPUTS, C.Scheduler.INPUTS),
        (C.ENTRY_TO_SCHEDULER, C.Entry.INPUTS, C.Scheduler.INPUTS),
        (C.SCHEDULER_TO_POSTPROCESSING, C.Scheduler.OUTPUTS, C.Postprocessing.INPUTS),
        (C.POSTPROCESSING_TO_ENTRY, C.Postprocessing.OUTPUTS, C.Entry.OUTPUTS),
    ]
    for hop, produced, consumed in hops:
        assert set(hop) <= set(produced) and set(hop.values()) <= set(consumed)
    # every entry input goes somewhere, once
    routed = [*C.ENTRY_TO_PREPROCESSING, *C.ENTRY_TO_SCHEDULER]
    assert sorted(routed) == sorted(C.Entry.INPUTS)
