"""Discrete-event simulation of the deployment: the scheduler's queue in front of an
iteration-level batching engine, on a virtual clock.

The pieces are the served ones, unchanged: `scheduler.RequestQueue` with the policy and starvation
prevention (as in the `ltr_scheduler` model), an admission gate of `max_inflight` requests, and
`engine.BatchingEngine` (the same core and cost model as the `tensorrt_llm` stand-in) with its batch
slots, FCFS queue and KV budget. Events happen at iteration boundaries: arrivals during an iteration
join the queue when it ends; admitted requests join the next iteration.

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

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

import simulator.policies  # noqa: F401  (registers "mlfq")
from engine.batching import BatchingEngine, EngineRequest, KvPolicy
from engine.cost_model import CostModel
from workloads.traces import TraceRequest
from scheduler import QueuedRequest, RequestQueue, StarvationConfig, make_policy
from workloads.metrics import RequestTimes


@dataclass(frozen=True)
class SimConfig:
    """The deployment being simulated; defaults follow the shipped configs."""

    max_inflight: int = 64  # ltr_scheduler admission gate
    batch_slots: int = 64  # tensorrt_llm max_batch_slots
    kv_budget_tokens: int | None = None  # None: from the cost model (GPU memory)
    kv_policy: KvPolicy = "guaranteed_no_evict"
    starvation_threshold: int = 0  # admissions; 0 = off
    starvation_quantum: int = 0  # engine steps a promoted request is spared from preemption
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


def simulate(
    requests: Sequence[TraceRequest],
    scores: Sequence[float] | np.ndarray,
    policy: str,
    config: SimConfig = SimConfig(),
) -> SimResult:
    """Serve `requests` (sorted by arrival) under `policy` with per-request `scores`."""
    wall0 = time.perf_counter()
    n = len(requests)
    order = sorted(range(n), key=lambda i: requests[i].arrival_s)
    arrival = np.array([requests[i].arrival_s for i in range(n)], dtype=float)
    out_tokens = np.array([requests[i].output_tokens for i in range(n)], dtype=np.int64)
    pol = make_policy(policy)
    preemptive = bool(getattr(pol, "preemptive", False))
    queue = RequestQueue(
        pol, StarvationConfig(config.starvation_threshold, config.starvation_quantum)
    )
    step_no = 0
    admitted_step = [0] * n
    promoted = [0] * n
    qreqs: list[QueuedRequest] = [
        QueuedRequest(
            request_id=str(i),
            score=float(scores[i]),
            max_tokens=int(out_tokens[i]),
            arrival=float(arrival[i]),
            payload=i,
        )
        for i in range(n)
    ]

    def victim_key(r: EngineRequest) -> tuple[int, float, int]:
        i = r.payload
        spared = promoted[i] > 0 and step_no - admitted_step[i] < promoted[i]
        q = qreqs[i]
        q.attained = r.generated
        return (0 if spared else 1, pol.key(q), r.admit_seq)

    engine = BatchingEngine(
        cost_model=config.cost_model,
        max_batch_size=config.batch_slots,
        kv_budget_tokens=config.kv_budget_tokens,
        kv_policy=config.kv_policy,
        victim_key=victim_key,
        requeue_preempted=False,
    )
    eng_reqs = [
        EngineRequest(str(i), requests[i].prompt_tokens, int(out_tokens[i]), payload=i, keep_output_ids=False)
        for i in range(n)
    ]

    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    max_gap = np.zeros(n)
    inflight = 0
    done = 0
    preemptions = 0
    nxt = 0
    t = 0.0 if n == 0 else float(arrival[order[0]])
    base = float(config.request_overhead_s)

    def requeue(r: EngineRequest) -> None:
        q = qreqs[r.payload]
        q.attained = r.generated
        q.promoted_for = 0
        queue.push(q)

    while done < n:
        while nxt < n and arrival[order[nxt]] <= t:
            queue.push(qreqs[order[nxt]])
            nxt += 1
        while inflight < config.max_inflight and len(queue):
            q = queue.pop()
            i = q.payload
            admitted_step[i] = step_no
            promoted[i] = q.promoted_for
            engine.submit(eng_reqs[i])
            inflight += 1
        if engine.idle:
            if nxt >= n:
                raise RuntimeError("simulation stalled with requests unfinished")
            t = max(t, float(arrival[order[nxt]]))
            continue
        res = engine.step()
        step_no += 1
        t += res.duration_s
        for r in res.preempted:
            inflight -= 1
            preemptions += 1
            requeue(r)
        for r, _tok in res.emitted:
            i = r.payload
            prev = last[i]
            if prev != prev:  # NaN: first token
                first[i] = t
            else:
                gap = t - prev
                if gap > max_gap[i]:
                    max_gap[i] = gap
            last[i] = t
        for r in res.finished:
            finish[r.payload] = t
            inflight -= 1
            done += 1
        if config.demote_after_quantum and len(queue):
            for r in list(engine.running):
                i = r.payload
                if promoted[i] and step_no - admitted_step[i] >= promoted[i]:
                    promoted[i] = 0
                    head = queue.peek()
                    q = qreqs[i]
                    q.attained = r.generated
                    starving = queue.wait_count(head.request_id) >= config.starvation_threshold
                    if starving or pol.key(head) < pol.key(q):
                        engine.preempt(r.request_id, swap=True)
                        inflight -= 1
                        preemptions += 1
                        requeue(r)
        if preemptive and len(queue):
            best = pol.key(queue.peek())
            for r in list(engine.running):
                if pol.at_boundary(r.generated):  # type: ignore[attr-defined]
                    q = qreqs[r.payload]
                    q.attained = r.generated
                    if best < pol.key(q):
                        engine.preempt(r.request_id, swap=True)
                        inflight -= 1
                        preemptions += 1
                        requeue(r)

    times = RequestTimes(
        arrival=arrival,
        first_token=first + base,
        finish=finish + base,
        output_tokens=out_tokens,
        max_gap=max_gap,
    )
    return SimResult(times, step_no, preemptions, time.perf_counter() - wall0, t)
