"""Scheduling policies: each maps a request to a sort key; smaller keys are admitted first.

Ties are broken by arrival order in the queue, so a policy only says what it ranks by.
"""

from __future__ import annotations

import bisect
import logging
import math
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Protocol, get_args, runtime_checkable

from scheduler.guard import GuardConfig, RankingGuard
from scheduler.request import QueuedRequest

log = logging.getLogger(__name__)

PolicyName = Literal["fcfs", "ltr", "oracle", "guarded"]
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


@runtime_checkable
class ArrivalAwarePolicy(Policy, Protocol):
    """A policy that may hand the next slot to the oldest waiting request instead of its best-ranked
    one (wall-clock aging, a work budget, a guard that distrusts the ranking), and that learns from
    what it admitted and from finished requests. The queue asks it at every admission."""

    def prefer_oldest(self, oldest: QueuedRequest, now: float | None) -> bool:
        """True: admit `oldest` (the longest-waiting request) now, whatever the keys say."""
        ...

    def admitted(self, request: QueuedRequest, overtook: bool) -> None:
        """`request` was admitted; `overtook`: it went ahead of an older waiting request."""
        ...

    def finished(self, request: QueuedRequest, generated: int, finish_reason: str) -> None:
        """`request` ended with `generated` tokens (`finish_reason`: stop, length or cancelled)."""
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


@dataclass(frozen=True)
class GuardedConfig:
    """Settings of the `guarded` policy (config.pbtxt parameters `guarded_*`, `slo_*`, `guard_*`).

    `ttft_target_s`: the deployment's TTFT target (a request may carry its own). `age_factor`: the
    oldest waiting request is admitted next once it has waited `age_factor` x its TTFT target
    (0: no aging). `short_quantile`: only requests whose score is in this lowest share of the last
    `score_window` scores may overtake (1: any request, LTR's order). `overtake_share`: at most this share of the recently generated tokens may go to
    requests that overtook an older one (1: no budget). `budget_window`: finished requests that share
    is measured over."""

    ttft_target_s: float = 2.0
    short_quantile: float = 0.2
    age_factor: float = 0.0
    overtake_share: float = 1.0
    budget_window: int = 500
    score_window: int = 1000
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        if (self.ttft_target_s <= 0 or self.age_factor < 0 or not 0 <= self.overtake_share <= 1
                or not 0 <= self.short_quantile <= 1 or self.budget_window < 1 or self.score_window < 1):
            raise ValueError("guarded policy: ttft_target_s > 0, age_factor >= 0, 0 <= overtake_share <= 1, "
                             "0 <= short_quantile <= 1, budget_window >= 1, score_window >= 1")

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "GuardedConfig":
        """From config.pbtxt parameters; missing ones keep their defaults."""
        d, g = cls(), GuardConfig()

        def get(key: str, default: float) -> float:
            value = params.get(key, "")
            return float(value) if str(value).strip() != "" else default

        return cls(
            ttft_target_s=get("slo_ttft_s", d.ttft_target_s),
            short_quantile=get("guarded_short_quantile", d.short_quantile),
            score_window=int(get("guarded_score_window", d.score_window)),
            age_factor=get("guarded_age_factor", d.age_factor),
            overtake_share=get("guarded_overtake_share", d.overtake_share),
            budget_window=int(get("guarded_budget_window", d.budget_window)),
            guard=GuardConfig(
                floor=get("guard_tau_floor", g.floor), window=int(get("guard_window", g.window)),
                min_samples=int(get("guard_min_samples", g.min_samples)), every=int(get("guard_every", g.every)),
            ),
        )


