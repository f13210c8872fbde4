"""A bounded priority queue of waiting requests with the paper's starvation prevention.

Ordering: the policy's key, ties by arrival. Starvation prevention (Fu et al. 2024, §4): a waiting
request's counter grows by one each time another request is admitted ahead of it; when it reaches
`threshold` the request is promoted and admitted next, oldest promoted first. A promoted request
carries `quantum` in `QueuedRequest.promoted_for`: an engine that preempts (the simulator) keeps it
running at least that many steps; the served engine never preempts, so there it runs to completion.

Costs: push, pop and remove are O(log n) (amortised; removal is lazy), so 10,000 waiting requests
stay cheap. The counters are not stored per request: the counter of a request is the number of
admissions since it was queued, so the oldest waiting request always has the largest counter and
only it needs checking.

An `ArrivalAwarePolicy` (the `guarded` policy) may also hand a slot to the oldest waiting request
(wall-clock aging, a work budget, a distrusted ranking): `pop(now)` asks it, and tells it what it
admitted and whether that request overtook an older one.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

from scheduler.policies import ArrivalAwarePolicy, Policy
from scheduler.request import QueuedRequest


class QueueFull(Exception):
    """Raised by `push` when `max_size` requests are already waiting."""


@dataclass(frozen=True)
class StarvationConfig:
    """`threshold`: admissions of others a request may wait through before it is promoted
    (0 disables promotion). `quantum`: engine steps a promoted request is protected for."""

    threshold: int = 0
    quantum: int = 0

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.quantum < 0:
            raise ValueError("starvation threshold and quantum must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.threshold > 0


@dataclass(frozen=True)
class QueueStats:
    """A snapshot of the queue for logs, metrics and tests."""

    policy: str
    waiting: int
    admitted_total: int
    promoted_total: int
    rejected_total: int
    removed_total: int
    oldest_wait_count: int
    oldest_picks_total: int = 0  # admissions the policy gave to the oldest waiting request


class _Entry:
    __slots__ = ("request", "seq", "stamp", "alive")

    def __init__(self, request: QueuedRequest, seq: int, stamp: int) -> None:
        self.request = request
        self.seq = seq
        self.stamp = stamp  # admissions counted when it was queued
        self.alive = True


class RequestQueue:
    """Waiting requests ordered by a policy, bounded by `max_size` (None: unbounded)."""

    def __init__(
        self,
        policy: Policy,
        starvation: StarvationConfig | None = None,
        max_size: int | None = None,
    ) -> None:
        if max_size is not None and max_size <= 0:
            raise ValueError("max_size must be positive (or None for unbounded)")
        self.policy = policy
        # checked once: a Protocol isinstance is slow
        self._aware: ArrivalAwarePolicy | None = policy if isinstance(policy, ArrivalAwarePolicy) else None
        self._oldest_picks = 0
        self.starvation = starvation or StarvationConfig()
        self.max_size = max_size
        self._heap: list[tuple[float, int, _Entry]] = []
        self._by_id: dict[str, _Entry] = {}  # insertion order == queueing order
        self._seq = itertools.count()
        self._admissions = 0
        self._promoted = 0
        self._rejected = 0
        self._removed = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._by_id

    def push(self, request: QueuedRequest) -> None:
        """Queue a request; raises QueueFull past `max_size`, ValueError on a duplicate id."""
        if request.request_id in self._by_id:
            raise ValueError(f"request {request.request_id!r} is already queued")
        if self.max_size is not None and len(self._by_id) >= self.max_size:
            self._rejected += 1
            raise QueueFull(f"server overloaded: {len(self._by_id)} requests already waiting")
        entry = _Entry(request, next(self._seq), self._admissions)
        self._by_id[request.request_id] = entry
        heapq.heappush(self._heap, (self.policy.key(request), entry.seq, entry))

    def pop(self, now: float | None = None) -> QueuedRequest | None:
        """Take the next request to admit (None when empty) and count one admission. `now`: the
        clock of the requests' `arrival`, for policies that age requests by their wait."""
        if not self._by_id:
            return None
        oldest = next(iter(self._by_id.values()))
        entry = self._starving_entry()
        if entry is not None:
            self._promoted += 1
            entry.request.promoted_for = self.starvation.quantum
        elif self._aware is not None and self._aware.prefer_oldest(oldest.request, now):
            entry = oldest
            self._oldest_picks += 1
        else:
            entry = self._pop_heap()
        if self._aware is not None:
            self._aware.admitted(entry.request, overtook=entry is not oldest)
        entry.alive = False
        del self._by_id[entry.request.request_id]
        self._admissions += 1
        self._compact_if_sparse()
        return entry.request

    def remove(self, request_id: str) -> QueuedRequest | None:
        """Drop a waiting request (cancelled, timed out); returns it, or None if not waiting."""
        entry = self._by_id.pop(request_id, None)
        if entry is None:
            return None
        entry.alive = False
        self._removed += 1
        self._compact_if_sparse()
        return entry.request

    def peek(self) -> QueuedRequest | None:
        """The request `pop` would return, without taking it."""
        if not self._by_id:
            return None
        entry = self._starving_entry()
        if entry is None:
            self._drop_dead_top()
            entry = self._heap[0][2]
        return entry.request

    def wait_count(self, request_id: str) -> int:
        """Admissions of others since the request was queued (its starvation counter)."""
        return self._admissions - self._by_id[request_id].stamp

    def stats(self) -> QueueStats:
        oldest = next(iter(self._by_id.values()), None)
        return QueueStats(
            policy=self.policy.name,
            waiting=len(self._by_id),
            admitted_total=self._admissions,
            promoted_total=self._promoted,
            rejected_total=self._rejected,
            removed_total=self._removed,
            oldest_wait_count=0 if oldest is None else self._admissions - oldest.stamp,
            oldest_picks_total=self._oldest_picks,
        )

    def _starving_entry(self) -> _Entry | None:
        if not self.starvation.enabled:
            return None
        oldest = next(iter(self._by_id.values()))
        if self._admissions - oldest.stamp >= self.starvation.threshold:
            return oldest
        return None

    def _pop_heap(self) -> _Entry:
        self._drop_dead_top()
        return heapq.heappop(self._heap)[2]

    def _drop_dead_top(self) -> None:
        while not self._heap[0][2].alive:
            heapq.heappop(self._heap)

    def _compact_if_sparse(self) -> None:
        """Rebuild the heap when dead entries outnumber live ones, bounding memory."""
        if len(self._heap) > 2 * len(self._by_id) + 64:
            self._heap = [item for item in self._heap if item[2].alive]
            heapq.heapify(self._heap)
