"""`make bench-replicas`: FCFS, LTR and the oracle on R replicas behind each router, and the
autoscaling signal over a load step. Writes results/replicas.json, .md and plots.

Load: every replica sees the same load at every R: `load` (1.1) times one replica's capacity for
the workload (FCFS throughput on a burst of 2,000 of its requests, `simulator.sweep.measure_capacity`),
so the cluster gets R times that.
* Text workloads (AlpacaEval, Arena-Hard): Poisson arrivals at R x load x capacity for `duration_s`.
* Traces (Azure conversation, Mooncake conversation): R consecutive windows of the trace, each of
  load x capacity x duration requests with its own arrival pattern stretched or squeezed to the
  duration, superposed (every replica's share is a real stretch of the trace; the cluster's stream
  is R of them at once, as R times as many users would send).
Every request sends the generic `max_tokens` cap (`workloads.traces.with_max_tokens`; no trace
answer exceeds it). Scores: cross-fitted on the text workloads; on traces a noisy oracle at the
shipped predictor's Kendall's tau on Arena-Hard (`simulator.sweep.trace_tau`). The router sees the
same scores as the replicas' queues. Starvation prevention as served for FCFS and LTR, off for the
oracle (as in `make bench-sim`).

Per (workload, R, router, policy): s/token, p90 latency, and the SLO (`workloads.goodput.CHAT_SLO`)
two ways: whether the run meets it (p90 TTFT and p90 s/token), and per-request attainment (TTFT and
s/token both within it) with the goodput it gives, good requests per second per replica. With one
replica every router is the same: R = 1 runs once.

Autoscaling: the Azure conversation trace, time-warped so that the load per replica steps from
`step_loads[0]` to `step_loads[1]` and back, on `step_replicas` replicas (LTR, `least_waiting`).
Every `SCRAPE_S` the per-pod gauge `ltr_scheduler_waiting_requests` is read, with the truth behind
it (output tokens still to generate, in seconds of one replica's work), and the replica count the
HPA of deploy/k8s/base/hpa.yaml would ask for: ceil(current x mean gauge / target), kept when within
the HPA's 10% tolerance, within minReplicas..maxReplicas. Open loop: the simulated replica count
stays fixed, so the figure shows what the rule asks for, not how a scaled cluster would recover.

Predicted backlog against queue length (`signal_step` rows; `--only-signal-step` runs these alone and
replaces them in an existing results file): the same step on a text workload (`signal_workload`,
Poisson arrivals at the phase rates), where each request's expected tokens are its cross-fitted
score through the served calibration logic (runtime.length_calibration, fitted per fold model on the
other half of that fold's prompts: out of sample for the predictor and the calibration alike). Closed
loop: routers `least_waiting` / `least_backlog` crossed with autoscaling off (fixed replicas), on the
queue (`waiting` + `inflight` metrics of hpa.yaml) or on the predicted backlog (its
`predicted_backlog_tokens` metric alone), with the manifest's targets, windows and rate limits; a
replica asked for takes requests `start_delay_s` later. Per run: seconds from the step to the first
ask for more replicas, SLO attainment of the requests arriving during the step, replica-seconds
provisioned and the peak.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from predictor.evaluate import kendall_tau
from repo_paths import REPO_ROOT, RESULTS_DIR, data_dir
from simulator.replicas import ROUTERS, ReplicaResult, simulate_replicas
from simulator.sim import SimConfig
from runtime.length_calibration import LengthCalibration
from runtime.scheduler_metrics import INFLIGHT, PREDICTED_BACKLOG, WAITING  # the gauges it reads
from simulator.replicas import BACKLOG_ROUTER, GaugeSample
from simulator.sweep import BURST, Scorer, SweepSpec, config_dict, measure_capacity, public_rows, trace_tau
from workloads import traces as wl
from workloads.goodput import CHAT_SLO, Slo
from workloads.metrics import RequestTimes, summarize
from workloads.scores import cross_fitted_pool_folds, cross_fitted_pool_scores, noisy_oracle_scores, request_scores

HPA_FILE = REPO_ROOT / "deploy" / "k8s" / "base" / "hpa.yaml"
HPA_TOLERANCE = 0.1  # kube-controller-manager's --horizontal-pod-autoscaler-tolerance default
SCRAPE_S = 15.0  # Prometheus scrape and HPA sync period
REPLICA_COUNTS = (1, 4, 16, 64)
MIN_REPLICA_RUNS = 16  # a cell pools at least this many replica-runs: R = 1 runs 16 times, R = 4 four times
POLICIES = ("fcfs", "ltr", "oracle")
TRACES = ("azure_conv", "mooncake_conv")
# Seconds of arrivals, the same at every R (the runs cost R times more requests; these keep the whole
# benchmark near 10 minutes on one core). Mooncake's 12k-token prompts make one replica's capacity
# ~0.4 req/s: its runs are longer, to give each replica a comparable number of requests.
DURATIONS_S = {"alpaca": 20.0, "arena": 20.0, "azure_conv": 20.0, "mooncake_conv": 200.0}
START_DELAY_S = 60.0  # from the HPA's ask to a new replica taking requests (pod start, engine load)


@dataclass(frozen=True)
class HpaRule:
    """The Pods-metric rules of the shipped HPA: (metric, average target per pod), in order."""

    metrics: tuple[tuple[str, float], ...]
    min_replicas: int
    max_replicas: int
    scale_down_window_s: float = 300.0  # behavior.scaleDown.stabilizationWindowSeconds (Kubernetes' default)
    # behavior's Pods policies: at most `pods` more (fewer) replicas per `period` seconds; None: no limit
    scale_up: tuple[int, float] | None = None
    scale_down: tuple[int, float] | None = None

    @classmethod
    def load(cls, path: Path = HPA_FILE) -> HpaRule:
        spec = yaml.safe_load(path.read_text())["spec"]
        metrics = tuple((m["pods"]["metric"]["name"], float(m["pods"]["target"]["averageValue"]))
                        for m in spec["metrics"] if m["type"] == "Pods")
        behavior = spec.get("behavior", {})
        window = behavior.get("scaleDown", {}).get("stabilizationWindowSeconds", 300)

        def limit(side: str) -> tuple[int, float] | None:
            pods = [p for p in behavior.get(side, {}).get("policies", []) if p.get("type") == "Pods"]
            return (int(pods[0]["value"]), float(pods[0]["periodSeconds"])) if pods else None

        return cls(metrics, int(spec.get("minReplicas", 1)), int(spec["maxReplicas"]), float(window),
                   limit("scaleUp"), limit("scaleDown"))

    def only(self, names: Sequence[str]) -> HpaRule:
        """The same rule on some of its metrics."""
        kept = tuple(m for m in self.metrics if m[0] in names)
        if not kept:
            raise ValueError(f"none of {list(names)} in the rule's metrics {[m for m, _ in self.metrics]}")
        return replace(self, metrics=kept)

    def desired(self, current: int, per_pod: dict[str, float]) -> int:
        """desiredReplicas: per metric ceil(current x value / target), unchanged within the tolerance;
        the HPA follows the metric that asks for most, within min..max replicas. A metric the caller
        does not supply is left out (the sweep does not simulate the predicted backlog yet)."""
        asks = [current] if not any(metric in per_pod for metric, _ in self.metrics) else []
        for metric, target in self.metrics:
            if metric not in per_pod:
                continue
            ratio = per_pod[metric] / target
            asks.append(current if abs(ratio - 1.0) <= HPA_TOLERANCE else math.ceil(current * ratio))
        return min(max(max(asks), self.min_replicas), self.max_replicas)

    def stabilized(self, history: Sequence[tuple[float, int]], now: float) -> int:
        """What the HPA acts on: a scale-down waits for the highest recommendation of the last
        `scale_down_window_s` (`history`: (time, desired) pairs, the last one now's)."""
        return max(d for t, d in history if t > now - self.scale_down_window_s)


@dataclass
class ReplicaSpec:
    text_workloads: Sequence[str] = ("alpaca", "arena")
    traces: Sequence[str] = TRACES
    replica_counts: Sequence[int] = REPLICA_COUNTS
    routers: Sequence[str] = ROUTERS
    load: float = 1.1  # x one replica's capacity, per replica
    durations_s: dict[str, float] = field(default_factory=lambda: dict(DURATIONS_S))
    trace_tau: float | None = None  # None: the shipped predictor's on Arena-Hard
    step_replicas: int = 4
    step_loads: tuple[float, float] = (0.5, 1.5)
    step_phases_s: tuple[float, float, float] = (120.0, 180.0, 300.0)  # low, high, low
    signal_workload: str = "alpaca"  # the predicted-backlog step: a text workload with cross-fitted scores
    start_delay_s: float = START_DELAY_S
    slo: Slo = CHAT_SLO
    config: SimConfig = field(default_factory=SimConfig)
    seed: int = 0


def text_requests(pool: wl.PromptPool, rate: float, duration_s: float, seed: int) -> list[wl.TraceRequest]:
    return wl.with_max_tokens(wl.text_workload(pool, rate, duration_s, seed=seed))


def trace_windows(full: Sequence[wl.TraceRequest], n_windows: int, per_window: int, duration_s: float,
                  first_window: int = 0) -> list[wl.TraceRequest]:
    """Windows `first_window`.. of `per_window` consecutive requests each (`n_windows` of them; the
    trace repeats when it runs out), each stretched to `duration_s` with its own arrival pattern,
    superposed from t=0."""
    if per_window < 1:
        raise ValueError("a window needs at least one request")
    n = len(full)
    period = full[-1].arrival_s + 1.0 / wl.trace_rate(full)  # the trace's span and one mean gap

    def arrival(j: int) -> float:
        return full[j % n].arrival_s + (j // n) * period

    out: list[wl.TraceRequest] = []
    for w in range(first_window, first_window + n_windows):
        first, after = w * per_window, (w + 1) * per_window
        start = arrival(first)
        scale = duration_s / max(arrival(after) - start, 1e-9)  # the window runs to the next one's start
        out += [replace(full[j % n], request_id=f"{full[j % n].request_id}@{w}", arrival_s=(arrival(j) - start) * scale)
                for j in range(first, after)]
    out.sort(key=lambda r: r.arrival_s)
    return wl.with_max_tokens(out)


def warp_trace(full: Sequence[wl.TraceRequest], rates: Sequence[tuple[float, float]]) -> list[wl.TraceRequest]:
    """The trace time-warped to follow `rates` ((phase seconds, req/s), ...): the trace's clock runs
    faster or slower in each phase so that its mean rate there is the phase's, keeping its bursts."""
    own = wl.trace_rate(full)
    bounds, tau = [], 0.0  # (phase start t, its trace-clock start, trace seconds per second)
    t = 0.0
    for seconds, rate in rates:
        bounds.append((t, tau, rate / own))
        t += seconds
        tau += seconds * rate / own
    out = []
    for r in full:
        if r.arrival_s >= tau:
            break
        t0, tau0, speed = next(b for b in reversed(bounds) if b[1] <= r.arrival_s)
        out.append(replace(r, arrival_s=t0 + (r.arrival_s - tau0) / speed))
    return wl.with_max_tokens(out)


def slo_attainment(times: RequestTimes, slo: Slo) -> float:
    """Fraction of requests whose own TTFT and latency per token are both within the SLO's bounds."""
    ok = (times.ttft <= slo.p90_ttft_s) & (times.latency / times.output_tokens <= slo.p90_latency_per_token_s)
    return float(ok.mean()) if len(ok) else float("nan")


@dataclass
class Cell:
    """One workload at one replica count: the requests and LTR scores of each repetition (small
    clusters are run several times over, so that every cell pools `MIN_REPLICA_RUNS` replica-runs)."""

    workload: str
    replicas: int
    repetitions: list[tuple[list[wl.TraceRequest], np.ndarray]]
    score_source: str
    capacity_rps: float
    duration_s: float


def policy_config(policy: str, config: SimConfig) -> SimConfig:
    """As `make bench-sim`: the oracle runs without starvation prevention, the others as served."""
    return replace(config, starvation_threshold=0, starvation_quantum=0) if policy == "oracle" else config


def pooled(times: Sequence[RequestTimes]) -> RequestTimes:
    """The requests of several runs as one sample (their clocks all start at 0)."""
    return RequestTimes(*(np.concatenate([getattr(t, f) for t in times])
                          for f in ("arrival", "first_token", "finish", "output_tokens", "max_gap")))


def run_cell(cell: Cell, router: str, policy: str, spec: ReplicaSpec) -> dict:
    results, all_scores, all_true = [], [], []
    for reqs, ltr_scores in cell.repetitions:
        true = np.array([r.answer_tokens for r in reqs], dtype=float)
        scores = {"fcfs": np.zeros(len(true)), "ltr": ltr_scores, "oracle": true}[policy]
        results.append(simulate_replicas(reqs, scores, policy, router, cell.replicas,
                                         policy_config(policy, spec.config), spec.seed))
        all_scores.append(scores)
        all_true.append(true)
    source = {"fcfs": "none", "ltr": cell.score_source, "oracle": "oracle"}[policy]
    times = pooled([r.times for r in results])
    summary = summarize(times)
    summary.pop("throughput_tok_s"), summary.pop("throughput_req_s")  # spans of separate runs: meaningless pooled
    per_replica_rate = spec.load * cell.capacity_rps
    attainment = slo_attainment(times, spec.slo)
    counts = np.concatenate([r.per_replica_requests(cell.replicas) for r in results])
    n_runs = len(results) * cell.replicas
    return {
        "entry": "run", "workload": cell.workload, "replicas": cell.replicas,
        "router": router if cell.replicas > 1 else "any", "policy": policy, "score_source": source,
        "kendall_tau": kendall_tau(np.concatenate(all_scores), np.concatenate(all_true)) if source != "none" else None,
        "load": spec.load, "capacity_rps": cell.capacity_rps, "rate": per_replica_rate * cell.replicas,
        "duration_s": cell.duration_s, "repetitions": len(results), "max_tokens_mode": "generic", **summary,
        "chat_slo_met": spec.slo.met_by(summary), "slo_attainment": attainment,
        "goodput_rps_per_replica": attainment * len(times.arrival) / cell.duration_s / n_runs,
        "requests_per_replica_min": int(counts.min()), "requests_per_replica_max": int(counts.max()),
        "preemptions": sum(r.preemptions for r in results), "engine_steps": sum(r.steps for r in results),
        "sim_wall_s": sum(r.wall_s for r in results),
    }


def gain_entries(rows: Sequence[dict]) -> list[dict]:
    """Per workload, R and router: FCFS/LTR and LTR/oracle in s/token, and the SLO figures side by side."""
    k = "mean_latency_per_token_s"
    out = []
    keys = dict.fromkeys((r["workload"], r["replicas"], r["router"]) for r in rows if r["entry"] == "run")
    for workload, n, router in keys:
        by = {r["policy"]: r for r in rows if r["entry"] == "run" and (r["workload"], r["replicas"], r["router"]) == (workload, n, router)}
        if not all(p in by for p in POLICIES):
            continue
        f, ltr, o = by["fcfs"], by["ltr"], by["oracle"]
        out.append({
            "entry": "gain", "workload": workload, "replicas": n, "router": router,
            "fcfs_over_ltr": f[k] / ltr[k], "ltr_over_oracle": ltr[k] / o[k],
            **{f"{p}_s_per_token": by[p][k] for p in POLICIES},
            **{f"{p}_p90_latency_s": by[p]["p90_latency_s"] for p in POLICIES},
            **{f"{p}_slo_attainment": by[p]["slo_attainment"] for p in POLICIES},
            **{f"{p}_goodput_rps_per_replica": by[p]["goodput_rps_per_replica"] for p in POLICIES},
            **{f"{p}_chat_slo_met": by[p]["chat_slo_met"] for p in POLICIES},
        })
    return out


def autoscale_entry(spec: ReplicaSpec, full: Sequence[wl.TraceRequest], capacity_rps: float, hpa: HpaRule) -> dict:
    """The load step: the gauge per pod over time, the true backlog, and what the HPA would ask for."""
    low, high = spec.step_loads
    n = spec.step_replicas
    phases = [(spec.step_phases_s[0], low), (spec.step_phases_s[1], high), (spec.step_phases_s[2], low)]
    reqs = warp_trace(full, [(s, f * capacity_rps * n) for s, f in phases])
    true = np.array([r.answer_tokens for r in reqs], dtype=float)
    if spec.trace_tau is None:
        raise ValueError("the load step needs the noisy oracle's tau")
    scores = noisy_oracle_scores(true, spec.trace_tau, spec.seed)
    res: ReplicaResult = simulate_replicas(reqs, scores, "ltr", "least_waiting", n, spec.config, spec.seed,
                                           sample_every_s=SCRAPE_S)
    tokens_per_s = capacity_rps * float(true.mean())  # one replica's output tokens per second at capacity
    ends = np.cumsum([s for s, _ in phases])
    samples: list[dict] = []
    history: list[tuple[float, int]] = []
    for s in res.samples:
        offered = next((f for (_, f), e in zip(phases, ends) if s.t < e), 0.0)
        gauge = float(np.mean(s.waiting))
        history.append((s.t, hpa.desired(n, {WAITING: gauge, INFLIGHT: float(np.mean(s.inflight))})))
        samples.append({
            "t": s.t, "offered_load": offered, "gauge_mean": gauge, "gauge_max": max(s.waiting),
            "gauge_min": min(s.waiting), "inflight_mean": float(np.mean(s.inflight)),
            "backlog_s_per_pod": s.remaining_tokens / tokens_per_s / n,
            "hpa_desired": history[-1][1], "hpa_stabilized": hpa.stabilized(history, s.t), "replicas_needed": max(math.ceil(offered * n), hpa.min_replicas),
        })
    return {"entry": "autoscale", "workload": "azure_conv (load step)", "replicas": n, "policy": "ltr",
            "router": "least_waiting", "phases": [{"seconds": s, "load": f} for s, f in phases],
            "capacity_rps": capacity_rps, "hpa": {"metrics": dict(hpa.metrics),
            "min_replicas": hpa.min_replicas, "max_replicas": hpa.max_replicas, "tolerance": HPA_TOLERANCE,
            "scale_down_window_s": hpa.scale_down_window_s},
            "scrape_s": SCRAPE_S, "n_requests": len(reqs), "samples": samples}


class HpaScaler:
    """The HPA in the loop: at each scrape, the rule's desired count from the per-pod averages of the
    replicas taking requests, held up by the scale-down window and the behavior's rate limits.
    Records each scrape's (t, desired, replicas set)."""

    def __init__(self, rule: HpaRule, replicas: int, t0: float = 0.0) -> None:
        self.rule = rule
        self.current = replicas
        self.history: list[tuple[float, int]] = [(t0, replicas)]  # the count it started with counts as asked
        self.changes: list[tuple[float, int]] = []  # (t, +added / -removed)
        self.log: list[tuple[float, int, int]] = []

    def _limited(self, target: int, t: float) -> int:
        if target > self.current and self.rule.scale_up:
            pods, period = self.rule.scale_up
            room = pods - sum(d for s, d in self.changes if d > 0 and s > t - period)
            return self.current + max(0, min(target - self.current, room))
        if target < self.current and self.rule.scale_down:
            pods, period = self.rule.scale_down
            room = pods + sum(d for s, d in self.changes if d < 0 and s > t - period)
            return self.current - max(0, min(self.current - target, room))
        return target

    def __call__(self, sample: GaugeSample) -> int:
        per_pod = {WAITING: float(np.mean(sample.waiting)), INFLIGHT: float(np.mean(sample.inflight))}
        if sample.predicted_backlog:
            per_pod[PREDICTED_BACKLOG] = float(np.mean(sample.predicted_backlog))
        desired = self.rule.desired(self.current, per_pod)
        self.history.append((sample.t, desired))
        target = self._limited(self.rule.stabilized(self.history, sample.t), sample.t)
        if target != self.current:
            self.changes.append((sample.t, target - self.current))
        self.current = target
        self.log.append((sample.t, desired, target))
        return target


def calibrated_expected_tokens(pool: wl.PromptPool, scores: np.ndarray, folds: np.ndarray, bins: int = 10) -> np.ndarray:
    """Each prompt's expected tokens as the scheduler would compute them: its cross-fitted score through
    a length calibration (runtime.length_calibration) fitted on the same fold model's scores of the
    OTHER half of that fold's prompts (halves by prompt hash, predictor.calibration.held_out_half), on
    every recorded answer length: neither the predictor nor the calibration saw the prompt."""
    from predictor.calibration import held_out_half

    half = np.array([held_out_half(p) for p in pool.prompts])
    out = np.zeros(len(pool.prompts))
    for k in np.unique(folds):
        for h in (False, True):
            fit_on = np.flatnonzero((folds == k) & (half != h))
            pairs = [(scores[i], n) for i in fit_on for n in pool.samples(int(i))]
            cal = LengthCalibration.fit([s for s, _ in pairs], [n for _, n in pairs], bins=bins)
            for i in np.flatnonzero((folds == k) & (half == h)):
                out[i] = cal.expected_tokens(float(scores[i]))
    return out


def long_half(pool: wl.PromptPool, long: bool = True) -> np.ndarray:
    """The prompts whose median recorded answer is at least the pool's median (`long`), or the others."""
    medians = np.array([np.median(pool.samples(i)) for i in range(len(pool.prompts))])
    return np.flatnonzero((medians >= np.median(medians)) == long)


def step_requests(pool: wl.PromptPool, phases: Sequence[tuple[float, float]], seed: int,
                  items: Sequence[np.ndarray | None] | None = None) -> list[wl.TraceRequest]:
    """Poisson arrivals at each phase's rate ((seconds, req/s), ...), one after the other; a phase's
    `items` (pool indices) restrict its prompts (None: the whole pool)."""
    out: list[wl.TraceRequest] = []
    t0 = 0.0
    for k, (seconds, rate) in enumerate(phases):
        chosen = None if items is None else items[k]
        sub = pool if chosen is None else replace(
            pool, prompts=tuple(pool.prompts[i] for i in chosen), prompt_tokens=pool.prompt_tokens[chosen],
            output_tokens=pool.output_tokens[chosen],
            length_samples=tuple(pool.samples(int(i)) for i in chosen))
        part = wl.text_workload(sub, rate, seconds, seed=seed + 7919 * k)
        out += [replace(r, request_id=f"{r.request_id}@{k}", arrival_s=r.arrival_s + t0,
                        item=r.item if chosen is None else int(chosen[r.item])) for r in part]
        t0 += seconds
    return wl.with_max_tokens(out)


SIGNALS = ("fixed", "queue", "backlog")
# rate: the request rate steps (work per request unchanged); mix: the rate stays, the answers turn long
# (prompts of the short-answer half before and after, of the long half during the step), the step the
# waiting count sees least
STEP_KINDS = ("rate", "mix")  # autoscaling: off; on waiting + inflight; on the predicted backlog
SIGNAL_ROUTERS = ("least_waiting", BACKLOG_ROUTER)


def signal_step_entries(spec: ReplicaSpec, root: Path, hpa: HpaRule, progress: bool = True) -> list[dict]:
    """Routing and autoscaling on queue length against the predicted backlog, over the load step."""
    pool = wl.load_pool(spec.signal_workload, root)
    capacity = measure_capacity(wl.with_max_tokens(wl.text_workload(pool, None, burst=BURST, seed=spec.seed)), spec.config)
    pool_scores = cross_fitted_pool_scores(pool)
    pool_expected = calibrated_expected_tokens(pool, pool_scores, cross_fitted_pool_folds(pool))
    rows = []
    for kind in STEP_KINDS:
        rows += _signal_step(spec, pool, capacity, pool_scores, pool_expected, hpa, kind, progress)
    return rows


def _signal_step(spec: ReplicaSpec, pool: wl.PromptPool, capacity: float, pool_scores: np.ndarray,
                 pool_expected: np.ndarray, hpa: HpaRule, kind: str, progress: bool) -> list[dict]:
    n = spec.step_replicas
    low, high = spec.step_loads
    if kind == "rate":
        phases = [(spec.step_phases_s[0], low), (spec.step_phases_s[1], high), (spec.step_phases_s[2], low)]
        reqs = step_requests(pool, [(s, f * capacity * n) for s, f in phases], spec.seed)
    else:  # one rate throughout, set so that the long half offers `high` x capacity in work
        long, short = long_half(pool), long_half(pool, long=False)
        mean_all = float(np.mean([np.mean(pool.samples(i)) for i in range(len(pool.prompts))]))
        mean_of = {k: float(np.mean([np.mean(pool.samples(int(i))) for i in idx])) for k, idx in (("long", long), ("short", short))}
        rate = high * capacity * n * mean_all / mean_of["long"]
        base = high * mean_of["short"] / mean_of["long"]
        phases = [(spec.step_phases_s[0], base), (spec.step_phases_s[1], high), (spec.step_phases_s[2], base)]
        reqs = step_requests(pool, [(s, rate) for s, _ in phases], spec.seed, [short, long, short])
    scores = request_scores(reqs, pool_scores)
    expected = np.minimum([pool_expected[r.item] for r in reqs], [r.max_tokens for r in reqs])
    true = np.array([r.output_tokens for r in reqs], dtype=float)
    step_start, step_end = phases[0][0], phases[0][0] + phases[1][0]
    arrival = np.array([r.arrival_s for r in reqs])
    in_step = (arrival >= step_start) & (arrival < step_end)
    rules = {"queue": hpa.only([WAITING, INFLIGHT]), "backlog": hpa.only([PREDICTED_BACKLOG])}
    rows: list[dict] = []
    for router in SIGNAL_ROUTERS:
        for signal in SIGNALS:
            if progress:
                print(f"signal step ({kind}): {spec.signal_workload} {router} autoscaling={signal}", file=sys.stderr, flush=True)
            scaler = HpaScaler(rules[signal], n) if signal != "fixed" else None
            res = simulate_replicas(reqs, scores, "ltr", router, n, spec.config, spec.seed, sample_every_s=SCRAPE_S,
                                    expected_tokens=expected, scaler=scaler, max_replicas=hpa.max_replicas,
                                    start_delay_s=spec.start_delay_s)
            times = res.times
            sub = RequestTimes(*(getattr(times, f)[in_step] for f in ("arrival", "first_token", "finish", "output_tokens", "max_gap")))
            asks = [(t, d) for t, d, _ in scaler.log] if scaler else []
            react = next((t - step_start for t, d in asks if t >= step_start and d > n), None)
            provisioned = [s.provisioned for s in res.samples]
            rows.append({
                "entry": "signal_step", "workload": spec.signal_workload, "step": kind, "router": router, "autoscaling": signal,
                "hpa_metrics": dict(rules[signal].metrics) if signal != "fixed" else {},
                "replicas_start": n, "phases": [{"seconds": s, "load": f} for s, f in phases], "capacity_rps": capacity,
                "start_delay_s": spec.start_delay_s, "scrape_s": SCRAPE_S, "n_requests": len(reqs),
                "n_step_requests": int(in_step.sum()), "score_source": "cross_fitted",
                "expected_tokens_source": "cross-fitted scores through runtime.length_calibration (per fold, other half)",
                "kendall_tau": kendall_tau(scores, true),
                "expected_median_rel_error": float(np.median(np.abs(expected - true) / np.maximum(true, 1))),
                "react_s": react,
                "slo_attainment_step": slo_attainment(sub, spec.slo), "slo_attainment_all": slo_attainment(times, spec.slo),
                "p90_ttft_step_s": float(np.quantile(sub.ttft, 0.9)),
                "mean_latency_per_token_step_s": float(np.mean(sub.latency / sub.output_tokens)),
                "replica_seconds": float(sum(provisioned) * SCRAPE_S), "replicas_peak": max(provisioned),
                "replicas_mean": float(np.mean(provisioned)),
                "timeline": [{"t": s.t, "provisioned": s.provisioned, "taking": len(s.waiting),
                              "waiting_mean": float(np.mean(s.waiting)),
                              "backlog_mean": float(np.mean(s.predicted_backlog)) if s.predicted_backlog else None}
                             for s in res.samples],
                "sim_wall_s": res.wall_s,
            })
    return rows


def _signal_lines(rows: Sequence[dict]) -> list[str]:
    out: list[str] = []
    for kind in dict.fromkeys(r.get("step", "rate") for r in rows):
        out += _signal_block([r for r in rows if r.get("step", "rate") == kind], kind)
    return out


def _signal_block(rows: Sequence[dict], kind: str) -> list[str]:
    r0 = rows[0]
    metric_text = {s: next((" + ".join(f"`{m}` {t:g}/pod" for m, t in r["hpa_metrics"].items())
                            for r in rows if r["autoscaling"] == s), "") for s in SIGNALS}
    what = ("the request rate steps" if kind == "rate" else
            "the request rate stays and the answers turn long: prompts of the short-answer half of the pool "
            "before and after the step, of the long half during it")
    lines = [
        f"### {kind} step", "",
        f"{r0['workload']}, {what}: {r0['replicas_start']} replicas at the start, offered work per replica "
        + " -> ".join(f"{p['load']:.2g}x for {p['seconds']:g} s" for p in r0["phases"])
        + f" of one replica's capacity ({r0['capacity_rps']:.2f} req/s), {r0['n_requests']} requests "
        f"({r0['n_step_requests']} during the step), LTR on cross-fitted scores (tau {r0['kendall_tau']:.2f}). "
        "Expected tokens: each request's cross-fitted score through the calibration logic the scheduler serves "
        "(runtime/length_calibration.py), fitted per fold model on the other half of its prompts "
        f"(median relative error {r0['expected_median_rel_error']:.2f}). Autoscaling (closed loop, hpa.yaml's "
        "targets, windows and rate limits, read every "
        f"{r0['scrape_s']:g} s): queue = {metric_text['queue']}; backlog = {metric_text['backlog']}; a replica "
        f"asked for takes requests {r0['start_delay_s']:g} s later. SLO attainment of the requests arriving "
        "during the step; replica-seconds provisioned over the whole run.",
        "",
        "| router | autoscaling on | first ask for more (s after the step) | SLO attainment, step | p90 TTFT, step (s) "
        "| s/token, step | SLO attainment, all | replica-seconds | peak replicas |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        react = "-" if r["autoscaling"] == "fixed" else ("never" if r["react_s"] is None else f"{r['react_s']:.0f}")
        lines.append(f"| {r['router']} | {r['autoscaling']} | {react} | {r['slo_attainment_step']:.0%} | "
                     f"{r['p90_ttft_step_s']:.1f} | {r['mean_latency_per_token_step_s']:.4f} | {r['slo_attainment_all']:.0%} | "
                     f"{r['replica_seconds']:.0f} | {r['replicas_peak']} |")
    return [*lines, ""]


SIGNAL_MARK = "## Predicted backlog against queue length"


def replace_signal_rows(out: Path, rows: Sequence[dict], cpu_s: float, load: str) -> None:
    """`--only-signal-step`: swap the signal_step rows and section of an existing results file."""
    old = json.loads(out.read_text()) if out.exists() else []
    kept = [r for r in old if r.get("entry") != "signal_step"]
    out.write_text(json.dumps(public_rows([*kept, *rows]), indent=1) + "\n")
    md = out.with_suffix(".md")
    text = md.read_text().split(f"\n{SIGNAL_MARK}")[0].rstrip("\n") if md.exists() else "# Many replicas, simulated"
    section = [SIGNAL_MARK, "", f"`python -m simulator.replica_sweep --only-signal-step` ({len(rows)} runs, {cpu_s:.0f} s "
               f"of CPU time; host load average {load} on a shared machine; the rows above are from the full sweep).", "",
               *_signal_lines(rows), ""]
    md.write_text(text + "\n\n" + "\n".join(section))


def repetitions(n_replicas: int) -> int:
    return max(1, math.ceil(MIN_REPLICA_RUNS / n_replicas))


def build_cells(spec: ReplicaSpec, root: Path) -> tuple[list[Cell], dict[str, float], float, list[wl.TraceRequest]]:
    scorer = Scorer({name: wl.load_pool(name, root) for name in {*spec.text_workloads, "arena"}})
    tau = trace_tau(SweepSpec(trace_tau=spec.trace_tau), scorer)
    cells: list[Cell] = []
    capacities: dict[str, float] = {}
    for name in spec.text_workloads:
        pool = scorer.pools[name]
        capacity = capacities[name] = measure_capacity(wl.with_max_tokens(wl.text_workload(pool, None, burst=BURST, seed=spec.seed)), spec.config)
        pool_scores = cross_fitted_pool_scores(pool)
        d = spec.durations_s[name]
        for i, n in enumerate(spec.replica_counts):
            reps = [text_requests(pool, spec.load * capacity * n, d, spec.seed + 1000 * i + k) for k in range(repetitions(n))]
            cells.append(Cell(name, n, [(r, request_scores(r, pool_scores)) for r in reps], "cross_fitted", capacity, d))
    azure: list[wl.TraceRequest] = []
    for name in spec.traces:
        full = wl.load_trace(name, root)
        if name == "azure_conv":
            azure = full
        burst = wl.with_max_tokens([replace(r, arrival_s=0.0) for r in full[:BURST]])
        capacity = capacities[name] = measure_capacity(burst, spec.config)
        d = spec.durations_s[name]
        per_window = max(round(spec.load * capacity * d), 1)
        for n in spec.replica_counts:  # R = 1, 4, 16 all run windows 0-15: the same stretches of the trace
            reps = [trace_windows(full, n, per_window, d, first_window=k * n) for k in range(repetitions(n))]
            cells.append(Cell(name, n, [(r, noisy_oracle_scores([q.answer_tokens for q in r], tau, spec.seed + k))
                                        for k, r in enumerate(reps)], "noisy_oracle", capacity, d))
    return cells, capacities, tau, azure


def run_bench(spec: ReplicaSpec, root: Path, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    cells, capacities, tau, azure = build_cells(spec, root)
    spec = replace(spec, trace_tau=tau)
    jobs = [(c, router, p) for c in cells for router in (spec.routers if c.replicas > 1 else spec.routers[:1]) for p in POLICIES]
    rows: list[dict] = []
    with tqdm(total=len(jobs), disable=not progress, desc="simulating", unit="run") as bar:
        for cell, router, policy in jobs:
            bar.set_postfix_str(f"{cell.workload} R={cell.replicas} {router} {policy}")
            same = [r for r in rows if (r["workload"], r["replicas"], r["router"], r["policy"])
                    == (cell.workload, cell.replicas, "least_waiting", "fcfs")]
            if router == "score" and policy == "fcfs" and same:
                # FCFS serves every waiting request first, so `score` decides as `least_waiting` does
                rows.append({**same[0], "router": "score", "same_run_as": "least_waiting"})
            else:
                rows.append(run_cell(cell, router, policy, spec))
            bar.update()
    rows += gain_entries(rows)
    if azure:
        if "azure_conv" not in capacities:
            raise ValueError("the load step runs on azure_conv: include it in the traces")
        rows.append(autoscale_entry(spec, azure, capacities["azure_conv"], HpaRule.load()))
    if spec.signal_workload:
        rows += signal_step_entries(spec, root, HpaRule.load(), progress)
    return rows


# ---------------------------------------------------------------- report


def _gain_table(gains: Sequence[dict], workload: str) -> list[str]:
    lines = ["| R | router | FCFS/LTR | LTR/oracle | s/token FCFS / LTR / oracle | p90 latency (s) FCFS / LTR / oracle "
             "| SLO attainment FCFS / LTR / oracle | goodput (req/s/replica) FCFS / LTR / oracle |",
             "|---|---|---|---|---|---|---|---|"]
    for g in sorted((g for g in gains if g["workload"] == workload), key=lambda g: (g["replicas"], g["router"])):
        trio = lambda key, fmt: " / ".join(fmt.format(g[f"{p}_{key}"]) for p in POLICIES)  # noqa: E731
        lines.append(f"| {g['replicas']} | {g['router']} | {g['fcfs_over_ltr']:.2f}x | {g['ltr_over_oracle']:.2f}x | "
                     f"{trio('s_per_token', '{:.4f}')} | {trio('p90_latency_s', '{:.1f}')} | "
                     f"{trio('slo_attainment', '{:.0%}')} | {trio('goodput_rps_per_replica', '{:.2f}')} |")
    return lines


def _autoscale_lines(a: dict) -> list[str]:
    h = a["hpa"]
    s = a["samples"]
    peak = max(s, key=lambda x: x["gauge_mean"])
    high_start = a["phases"][0]["seconds"]
    high_end = high_start + a["phases"][1]["seconds"]
    first_up = next((x["t"] for x in s if x["hpa_desired"] > a["replicas"]), None)
    back = next((x["t"] for x in s if x["t"] > peak["t"] and x["hpa_desired"] <= a["replicas"]), None)
    drained = next((x["t"] for x in s if x["t"] > high_end and x["backlog_s_per_pod"] < 1.0), None)
    return [
        f"{a['workload']}: {a['replicas']} replicas (LTR, least_waiting), load per replica "
        + " -> ".join(f"{p['load']:g}x for {p['seconds']:g} s" for p in a["phases"])
        + f" of one replica's capacity ({a['capacity_rps']:.2f} req/s), {a['n_requests']} requests; gauge read every "
        f"{a['scrape_s']:g} s. HPA rule (deploy/k8s/base/hpa.yaml): "
        + " and ".join(f"`{m}` average {t:g} per pod" for m, t in h["metrics"].items())
        + f", {h['min_replicas']}..{h['max_replicas']} replicas, tolerance {h['tolerance']:g}.",
        "",
        f"- The step starts at {high_start:g} s and ends at {high_end:g} s. The first read asking for more than "
        f"{a['replicas']} replicas: {first_up if first_up is not None else 'never'} s; peak gauge {peak['gauge_mean']:.0f} "
        f"waiting per pod at {peak['t']:g} s (HPA asks {peak['hpa_desired']}); back to <= {a['replicas']} at "
        f"{back if back is not None else '-'} s; true backlog under 1 s of work per pod at {drained if drained is not None else '-'} s.",
        "",
        "| t (s) | offered load | gauge mean (min-max) | in flight / pod | backlog (s of work / pod) | HPA desired "
        f"| after the {h['scale_down_window_s']:g} s scale-down window | needed |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {x['t']:.0f} | {x['offered_load']:g}x | {x['gauge_mean']:.1f} ({x['gauge_min']}-{x['gauge_max']}) | "
          f"{x['inflight_mean']:.0f} | {x['backlog_s_per_pod']:.1f} | {x['hpa_desired']} | {x['hpa_stabilized']} | {x['replicas_needed']} |"
          for x in s[::2]],
    ]


def write_markdown(rows: Sequence[dict], path: Path, spec: ReplicaSpec, cpu_s: float) -> None:
    runs = [r for r in rows if r["entry"] == "run"]
    gains = [r for r in rows if r["entry"] == "gain"]
    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    n_sim = sum(r["n_requests"] for r in runs)
    tau = next((r["kendall_tau"] for r in runs if r["score_source"] == "noisy_oracle"), None)
    parts = [
        "# Many replicas, simulated", "",
        f"`make bench-replicas` (`python -m simulator.replica_sweep`): {len(runs)} runs, {n_sim:,} simulated requests, "
        f"{cpu_s:.0f} s of CPU time on one core. Every replica is the served stack as `make bench-sim` simulates it "
        f"(`{json.dumps(config_dict(spec.config))}`); the router sends each request on arrival "
        "(`simulator/replicas.py`: round_robin, random, least_waiting = fewest waiting then fewest in flight, "
        "score = fewest waiting that the replica's queue would serve before it).",
        "",
        f"Load: {spec.load:g}x one replica's capacity per replica at every R (the cluster gets R times it). "
        + "; ".join(f"{w}: {spec.durations_s[w]:g} s of arrivals, capacity {next(r['capacity_rps'] for r in runs if r['workload'] == w):.2f} req/s"
                    for w in workloads)
        + f". Small clusters run several times over and pooled, so that every cell holds at least {MIN_REPLICA_RUNS} "
        "replica-runs (R = 1: 16 runs, R = 4: 4; traces: R = 1, 4 and 16 all cover windows 0-15, R = 64 windows 0-63). "
        "FCFS behind `score` is the `least_waiting` run (FCFS serves every waiting request first: same decisions). "
        "Text workloads: Poisson arrivals; traces: R consecutive windows of the trace superposed. Every request "
        f"sends the generic max_tokens cap ({wl.GENERIC_MAX_TOKENS}). Scores: cross-fitted on text, a noisy oracle at "
        f"tau {tau if tau is None else round(tau, 2)} on traces. SLO: {spec.slo.describe()}; attainment = share of "
        "requests within both bounds themselves, goodput = those requests per second per replica.",
        "",
        "Plots: `replicas_gain.png` (FCFS/LTR and LTR/oracle against R), `replicas_s_per_token.png`, `replicas_autoscale.png`.",
        "",
    ]
    for w in workloads:
        parts += [f"## {w}", "", *_gain_table(gains, w), ""]
    auto = [r for r in rows if r["entry"] == "autoscale"]
    if auto:
        parts += ["## Autoscaling signal", "", *_autoscale_lines(auto[0]), ""]
    signal = [r for r in rows if r["entry"] == "signal_step"]
    if signal:
        parts += [SIGNAL_MARK, "", *_signal_lines(signal), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))


def plot_gains(rows: Sequence[dict], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gains = [r for r in rows if r["entry"] == "gain"]
    workloads = list(dict.fromkeys(g["workload"] for g in gains))
    routers = [r for r in dict.fromkeys(g["router"] for g in gains) if r != "any"]
    for name, keys in (("gain", ("fcfs_over_ltr", "ltr_over_oracle")), ("s_per_token", ("fcfs_s_per_token", "ltr_s_per_token"))):
        fig, axes = plt.subplots(len(keys), len(workloads), figsize=(4.2 * len(workloads), 3.6 * len(keys)), squeeze=False)
        for col, w in enumerate(workloads):
            base = next((g for g in gains if g["workload"] == w and g["router"] == "any"), None)
            for row, key in enumerate(keys):
                ax = axes[row][col]
                for router in routers:
                    pts = sorted((g["replicas"], g[key]) for g in gains if g["workload"] == w and g["router"] == router)
                    if base:
                        pts = [(1, base[key])] + pts
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=router)
                ax.set_xscale("log", base=2)
                ax.set_xlabel("replicas R")
                ax.set_ylabel(key.replace("_", " "))
                ax.set_title(w)
                ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"replicas_{name}.png", dpi=100)
        plt.close(fig)


def plot_autoscale(entry: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = entry["samples"]
    t = [x["t"] for x in s]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    ax.fill_between(t, [x["gauge_min"] for x in s], [x["gauge_max"] for x in s], alpha=0.25, label="gauge min-max over pods")
    ax.plot(t, [x["gauge_mean"] for x in s], label="waiting requests per pod (gauge, mean)")
    ax.axhline(entry["hpa"]["metrics"][WAITING], color="gray", ls=":", label="HPA target")
    ax.set_ylabel("waiting requests per pod")
    twin = ax.twinx()
    twin.plot(t, [x["backlog_s_per_pod"] for x in s], color="C3", label="true backlog (s of work per pod)")
    twin.set_ylabel("true backlog (s of work per pod)")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax2.step(t, [x["hpa_desired"] for x in s], where="post", label="HPA desiredReplicas (this read)")
    ax2.step(t, [x["hpa_stabilized"] for x in s], where="post", label="after the scale-down window")
    ax2.step(t, [x["replicas_needed"] for x in s], where="post", ls="--", label="replicas the offered load needs")
    ax2.axhline(entry["replicas"], color="gray", ls=":", label="replicas running")
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("replicas")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(f"{entry['workload']}: gauge vs backlog, {entry['replicas']} replicas, LTR behind least_waiting")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(rows: Sequence[dict], out: Path, spec: ReplicaSpec, cpu_s: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(public_rows(rows), indent=1) + "\n")
    write_markdown(rows, out.with_suffix(".md"), spec, cpu_s)
    plot_gains(rows, out.parent)
    auto = [r for r in rows if r["entry"] == "autoscale"]
    if auto:
        plot_autoscale(auto[0], out.parent / "replicas_autoscale.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.replica_sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workloads", nargs="*", default=["alpaca", "arena"], choices=list(wl.TEXT_WORKLOADS))
    parser.add_argument("--traces", nargs="*", default=list(TRACES), choices=list(wl.TRACE_WORKLOADS))
    parser.add_argument("--replicas", nargs="*", type=int, default=list(REPLICA_COUNTS))
    parser.add_argument("--routers", nargs="*", default=list(ROUTERS), choices=list(ROUTERS))
    parser.add_argument("--load", type=float, default=1.1, help="x one replica's capacity, per replica")
    parser.add_argument("--duration", action="append", default=[], metavar="WORKLOAD=SECONDS",
                        help=f"seconds of arrivals (default {DURATIONS_S})")
    parser.add_argument("--trace-tau", type=float, default=None)
    parser.add_argument("--step-replicas", type=int, default=4)
    parser.add_argument("--signal-workload", default="alpaca", choices=list(wl.TEXT_WORKLOADS),
                        help="the predicted-backlog load step's workload (cross-fitted scores)")
    parser.add_argument("--start-delay", type=float, default=START_DELAY_S, help="s from an HPA ask to a new replica serving")
    parser.add_argument("--only-signal-step", action="store_true",
                        help="run only the predicted-backlog vs queue-length rows and replace them in --out")
    parser.add_argument("--out", default=str(RESULTS_DIR / "replicas.json"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    durations = dict(DURATIONS_S)
    durations.update({k: float(v) for k, v in (d.split("=", 1) for d in args.duration)})
    spec = ReplicaSpec(text_workloads=args.workloads, traces=args.traces, replica_counts=args.replicas,
                       routers=args.routers, load=args.load, durations_s=durations, trace_tau=args.trace_tau,
                       step_replicas=args.step_replicas, signal_workload=args.signal_workload,
                       start_delay_s=args.start_delay)
    t0 = time.process_time()  # CPU time: the machine may be shared
    if args.only_signal_step:
        rows = signal_step_entries(spec, data_dir(args.data_dir), HpaRule.load(), progress=not args.quiet)
        out = Path(args.out)
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        replace_signal_rows(out, rows, time.process_time() - t0, load)
        print("\n".join(_signal_lines(rows)))
        return 0
    rows = run_bench(spec, data_dir(args.data_dir), progress=not args.quiet)
    out = Path(args.out)
    write_results(rows, out, spec, time.process_time() - t0)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
