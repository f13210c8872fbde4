"""Many replicas behind a router, on one virtual clock: what routing does to the ranking's gain.

A production deployment runs R replicas of the served stack, and every replica's `ltr_scheduler`
orders only its own queue. Here each replica is a whole `simulator.sim.Simulation` (its queue,
admission slots, starvation prevention and engine, unchanged); a router sends each request, on
arrival, to one of them:

* `round_robin`: in turn (a plain Kubernetes Service, HAProxy's `roundrobin`);
* `random`: uniformly at random (kube-proxy in iptables mode);
* `least_waiting`: the fewest requests waiting in the scheduler's queue, then the fewest in flight
  (what a queue-aware router does: the Gateway API Inference Extension's endpoint picker reading
  `ltr_scheduler_waiting_requests`);
* `score`: the fewest waiting requests that the replica's queue would serve before this one (for
  LTR: those predicted shorter; for FCFS: all of them, so it is `least_waiting` there), then as
  `least_waiting`. It needs the request's score at the router, i.e. the predictor in front of it.
* `least_backlog`: the fewest predicted tokens still to come (`ltr_scheduler_predicted_backlog_tokens`,
  the endpoint picker's `queuedRequestsSpec`), then as `least_waiting`. Needs each request's
  expected tokens (`expected_tokens`: the score through a length calibration).

With a `scaler` (an autoscaler: from each gauge sample, the replica count it wants), the count
changes during the run: a replica asked for starts taking requests `start_delay_s` later (a pod's
start and engine load); one let go takes no new requests and finishes those it holds.

Ties go to the replica after the last one chosen, so that no replica is favoured.

One clock: requests are routed in arrival order. Before routing a request arriving at t, every
replica runs its iterations that start before t; a busy replica thus ends at the first iteration
boundary at or after t, which is where the router sees it (state at most one iteration old, as a
scraped gauge is). A replica never starts an iteration before every request arriving by then has
been routed to it, so each replica runs exactly as `simulate` would on the requests it received:
with one replica the result is `simulate`'s, to the last bit. The router sees the true state at
once (the Inference Extension scrapes every ~50 ms; an HPA every 15 s); starvation promotions are
not counted by `score`.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence, get_args

import numpy as np

from runtime.predicted_backlog import remaining_expected
from scheduler import Policy, QueuedRequest, RequestQueue, StarvationConfig
from simulator.policies import make_policy
from simulator.sim import SimConfig, SimRequest, Simulation, sim_request
from workloads.metrics import RequestTimes
from workloads.traces import TraceRequest

RouterName = Literal["round_robin", "random", "least_waiting", "score"]
ROUTERS: tuple[str, ...] = get_args(RouterName)  # the routers `make bench-replicas` compares on every workload
BACKLOG_ROUTER = "least_backlog"  # needs expected tokens: run on the predicted-backlog load step


class RankedQueue(RequestQueue):
    """The scheduler's queue, also keeping the waiting requests' keys sorted, so that a router can
    ask how many of them would be served before a new request (in O(log n))."""

    def __init__(self, policy: Policy, starvation: StarvationConfig | None = None, max_size: int | None = None) -> None:
        super().__init__(policy, starvation, max_size)
        self._keys: list[float] = []
        self._key_of: dict[str, float] = {}

    def push(self, request: QueuedRequest) -> None:
        super().push(request)
        key = self.policy.key(request)
        bisect.insort(self._keys, key)
        self._key_of[request.request_id] = key

    def pop(self, now: float | None = None) -> QueuedRequest | None:
        request = super().pop(now)
        if request is not None:
            self._forget(request.request_id)
        return request

    def remove(self, request_id: str) -> QueuedRequest | None:
        request = super().remove(request_id)
        if request is not None:
            self._forget(request_id)
        return request

    def served_before(self, key: float) -> int:
        """Waiting requests served before a newcomer of `key` (equal keys: the earlier arrival first)."""
        return bisect.bisect_right(self._keys, key)

    def _forget(self, request_id: str) -> None:
        key = self._key_of.pop(request_id)
        del self._keys[bisect.bisect_left(self._keys, key)]


class Replica(Simulation):
    """One replica: a `Simulation` whose requests are handed to it one at a time, in arrival order,
    and which runs only up to a given time until the last one is in."""

    queue_type = RankedQueue

    def __init__(self, policy: Policy, config: SimConfig) -> None:
        super().__init__([], [], policy, config)
        self.ranked: RankedQueue = self.queue  # type: ignore[assignment]
        self.expected: dict[str, float] = {}  # request id -> expected tokens (the predicted backlog's)
        self._live: list[SimRequest] = []  # added and maybe not finished (pruned when read)

    def add(self, request: SimRequest, expected_tokens: float | None = None) -> None:
        if self.not_arrived and request.queued.arrival < self.not_arrived[-1].queued.arrival:
            raise ValueError("requests must be added in arrival order")
        self.requests.append(request)
        self.not_arrived.append(request)
        self._live.append(request)
        if expected_tokens is not None:
            self.expected[request.queued.request_id] = expected_tokens

    def predicted_backlog(self) -> float:
        """`ltr_scheduler_predicted_backlog_tokens` of this replica: per live request, its expected
        tokens less those made (runtime.predicted_backlog's rule); a request without an expectation
        counts its max_tokens, as the scheduler does without a calibration."""
        self._live = [r for r in self._live if math.isnan(r.finish)]
        total = 0.0
        for r in self._live:
            e = r.engine
            total += remaining_expected(self.expected.get(r.queued.request_id, e.max_tokens), e.generated, e.max_tokens)
        return total

    def advance_to(self, t: float) -> None:
        """Run every iteration that starts before `t` (all requests arriving before `t` are in)."""
        while self.clock < t and self.finished < len(self.requests):
            self.iterate()

    @property
    def waiting(self) -> int:
        """Requests in the scheduler's queue, counting those that arrived during the running
        iteration (they join the queue when it ends): what `ltr_scheduler_waiting_requests` shows."""
        return len(self.queue) + len(self.not_arrived)

    @property
    def inflight(self) -> int:
        return self.admission.inflight

    def served_before(self, request: SimRequest) -> int:
        """Waiting requests this replica's queue would serve before `request`."""
        key = self.policy.key(request.queued)
        pending = sum(1 for r in self.not_arrived if self.policy.key(r.queued) <= key)
        return self.ranked.served_before(key) + pending

    def remaining_tokens(self) -> int:
        """Output tokens still to generate for every request it holds (waiting or running)."""
        return sum(_remaining(r) for r in self.requests if math.isnan(r.finish))


def _remaining(request: SimRequest) -> int:
    engine = request.engine
    answer = engine.max_tokens if engine.answer_len is None else min(engine.answer_len, engine.max_tokens)
    return max(answer - engine.generated, 0)


class Router(Protocol):
    name: str

    def choose(self, replicas: Sequence[Replica], request: SimRequest) -> int:
        """The index of the replica that gets `request`."""
        ...


class RoundRobin:
    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[Replica], request: SimRequest) -> int:
        chosen = self._next % len(replicas)
        self._next = chosen + 1
        return chosen


