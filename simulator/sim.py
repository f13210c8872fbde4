"""Discrete-event simulation of the deployment: the scheduler's queue in front of an
iteration-level batching engine, on a virtual clock.

The pieces are the served ones, unchanged: `scheduler.RequestQueue` with the policy and starvation
prevention (as in the `ltr_scheduler` model), the same `scheduler.AdmissionControl` of
`max_inflight` slots as its admission gate, and `engine.BatchingEngine` (the same core and cost
model as the `tensorrt_llm` stand-in) with its batch slots, FCFS queue and KV budget. Events happen
at iteration boundaries: arrivals during an iteration join the queue when it ends; admitted requests
join the next iteration.

Preemption: under `kv_policy="max_utilization"` the engine evicts a running request when the KV
cache is full; the simulator returns it to the scheduler's queue with `attained` set (victim: the
lowest-priority request by the policy, as the paper's scheduler does; promoted requests are spared
for `quantum` steps). Preemptive policies (MLFQ) are also preempted at quantum boundaries when a
higher-priority request waits; as in FastServe, their KV is swapped to host memory and back
(PCIe time charged), not recomputed.

Starvation prevention: the served path (TensorRT-LLM behind the gate) cannot preempt, so a promoted
request runs to completion. With `demote_after_quantum` the simulator follows the paper instead: a
promoted request runs `quantum` steps, then is swapped out and queued again (its counter restarts)
unless it would be chosen next anyway.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from deploy.repository import served_max_inflight, source_parameters
from engine.batching import BatchingEngine, KvPolicy
from engine.cost_model import CostModel
from engine.request import EngineRequest
from engine.vocab import EOT_ID
from scheduler import (
    AdmissionControl,
    ArrivalAwarePolicy,
    Policy,
    PreemptivePolicy,
    QueuedRequest,
    RequestQueue,
    StarvationConfig,
)
from simulator.policies import make_policy
from workloads.metrics import RequestTimes
from workloads.traces import TraceRequest

# The shipped deployment, read once: the simulator's defaults and the server cannot drift apart.
_SCHEDULER = source_parameters("ltr_scheduler")
_ENGINE = source_parameters("tensorrt_llm")


@dataclass(frozen=True)
class SimConfig:
    """The deployment being simulated; defaults follow the shipped configs (config.pbtxt)."""

    max_inflight: int = served_max_inflight()  # ltr_scheduler admission gate: the engine's capacity
    batch_slots: int = int(_ENGINE["max_batch_slots"])  # tensorrt_llm batch slots
    kv_budget_tokens: int | None = None  # None: from the cost model (GPU memory)
    kv_policy: KvPolicy = "guaranteed_no_evict"
    starvation_threshold: int = int(_SCHEDULER["starvation_threshold"])  # admissions; 0 = off
    starvation_quantum: int = int(_SCHEDULER["starvation_quantum"])  # engine steps a promoted request is spared
    cost_model: CostModel = field(default_factory=CostModel)
    request_overhead_s: float = 0.0  # fixed per-request latency outside the engine (served path)
    demote_after_quantum: bool = False  # paper's starvation prevention: promoted for `quantum` steps only


@dataclass
class SimResult:
    times: RequestTimes
    steps: int
    preemptions: int
    wall_s: float
    sim_end_s: float
    mean_batch_size: float = 0.0  # requests in the engine per iteration, on average
    peak_kv_tokens: int = 0  # most KV-cache tokens held or reserved at once


@dataclass(eq=False)
class SimRequest:
    """One request through the run: its scheduler and engine views, and when its tokens came."""

    queued: QueuedRequest  # `promoted_for` > 0 while a starvation promotion protects it
    engine: EngineRequest
    admitted_step: int = 0
    first_token: float = math.nan
    last_token: float = math.nan
    finish: float = math.nan
    max_gap: float = 0.0  # longest wait between two of its tokens

    def token_at(self, t: float) -> None:
        if math.isnan(self.last_token):
            self.first_token = t
        elif t - self.last_token > self.max_gap:
            self.max_gap = t - self.last_token
        self.last_token = t


def sim_request(index: int, request: TraceRequest, score: float) -> SimRequest:
    """A workload's request as the simulation tracks it (id: its index in the workload). Each answer
    ends with the end token after its natural length (`output_tokens`), or at the client's cap; the
    oracle alone learns the length (`expected_len`), as benchmarks tell it."""
    r = request
    sim = SimRequest(
        QueuedRequest(
            str(index), score=float(score), max_tokens=r.max_tokens or r.output_tokens,
            expected_len=r.output_tokens, arrival=float(r.arrival_s),
        ),
        EngineRequest(
            str(index), r.prompt_tokens, r.max_tokens or r.output_tokens, answer_len=r.output_tokens,
            end_id=EOT_ID, keep_output_ids=False,
        ),
    )
    sim.queued.payload = sim.engine.payload = sim
    return sim


class Simulation:
    """One run: requests arrive, are admitted through the scheduler's slots, the engine steps, and
    preempted requests go back to the queue."""

    queue_type: type[RequestQueue] = RequestQueue  # a subclass may keep more books (simulator.replicas)

    def __init__(
        self, requests: Sequence[TraceRequest], scores: Sequence[float] | np.ndarray, policy: Policy, config: SimConfig
    ) -> None:
        self.config = config
        self.policy = policy
        # MLFQ: also preempted at quantum boundaries (checked once: a Protocol isinstance is slow)
        self.preemptive: PreemptivePolicy | None = policy if isinstance(policy, PreemptivePolicy) else None
        # the guarded policy learns from finished requests, as the served scheduler tells it
        self.aware: ArrivalAwarePolicy | None = policy if isinstance(policy, ArrivalAwarePolicy) else None
        self.requests = [sim_request(i, r, scores[i]) for i, r in enumerate(requests)]
        self.not_arrived = deque(sorted(self.requests, key=lambda r: r.queued.arrival))
        self.admission = AdmissionControl(
            self.queue_type(policy, StarvationConfig(config.starvation_threshold, config.starvation_quantum)),
            config.max_inflight,
        )
        self.queue = self.admission.queue
        self.engine = BatchingEngine(
            cost_model=config.cost_model,
            max_batch_size=config.batch_slots,
            kv_budget_tokens=config.kv_budget_tokens,
            kv_policy=config.kv_policy,
            victim_key=self._victim_key,
            requeue_preempted=False,  # evicted requests go back to the scheduler's queue instead
        )
        self.clock = self.not_arrived[0].queued.arrival if self.requests else 0.0
        self.steps = 0
        self.preemptions = 0
        self.finished = 0
        self.batched = 0  # sum of batch sizes over the iterations

    def run(self) -> None:
        while self.finished < len(self.requests):
            self.iterate()

    def iterate(self) -> None:
        """One turn of the loop: arrivals join, free slots fill, then one engine iteration (or, when
        the engine is idle, the clock jumps to the next arrival). `simulator.replicas` drives
        several simulations turn by turn on one clock."""
        self.arrive()
        self.admit()
        if self.engine.idle:
            self.wait_for_next_arrival()
            return
        self.step_engine()
        if self.config.demote_after_quantum:
            self.demote_after_quantum()
        if self.preemptive is not None:
            self.preempt_at_quantum_boundary(self.preemptive)

    def arrive(self) -> None:
        """Requests that arrived by now join the queue."""
        while self.not_arrived and self.not_arrived[0].queued.arrival <= self.clock:
            self.queue.push(self.not_arrived.popleft().queued)

    def admit(self) -> None:
        """Waiting requests take the free slots, in the policy's order, and enter the engine."""
        for queued in self.admission.admit_waiting(self.clock):
            request: SimRequest = queued.payload
            request.admitted_step = self.steps
            self.engine.submit(request.engine)

    def wait_for_next_arrival(self) -> None:
        if not self.not_arrived:
            raise RuntimeError("simulation stalled with requests unfinished")
        self.clock = max(self.clock, self.not_arrived[0].queued.arrival)

    def step_engine(self) -> None:
        """One engine iteration: the clock advances by its duration; its tokens, finished requests
        and KV evictions are recorded."""
        result = self.engine.step()
        self.steps += 1
        self.batched += result.batch_size
        self.clock += result.duration_s
        for evicted in result.preempted:
            self.preempt(evicted.payload, evicted_by_engine=True)
        for running, token in result.emitted:
            if not (running.finish_reason == "end_id" and token == running.end_id):  # not sent to the client
                running.payload.token_at(self.clock)
        for done in result.finished:
            done.payload.finish = done.payload.last_token  # the client's view: its last token
            if self.aware is not None:
                self.aware.finished(done.payload.queued, done.output_tokens, _client_reason(done))
            self.admission.release()
            self.finished += 1

    def demote_after_quantum(self) -> None:
        """The paper's starvation prevention: a promoted request whose `quantum` steps are over is
        swapped out if the head of the queue is starving too or ranks above it."""
        if not len(self.queue):
            return
        for running in list(self.engine.running):
            request: SimRequest = running.payload
            promoted_for = request.queued.promoted_for
            if promoted_for and self.steps - request.admitted_step >= promoted_for:
                request.queued.promoted_for = 0
                head = self.queue.peek()
                assert head is not None
                starving = self.queue.wait_count(head.request_id) >= self.config.starvation_threshold
                if starving or self.policy.key(head) < self._running_key(request):
                    self.preempt(request)

    def preempt_at_quantum_boundary(self, policy: PreemptivePolicy) -> None:
        """MLFQ: a request that just used up its level's quantum is swapped out when the best
        waiting request (as ranked before this round of preemptions) ranks above it."""
        head = self.queue.peek()
        if head is None:
            return
        best = policy.key(head)
        for running in list(self.engine.running):
            if policy.at_boundary(running.generated) and best < self._running_key(running.payload):
                self.preempt(running.payload)

    def preempt(self, request: SimRequest, evicted_by_engine: bool = False) -> None:
        """Take a running request out of the engine (swapping its KV to host memory) unless the
        engine already evicted it, free its slot and queue it again with the tokens it has."""
        if not evicted_by_engine:
            self.engine.preempt(request.engine.request_id, swap=True)
        self.admission.release()
        self.preemptions += 1
        request.queued.attained = request.engine.generated
        request.queued.promoted_for = 0
        self.queue.push(request.queued)

    def result(self, wall_s: float) -> SimResult:
        overhead = float(self.config.request_overhead_s)
        times = RequestTimes(
            arrival=np.array([r.queued.arrival for r in self.requests], dtype=float),
            first_token=np.array([r.first_token for r in self.requests]) + overhead,
            finish=np.array([r.finish for r in self.requests]) + overhead,
            output_tokens=np.array([r.engine.output_tokens for r in self.requests], dtype=np.int64),
            max_gap=np.array([r.max_gap for r in self.requests]),
        )
        return SimResult(times, self.steps, self.preemptions, wall_s, self.clock,
                         self.batched / self.steps if self.steps else 0.0, self.engine.peak_kv_used)

    def _running_key(self, request: SimRequest) -> float:
        """The policy's key of a running request, counting the tokens it has received so far."""
        request.queued.attained = request.engine.generated
        return self.policy.key(request.queued)

    def _victim_key(self, running: EngineRequest) -> tuple[int, float, int]:
        """The engine evicts the largest key: unprotected before promoted-and-protected requests,
        then the lowest priority, then the latest admitted."""
        request: SimRequest = running.payload
        promoted_for = request.queued.promoted_for
        protected = promoted_for > 0 and self.steps - request.admitted_step < promoted_for
        return (0 if protected else 1, self._running_key(request), running.admit_seq)


def _client_reason(request: EngineRequest) -> str:
    """The engine's finish reason as the client sees it (stop, length or cancelled)."""
    return {"length": "length", "cancelled": "cancelled"}.get(str(request.finish_reason), "stop")


def simulate(
    requests: Sequence[TraceRequest],
    scores: Sequence[float] | np.ndarray,
    policy: str | Policy,
    config: SimConfig = SimConfig(),
) -> SimResult:
    """Serve `requests` under `policy` (a name, or a policy built with its settings) with
    per-request `scores`."""
    wall0 = time.perf_counter()
    sim = Simulation(requests, scores, make_policy(policy) if isinstance(policy, str) else policy, config)
    sim.run()
    return sim.result(time.perf_counter() - wall0)
