"""Predicted backlog: waiting requests count their whole expected length, generating ones what is
left of it, an overrun a small remainder, and an ended request nothing."""

from __future__ import annotations

from runtime.predicted_backlog import PredictedBacklog


def test_waiting_generating_overrun_and_ended():
    backlog = PredictedBacklog(overrun_tokens=5)
    backlog.arrived("a", 100)
    backlog.arrived("b", 40)
    assert backlog.total() == 140 and backlog.waiting_total() == 140
    backlog.admitted("a")
    backlog.generated("a", 30)
    assert backlog.total() == 70 + 40 and backlog.waiting_total() == 40
    backlog.generated("a", 130)  # past its expectation: still generating, so not nothing
    assert backlog.remaining("a") == 5
    backlog.ended("a")
    backlog.ended("a")  # twice is harmless
    assert backlog.total() == 40


def test_max_tokens_caps_what_is_left():
    backlog = PredictedBacklog(overrun_tokens=16)
    backlog.arrived("a", 500, max_tokens=100)
    assert backlog.total() == 100
    backlog.generated("a", 95)
    assert backlog.total() == 5  # 16 overrun, but only 5 tokens may come
    backlog.generated("a", 100)
    assert backlog.total() == 0


def test_unknown_ids_and_negative_expectations_are_harmless():
    backlog = PredictedBacklog()
    backlog.admitted("x")
    backlog.generated("x", 3)
    backlog.arrived("y", -4)
    assert backlog.total() == 0