class RandomRouter:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def choose(self, replicas: Sequence[Replica], request: SimRequest) -> int:
        return int(self._rng.integers(len(replicas)))


class _LeastBy:
    """Choose the replica with the smallest load tuple; ties to the one after the last chosen."""

    name = ""

    def __init__(self) -> None:
        self._last = -1

    def load(self, replica: Replica, request: SimRequest) -> tuple[int, ...]:
        raise NotImplementedError

    def choose(self, replicas: Sequence[Replica], request: SimRequest) -> int:
        n = len(replicas)
        start = self._last + 1
        chosen = min(range(n), key=lambda i: (*self.load(replicas[i], request), (i - start) % n))
        self._last = chosen
        return chosen


class LeastWaiting(_LeastBy):
    name = "least_waiting"

    def load(self, replica: Replica, request: SimRequest) -> tuple[int, ...]:
        return replica.waiting, replica.inflight


class ScoreAware(_LeastBy):
    name = "score"

    def load(self, replica: Replica, request: SimRequest) -> tuple[int, ...]:
        return replica.served_before(request), replica.waiting, replica.inflight


class LeastBacklog(_LeastBy):
    name = BACKLOG_ROUTER

    def load(self, replica: Replica, request: SimRequest) -> tuple[float, ...]:  # type: ignore[override]
        return replica.predicted_backlog(), replica.waiting, replica.inflight


def make_router(name: str, seed: int = 0) -> Router:
    routers = {"round_robin": RoundRobin, "random": lambda: RandomRouter(seed), "least_waiting": LeastWaiting,
               "score": ScoreAware, BACKLOG_ROUTER: LeastBacklog}
    try:
        return routers[name]()
    except KeyError:
        raise ValueError(f"unknown router {name!r}; choose one of {', '.join((*ROUTERS, BACKLOG_ROUTER))}") from None


@dataclass(frozen=True)
class GaugeSample:
    """The cluster at one instant: what each pod's gauge shows, and the truth behind it."""

    t: float
    waiting: tuple[int, ...]  # ltr_scheduler_waiting_requests per replica
    inflight: tuple[int, ...]  # requests in each replica's engine
    remaining_tokens: int  # output tokens still to generate over the cluster (the true backlog of work)
    arrived: int  # requests arrived so far
    predicted_backlog: tuple[float, ...] = ()  # ltr_scheduler_predicted_backlog_tokens per replica
    provisioned: int = 0  # replicas asked for (taking requests or starting); without a scaler, all


