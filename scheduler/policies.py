"""Scheduling policies: each maps a request to a sort key; smaller keys are admitted first.

Ties are broken by arrival order in the queue, so a policy only says what it ranks by.
"""

from __future__ import annotations

from typing import Callable, Literal, Protocol, get_args

from scheduler.request import QueuedRequest

PolicyName = Literal["fcfs", "ltr", "oracle"]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)


class Policy(Protocol):
    """The one small interface every policy implements."""

    name: str

    def key(self, request: QueuedRequest) -> float:
        """Sort key: smaller is served first; equal keys are served in arrival order."""
        ...


class FCFS:
    """First come, first served: every key is equal, so arrival order decides."""

    name = "fcfs"

    def key(self, request: QueuedRequest) -> float:
        return 0.0


class LearnedRank:
    """Shortest-predicted-first by the ranking predictor's score (the paper's LTR policy)."""

    name = "ltr"

    def key(self, request: QueuedRequest) -> float:
        return request.score


class Oracle:
    """Shortest-job-first by the requested `max_tokens`: an upper bound for experiments, since
    benchmarks set `max_tokens` to the true response length."""

    name = "oracle"

    def key(self, request: QueuedRequest) -> float:
        return float(request.max_tokens - request.attained)


_FACTORIES: dict[str, Callable[[], Policy]] = {
    "fcfs": FCFS,
    "ltr": LearnedRank,
    "oracle": Oracle,
}


def register_policy(name: str, factory: Callable[[], Policy]) -> None:
    """Add a policy under `name` (simulator-only policies register themselves this way)."""
    _FACTORIES[name] = factory


def available_policies() -> list[str]:
    return sorted(_FACTORIES)


def make_policy(name: str) -> Policy:
    """Build a policy by name; unknown names fail with the list of known ones."""
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ValueError(
            f"unknown scheduling policy {name!r}; choose one of {', '.join(available_policies())}"
        ) from None
