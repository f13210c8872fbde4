"""Scheduling policies: each maps a request to a sort key; smaller keys are admitted first.

Ties are broken by arrival order in the queue, so a policy only says what it ranks by.
"""

from __future__ import annotations

from typing import Callable, Literal, Mapping, Protocol, get_args, runtime_checkable

from scheduler.request import QueuedRequest

PolicyName = Literal["fcfs", "ltr", "oracle"]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)


class Policy(Protocol):
    """The one small interface every policy implements."""

    name: str

    def key(self, request: QueuedRequest) -> float:
        """Sort key: smaller is served first; equal keys are served in arrival order."""
        ...


@runtime_checkable
class PreemptivePolicy(Policy, Protocol):
    """A policy that also takes running requests out of the engine (FastServe's MLFQ): it needs an
    engine that preempts, so only the simulator runs it; the served engine cannot."""

    def at_boundary(self, attained: int) -> bool:
        """True when a running request that has received `attained` tokens has just used up its
        quantum: it goes back to the queue if a waiting request now ranks above it."""
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
    """Shortest-job-first by the true remaining length: an upper bound, for experiments only.

    It ranks by `expected_len`, which only benchmarks send (the ensemble's experiments-only input
    `expected_output_len`); a request without it ranks by its `max_tokens` cap."""

    name = "oracle"

    def key(self, request: QueuedRequest) -> float:
        length = request.max_tokens if request.expected_len is None else request.expected_len
        return float(length - request.attained)


_FACTORIES: dict[str, Callable[[], Policy]] = {
    "fcfs": FCFS,
    "ltr": LearnedRank,
    "oracle": Oracle,
}


def make_policy(name: str, extra: Mapping[str, Callable[[], Policy]] | None = None) -> Policy:
    """Build a served policy by name, or one of `extra` (the simulator passes its own); an unknown
    name fails with the list of every valid one."""
    factories = {**_FACTORIES, **(extra or {})}
    try:
        return factories[name]()
    except KeyError:
        raise ValueError(
            f"unknown scheduling policy {name!r}; choose one of {', '.join(sorted(factories))}"
        ) from None
