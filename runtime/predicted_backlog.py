"""Predicted work of one scheduler, in output tokens, free of Triton: the sum over the requests
waiting of their expected answer lengths, plus, for those generating, what is expected beyond the
tokens already made. Published as `ltr_scheduler_predicted_backlog_tokens` for the autoscaler and
the endpoint picker: a queue of ten 2,000-token answers is more work than one of ten 20-token ones,
which the waiting count alone cannot tell.

A generating request that has run past its expectation still has work left that the calibration did
not foresee; it counts `overrun_tokens` (not zero) until it ends, never more than its `max_tokens`
leave.
"""

from __future__ import annotations

from dataclasses import dataclass

OVERRUN_TOKENS = 16.0


def remaining_expected(expected: float, generated: int, max_tokens: float,
                       overrun_tokens: float = OVERRUN_TOKENS) -> float:
    """Tokens still expected from one request (the gauge's term; the simulator uses it too): its
    expectation less what it has made, `overrun_tokens` once it has run past it, never more than its
    `max_tokens` leave."""
    left = expected - generated
    if left <= 0 and generated:
        left = overrun_tokens
    return max(0.0, min(left, max_tokens - generated))


@dataclass
class _Entry:
    expected: float
    max_tokens: float
    generated: int = 0
    admitted: bool = False


class PredictedBacklog:
    """Live requests' expected and generated tokens; `total()` is the gauge's value."""

    def __init__(self, overrun_tokens: float = OVERRUN_TOKENS) -> None:
        self.overrun_tokens = overrun_tokens
        self._live: dict[str, _Entry] = {}

    def arrived(self, request_id: str, expected_tokens: float, max_tokens: float = float("inf")) -> None:
        self._live[request_id] = _Entry(min(max(0.0, expected_tokens), max_tokens), max_tokens)

    def admitted(self, request_id: str) -> None:
        if request_id in self._live:
            self._live[request_id].admitted = True

    def generated(self, request_id: str, tokens: int) -> None:
        if request_id in self._live:
            self._live[request_id].generated = tokens

    def ended(self, request_id: str) -> None:
        self._live.pop(request_id, None)

    def remaining(self, request_id: str) -> float:
        entry = self._live[request_id]
        return remaining_expected(entry.expected, entry.generated, entry.max_tokens, self.overrun_tokens)

    def total(self) -> float:
        """Tokens expected from every waiting and generating request still to come."""
        return float(sum(self.remaining(request_id) for request_id in self._live))

    def waiting_total(self) -> float:
        return float(sum(e.expected for e in self._live.values() if not e.admitted))