class Guarded:
    """Shortest-predicted-first that never falls far behind first come, first served.

    Only requests predicted short (score among the lowest `short_quantile` of recent scores) may
    overtake, shortest-predicted first; every other request waits in arrival order behind them. The
    mean gain of shortest-first comes from the short answers (their seconds per token suffer most
    from waiting), while the tail is made of the long ones: LTR loses its tail because mid-length
    requests overtake the long ones again and again, not because short ones do. The next slot goes
    to the oldest waiting request instead when
    * it has waited `age_factor` x its TTFT target (aging on the wall clock, measured against the
      SLO, not by a count of admissions);
    * requests that overtook an older one already took `overtake_share` of the recent work (tokens
      generated): the queue behind them drains at no less than (1 - share) of the engine's pace, so
      a request waits at most about 1 / (1 - share) times as long as under FCFS, in overload too;
    * the ranking guard (`scheduler.guard`) does not trust the predictor: plain arrival order.
    """

    name = "guarded"

    def __init__(self, config: GuardedConfig | None = None) -> None:
        self.config = config or GuardedConfig()
        self.guard = RankingGuard(self.config.guard)
        self._recent: deque[float] = deque()  # the last `score_window` scores, in arrival order
        self._sorted: list[float] = []  # the same, sorted
        self._keys: weakref.WeakKeyDictionary[QueuedRequest, float] = weakref.WeakKeyDictionary()
        self._work: deque[tuple[bool, int]] = deque()  # (overtook, tokens) of recent finishes
        self._overtook_tokens = 0
        self._tokens = 0
        self.aged_total = 0  # admissions of the oldest for its wait
        self.budget_total = 0  # ... because the overtaking budget was spent
        self.distrusted_total = 0  # ... because the guard distrusts the ranking

    def key(self, request: QueuedRequest) -> float:
        """The score for a request predicted short, +inf (arrival order) for the others. Decided
        once per request, when it is first asked (queued): that also records its score for the
        quantile; asking again (a requeued or running request) gives the same key."""
        known = self._keys.get(request)
        if known is not None:
            return known
        short = self._quantile(request.score) <= self.config.short_quantile
        self._remember(request.score)
        key = self._keys[request] = request.score if short else math.inf
        return key

    def _quantile(self, score: float) -> float:
        """Share of recent scores below `score` (ties count half); 0 before any score is known."""
        if not self._sorted:
            return 0.0
        lo, hi = bisect.bisect_left(self._sorted, score), bisect.bisect_right(self._sorted, score)
        return (lo + hi) / 2 / len(self._sorted)

    def _remember(self, score: float) -> None:
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        if len(self._recent) > self.config.score_window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def prefer_oldest(self, oldest: QueuedRequest, now: float | None) -> bool:
        if not self.guard.trusted:
            self.distrusted_total += 1
            return True
        target = oldest.ttft_target_s or self.config.ttft_target_s
        if now is not None and self.config.age_factor > 0 and now - oldest.arrival >= self.config.age_factor * target:
            self.aged_total += 1
            return True
        if self._tokens > 0 and self._overtook_tokens > self.config.overtake_share * self._tokens:
            self.budget_total += 1
            return True
        return False

    def admitted(self, request: QueuedRequest, overtook: bool) -> None:
        request.overtook = overtook

    def finished(self, request: QueuedRequest, generated: int, finish_reason: str) -> None:
        change = self.guard.observe(request.score, generated, finish_reason)
        if change is not None:
            g = self.guard.stats()
            log.warning("ranking guard: tau %.3f over %d finished requests (%d known pairs, floor %.2f): %s",
                        g.tau, g.samples, g.pairs, g.floor,
                        "ranking trusted, shortest-predicted-first" if change else "falling back to arrival order")
        self._work.append((request.overtook, generated))
        self._tokens += generated
        self._overtook_tokens += generated if request.overtook else 0
        if len(self._work) > self.config.budget_window:
            overtook, tokens = self._work.popleft()
            self._tokens -= tokens
            self._overtook_tokens -= tokens if overtook else 0

    @property
    def overtaken_share(self) -> float:
        """Share of the recent work that went to requests admitted ahead of older ones."""
        return self._overtook_tokens / self._tokens if self._tokens else math.nan


_FACTORIES: dict[str, Callable[[], Policy]] = {
    "fcfs": FCFS,
    "ltr": LearnedRank,
    "oracle": Oracle,
    "guarded": Guarded,
}


def make_policy(
    name: str, extra: Mapping[str, Callable[[], Policy]] | None = None, params: Mapping[str, str] | None = None
) -> Policy:
    """Build a served policy by name, or one of `extra` (the simulator passes its own); an unknown
    name fails with the list of every valid one. `params` (config.pbtxt) configure `guarded`."""
    factories = {**_FACTORIES, **(extra or {})}
    if name == "guarded" and params is not None and "guarded" not in (extra or {}):
        return Guarded(GuardedConfig.from_params(params))
    try:
        return factories[name]()
    except KeyError:
        raise ValueError(
            f"unknown scheduling policy {name!r}; choose one of {', '.join(sorted(factories))}"
        ) from None
