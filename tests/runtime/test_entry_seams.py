"""The entry model's seams: a step's error keeps its message and its code as they came; a scheduler
response is read from its contract tensors."""

from __future__ import annotations

import numpy as np

from runtime.contracts import Scheduler as S
from runtime.entry_seams import SchedulerReply, StepError


def test_a_step_error_keeps_its_message_and_code():
    error = StepError("text_input is empty", "INVALID_ARG")
    assert (error.message, error.code, str(error)) == ("text_input is empty", "INVALID_ARG", "text_input is empty")
    assert StepError("ltr_bls failed: boom").code is None  # the sender then answers INTERNAL


def test_a_scheduler_reply_is_read_from_its_tensors():
    tensors = {
        S.OUTPUT_IDS: np.array([[[7, 8, 9]]], np.int32), S.SEQUENCE_LENGTH: np.array([[2]], np.int32),
        S.CONTEXT_IDS: np.array([[5, 6]], np.int32), S.IS_FINAL: np.array([[True]]),
        S.FINISH_REASON: np.array([[b"length"]], dtype=object),
    }
    reply = SchedulerReply.from_tensors(tensors.get)
    assert reply == SchedulerReply(token_ids=[7, 8], context_ids=[5, 6], final=True, finish_reason="length")
    assert SchedulerReply.from_tensors({}.get) is None  # a bare final flag: nothing for the client


def test_the_engines_other_outputs_are_kept_by_the_clients_names():
    from runtime.contracts import Entry
    from runtime.triton_tensors import engine_outputs

    tensors = {S.OUTPUT_IDS: np.array([[[7]]], np.int32), S.SEQUENCE_LENGTH: np.array([[1]], np.int32),
               S.CONTEXT_IDS: np.zeros((1, 0), np.int32), S.IS_FINAL: np.array([[False]]),
               **engine_outputs([-0.5], -0.5, expected_tokens=120.0)}
    reply = SchedulerReply.from_tensors(tensors.get)
    assert set(reply.engine_outputs) == {Entry.CUM_LOG_PROBS, Entry.OUTPUT_LOG_PROBS, Entry.CONTEXT_LOGITS,
                                         Entry.GENERATION_LOGITS, Entry.BATCH_INDEX, Entry.SEQUENCE_INDEX,
                                         Entry.EXPECTED_OUTPUT_TOKENS}
    assert reply.engine_outputs[Entry.EXPECTED_OUTPUT_TOKENS].tolist() == [[120]]  # passed on to the client
    assert reply.engine_outputs[Entry.OUTPUT_LOG_PROBS].tolist() == [[[-0.5]]]


def test_a_reply_without_a_finish_reason_length_or_final_flag_takes_their_defaults():
    ids = np.array([[7, 8, 9]], np.int32)
    context = np.array([[5]], np.int32)
    bare = SchedulerReply.from_tensors({S.OUTPUT_IDS: ids, S.CONTEXT_IDS: context}.get)
    assert bare == SchedulerReply(token_ids=[], context_ids=[5], final=False, finish_reason="")  # length 0
    empty_finish = SchedulerReply.from_tensors({S.OUTPUT_IDS: ids, S.CONTEXT_IDS: context,
                                                S.SEQUENCE_LENGTH: np.array([3], np.int32),
                                                S.FINISH_REASON: np.array([], dtype=object)}.get)
    assert empty_finish.finish_reason == "" and empty_finish.token_ids == [7, 8, 9]
    text_finish = SchedulerReply.from_tensors({S.OUTPUT_IDS: ids, S.CONTEXT_IDS: context,
                                               S.IS_FINAL: np.array([[True]]),
                                               S.FINISH_REASON: np.array([["stop"]], dtype=object)}.get)
    assert text_finish.finish_reason == "stop" and text_finish.final  # a str passes as it is
