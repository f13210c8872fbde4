"""The entry model's seams: a step's error keeps its message and its code as they came."""

from __future__ import annotations

from runtime.entry_seams import StepError


def test_a_step_error_keeps_its_message_and_code():
    error = StepError("text_input is empty", "INVALID_ARG")
    assert (error.message, error.code, str(error)) == ("text_input is empty", "INVALID_ARG", "text_input is empty")
    assert StepError("ltr_bls failed: boom").code is None  # the sender then answers INTERNAL