@dataclass
class ReplicaResult:
    times: RequestTimes  # every request, in workload order
    replica: np.ndarray  # the replica each request went to
    steps: int
    preemptions: int
    wall_s: float
    samples: list[GaugeSample] = field(default_factory=list)

    def per_replica_requests(self, n_replicas: int) -> np.ndarray:
        return np.bincount(self.replica, minlength=n_replicas)


def simulate_replicas(
    requests: Sequence[TraceRequest],
    scores: Sequence[float] | np.ndarray,
    policy: str,
    router: str = "round_robin",
    n_replicas: int = 1,
    config: SimConfig = SimConfig(),
    seed: int = 0,
    sample_every_s: float | None = None,
    expected_tokens: Sequence[float] | np.ndarray | None = None,
    scaler: Callable[[GaugeSample], int] | None = None,
    max_replicas: int | None = None,
    start_delay_s: float = 0.0,
) -> ReplicaResult:
    """Serve `requests` on `n_replicas` replicas under `policy`, routed by `router`; with
    `sample_every_s`, also record the cluster's gauges at that period (from the first arrival).
    `expected_tokens` per request feed the predicted backlog (gauge and `least_backlog`); `scaler`
    (needs `sample_every_s`) sets the replica count from each sample, up to `max_replicas`, a new
    replica taking requests `start_delay_s` after it is asked for. A sample reads the replicas
    taking requests."""
    if n_replicas < 1:
        raise ValueError("n_replicas must be >= 1")
    if scaler is not None and not sample_every_s:
        raise ValueError("a scaler reads the gauges: give sample_every_s")
    wall0 = time.perf_counter()
    pool = max(n_replicas, max_replicas or n_replicas) if scaler is not None else n_replicas
    replicas = [Replica(make_policy(policy), config) for _ in range(pool)]
    ready_at = [0.0 if i < n_replicas else math.inf for i in range(pool)]  # when each takes requests
    chooser = make_router(router, seed)
    sims = [sim_request(i, r, scores[i]) for i, r in enumerate(requests)]
    expected = None if expected_tokens is None else [float(e) for e in expected_tokens]
    order = sorted(range(len(sims)), key=lambda i: sims[i].queued.arrival)
    assigned = np.full(len(sims), -1, dtype=np.int64)
    samples: list[GaugeSample] = []
    next_sample = sims[order[0]].queued.arrival if sims and sample_every_s else math.inf
    arrived = 0

    def taking(t: float) -> list[int]:
        return [i for i in range(pool) if ready_at[i] <= t]

    def sample_until(t: float) -> None:
        nonlocal next_sample
        while next_sample <= t:
            for rep in replicas:
                rep.advance_to(next_sample)
            up = [replicas[i] for i in taking(next_sample)]
            sample = GaugeSample(
                next_sample, tuple(r.waiting for r in up), tuple(r.inflight for r in up),
                sum(r.remaining_tokens() for r in replicas), arrived,
                tuple(r.predicted_backlog() for r in up) if expected is not None else (),
                sum(1 for a in ready_at if a < math.inf),
            )
            samples.append(sample)
            if scaler is not None:
                want = min(max(1, scaler(sample)), pool)
                for i in range(pool):  # the first `want` replicas: start those not asked for yet, let the rest go
                    if i < want and ready_at[i] == math.inf:
                        ready_at[i] = next_sample + start_delay_s
                    elif i >= want:
                        ready_at[i] = math.inf
            next_sample += sample_every_s  # type: ignore[operator]

    for i in order:
        request = sims[i]
        t = request.queued.arrival
        sample_until(t)
        for rep in replicas:
            rep.advance_to(t)
        up = taking(t)
        chosen = up[chooser.choose([replicas[k] for k in up], request)]
        replicas[chosen].add(request, None if expected is None else expected[i])
        assigned[i] = chosen
        arrived += 1
    if sample_every_s:
        while any(rep.finished < len(rep.requests) for rep in replicas):
            sample_until(next_sample)
    for rep in replicas:
        rep.run()
    times = RequestTimes(
        arrival=np.array([r.queued.arrival for r in sims], dtype=float),
        first_token=np.array([r.first_token for r in sims]) + config.request_overhead_s,
        finish=np.array([r.finish for r in sims]) + config.request_overhead_s,
        output_tokens=np.array([r.engine.output_tokens for r in sims], dtype=np.int64),
        max_gap=np.array([r.max_gap for r in sims]),
    )
    return ReplicaResult(times, assigned, sum(r.steps for r in replicas), sum(r.preemptions for r in replicas),
                         time.perf_counter() - wall0, samples)
