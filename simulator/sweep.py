"""`make bench-sim`: every policy on the workloads, at the loads users run at, one results table.

Text workloads (AlpacaEval and Arena-Hard v0.1 by default), as clients send them: one generic
`max_tokens` cap (`workloads.traces.GENERIC_MAX_TOKENS`), answers ending at the target model's own
lengths. Loads: the paper's Poisson rates (2-64 req/s for 60 s), a burst of 2,000, and 0.5x-1.5x
of the engine's capacity for the workload (measured: FCFS throughput on the burst) in steps of
0.1x, from which each policy's goodput under `workloads.goodput.CHAT_SLO` is found.
Text-less traces (Azure conv/code, Mooncake): their own pace and time-scaled, first 10 minutes.

Scores: LTR ranks by cross-fitted scores (`make crossfit`: each prompt scored by a fold model that
did not train on it); `ltr_shipped` by the shipped predictor (held out on Arena-Hard, in-sample
on AlpacaEval, labelled so). On traces, LTR ranks by a noisy oracle at the shipped predictor's
measured Kendall's tau on Arena-Hard (prompts unlike its training data). Every row records its
`score_source`, the tau of its scores against the lengths generated, and `max_tokens_mode`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from predictor.evaluate import kendall_tau
from simulator.sim import SimConfig, simulate
from workloads import traces as wl
from workloads.goodput import CHAT_SLO, DEFAULT_REQUEST_SLO, Slo, goodput
from workloads.metrics import summarize
from workloads.scores import (
    cross_fitted_pool_scores,
    find_predictor,
    noisy_oracle_scores,
    predictor_pool_scores,
    request_scores,
    shipped_source,
)

PAPER_RATES = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
LOAD_FACTORS = tuple(round(0.5 + 0.1 * i, 1) for i in range(11))  # x the workload's capacity
BURST = 2000
SERVED = SimConfig()  # the shipped deployment (config.pbtxt)
PAPER_STARVATION_THRESHOLD = 200  # the authors' scripts: counter per engine step, promoted for a quantum
# Own pace and one scaled replay per trace: Azure is light for one 8B replica, so speed it up;
# Mooncake's long prompts overload it, so slow it down.
TRACE_SPEEDUPS = {"azure_conv": (1.0, 4.0), "azure_code": (1.0, 4.0),
                  "mooncake_conv": (0.25, 1.0), "mooncake_synth": (0.25, 1.0)}
CAPACITY_POLICIES = ("fcfs", "ltr", "ltr_shipped", "oracle")  # the capacity sweep's (and goodput's) columns


@dataclass(frozen=True)
class PolicyRun:
    """One column of the comparison: a queue policy, where its scores come from, starvation on/off."""

    label: str
    policy: str
    scores: str  # "cross_fitted" | "shipped" | "predictor:<dir>" | "noisy:<tau>" | "oracle" | "none"
    starvation: bool = True
    threshold: int | None = None  # None: the sweep's configured threshold
    demote: bool = False  # paper-style: promoted for `quantum` steps, then demoted (preemptive)


@dataclass
class SweepSpec:
    text_workloads: Sequence[str] = ("alpaca", "arena")
    rates: Sequence[float] = PAPER_RATES
    load_factors: Sequence[float] = LOAD_FACTORS
    duration_s: float = 60.0
    capacity_duration_s: float = 300.0  # long enough for a queue to build near capacity
    burst: int | None = BURST
    traces: Sequence[str] = wl.TRACE_WORKLOADS
    trace_speedups: Sequence[float] | None = None  # None: TRACE_SPEEDUPS per trace
    trace_duration_s: float = 600.0
    trace_tau: float | None = None  # None: the shipped predictor's measured tau on Arena-Hard
    predictors: dict[str, str] = field(default_factory=dict)
    sp_thresholds: Sequence[int] = (PAPER_STARVATION_THRESHOLD,)  # extra LTR runs with these thresholds
    sp_paper: bool = True  # extra LTR run with the paper's preemptive promotion
    max_tokens_mode: wl.MaxTokensMode = "generic"
    slo: Slo = CHAT_SLO
    config: SimConfig = field(default_factory=SimConfig)
    seed: int = 0


@dataclass
class Scorer:
    """Per-prompt scores of the text workloads, computed once per pool."""

    pools: dict[str, wl.PromptPool]
    _cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def pool_scores(self, workload: str, kind: str) -> np.ndarray:
        key = (workload, kind)
        if key not in self._cache:
            pool = self.pools[workload]
            if kind == "cross_fitted":
                self._cache[key] = cross_fitted_pool_scores(pool)
            else:
                vdir = find_predictor(None if kind == "shipped" else kind.split(":", 1)[1])
                if vdir is None:
                    raise FileNotFoundError(f"no exported predictor for {kind!r}")
                self._cache[key] = predictor_pool_scores(pool, vdir)
        return self._cache[key]


def scores_for(run: PolicyRun, workload: str, reqs: Sequence[wl.TraceRequest], scorer: Scorer,
               seed: int) -> tuple[np.ndarray, str]:
    """A run's scores for `reqs` and their `score_source`."""
    true = np.array([r.answer_tokens for r in reqs], dtype=float)
    if run.scores in ("oracle", "none"):
        return true, run.scores
    if run.scores.startswith("noisy:"):
        return noisy_oracle_scores(true, float(run.scores.split(":", 1)[1]), seed), "noisy_oracle"
    source = "cross_fitted" if run.scores == "cross_fitted" else shipped_source(workload)
    return request_scores(reqs, scorer.pool_scores(workload, run.scores)), source


def text_policies(spec: SweepSpec) -> list[PolicyRun]:
    runs = [
        PolicyRun("fcfs", "fcfs", "none"),
        PolicyRun("ltr", "ltr", "cross_fitted"),
        PolicyRun("ltr_nosp", "ltr", "cross_fitted", starvation=False),
    ]
    runs += [PolicyRun(f"ltr_sp{t}", "ltr", "cross_fitted", threshold=t) for t in spec.sp_thresholds]
    if spec.sp_paper:
        runs.append(PolicyRun("ltr_sp_paper", "ltr", "cross_fitted", threshold=PAPER_STARVATION_THRESHOLD, demote=True))
    runs.append(PolicyRun("ltr_shipped", "ltr", "shipped"))
    # extra exported predictors, trained like the shipped one (on AlpacaEval): labelled the same way
    runs += [PolicyRun(f"ltr_{name}", "ltr", f"predictor:{path}") for name, path in spec.predictors.items()]
    runs += [PolicyRun("oracle", "oracle", "oracle", starvation=False), PolicyRun("mlfq", "mlfq", "none", starvation=False)]
    return runs


def trace_policies(spec: SweepSpec, tau: float) -> list[PolicyRun]:
    return [
        PolicyRun("fcfs", "fcfs", "none"),
        PolicyRun("ltr", "ltr", f"noisy:{tau:.3f}"),
        PolicyRun("ltr_nosp", "ltr", f"noisy:{tau:.3f}", starvation=False),
        *[PolicyRun(f"ltr_sp{t}", "ltr", f"noisy:{tau:.3f}", threshold=t) for t in spec.sp_thresholds],
        PolicyRun("oracle", "oracle", "oracle", starvation=False),
        PolicyRun("mlfq", "mlfq", "none", starvation=False),
    ]


@dataclass
class SweepCase:
    """One simulation case: one workload at one load, run under several policies."""

    workload: str
    rate: float | str
    reqs: list[wl.TraceRequest]
    runs: list[PolicyRun]
    sweep: str  # "paper" | "burst" | "capacity" | "trace"
    load: float | None = None  # rate as a fraction of the workload's capacity


def run_one(case: SweepCase, run: PolicyRun, spec: SweepSpec, scorer: Scorer) -> dict:
    scores, source = scores_for(run, case.workload, case.reqs, scorer, spec.seed)
    config = spec.config
    if not run.starvation:
        cfg = replace(config, starvation_threshold=0, starvation_quantum=0)
    else:
        cfg = replace(
            config,
            starvation_threshold=config.starvation_threshold if run.threshold is None else run.threshold,
            demote_after_quantum=run.demote,
        )
    res = simulate(case.reqs, scores, run.policy, cfg)
    generated = [r.answer_tokens for r in case.reqs]
    row = {
        "entry": "run",
        "workload": case.workload,
        "policy": run.label,
        "rate": case.rate,
        "load": case.load,
        "sweep": case.sweep,
        "score_source": source,
        "kendall_tau": kendall_tau(scores, generated) if source != "none" else None,
        "max_tokens_mode": spec.max_tokens_mode if case.sweep != "trace" else "true_length",
        **summarize(res.times),
        "slo": DEFAULT_REQUEST_SLO.to_json(),
        "slo_attainment": DEFAULT_REQUEST_SLO.attainment(res.times),
        "mean_batch_size": res.mean_batch_size,
        "peak_kv_tokens": res.peak_kv_tokens,
        "preemptions": res.preemptions,
        "engine_steps": res.steps,
        "sim_wall_s": res.wall_s,
        "sim_requests_per_wall_s": len(case.reqs) / res.wall_s if res.wall_s > 0 else None,
        "max_inflight": cfg.max_inflight,
        "batch_slots": cfg.batch_slots,
        "kv_policy": cfg.kv_policy,
        "starvation_threshold": cfg.starvation_threshold,
        "starvation_quantum": cfg.starvation_quantum,
        "starvation_demote": cfg.demote_after_quantum,
        "gpu": cfg.cost_model.gpu.name,
    }
    row["_latency"] = res.times.latency  # kept for CDF plots, dropped before writing
    row["_latency_per_token"] = res.times.latency / res.times.output_tokens
    return row


def measure_capacity(reqs: Sequence[wl.TraceRequest], config: SimConfig) -> float:
    """The engine's capacity for a workload, in requests/s: FCFS on a burst, counted while the queue
    is not empty (until the last request's first token), so the burst's draining tail, when the
    engine runs below its batch size, does not pull the figure down."""
    times = simulate(reqs, np.zeros(len(reqs)), "fcfs", config).times
    queue_empty = float(times.first_token.max() - times.arrival.min())
    return float((times.finish - times.arrival.min() <= queue_empty).sum() / queue_empty)


def capacity_case(spec: SweepSpec, pool: wl.PromptPool, capacity: float, factor: float, runs: list[PolicyRun],
                  sweep: str = "capacity") -> SweepCase:
    """The workload at `factor` x capacity: one arrival process (one seed) for every factor, time-scaled."""
    rate = round(factor * capacity, 3)
    reqs = wl.text_workload(pool, rate, spec.capacity_duration_s, seed=spec.seed + 100)
    return SweepCase(pool.name, rate, wl.with_max_tokens(reqs, spec.max_tokens_mode), runs, sweep, factor)


def refine_goodput(spec: SweepSpec, scorer: Scorer, capacities: dict[str, float], rows: list[dict],
                   steps: int = 3) -> list[dict]:
    """Bisect, per workload and policy, between the last load of the grid that meets the SLO and the
    next one (`steps` halvings: 0.1x / 2^3 = 0.0125x), so that policies a grid step apart are told
    apart. Returns the extra rows (sweep "goodput_search")."""
    extra: list[dict] = []
    for workload, capacity in capacities.items():
        for run in [r for r in text_policies(spec) if r.label in CAPACITY_POLICIES]:
            grid = [r for r in rows if r["workload"] == workload and r["policy"] == run.label and r["sweep"] == "capacity"]
            best = goodput(grid, spec.slo)
            above = [r["load"] for r in grid if best is None or r["load"] > best["load"]]
            if not above:
                continue
            lo, hi = (best["load"] if best else 0.0), min(above)
            for _ in range(steps):
                mid = round((lo + hi) / 2, 4)
                row = run_one(capacity_case(spec, scorer.pools[workload], capacity, mid, [run], "goodput_search"),
                              run, spec, scorer)
                extra.append(row)
                lo, hi = (mid, hi) if spec.slo.met_by(row) else (lo, mid)
    return extra


def goodput_entries(rows: Sequence[dict], capacities: dict[str, float], slo: Slo) -> list[dict]:
    """Per workload and policy of the capacity sweep: the highest rate meeting `slo` (workloads.goodput),
    the grid's rates and the bisection's together."""
    out = []
    for workload, capacity in capacities.items():
        for policy in CAPACITY_POLICIES:
            sub = [r for r in rows if r["workload"] == workload and r["policy"] == policy
                   and r["sweep"] in ("capacity", "goodput_search")]
            if not sub:
                continue
            best = goodput(sub, slo)
            out.append({
                "entry": "goodput", "workload": workload, "policy": policy, "score_source": sub[0]["score_source"],
                "kendall_tau": sub[0]["kendall_tau"], "max_tokens_mode": sub[0]["max_tokens_mode"],
                "slo": slo.to_json(), "capacity_rps": capacity,
                "goodput_rps": best["rate"] if best else None, "goodput_load": best["load"] if best else None,
                "below_sweep": best is None,
            })
    return out


def trace_tau(spec: SweepSpec, scorer: Scorer) -> float:
    """The noisy oracle's tau on traces: the shipped predictor's on Arena-Hard (prompts unlike its
    training data), unless given."""
    if spec.trace_tau is not None:
        return spec.trace_tau
    if "arena" not in scorer.pools:
        raise ValueError("give --trace-tau, or include the arena workload to measure it")
    pool = scorer.pools["arena"]
    return kendall_tau(scorer.pool_scores("arena", "shipped"), pool.output_tokens)


def build_cases(spec: SweepSpec, data_root: Path, scorer: Scorer) -> tuple[list[SweepCase], dict[str, float]]:
    cases: list[SweepCase] = []
    capacities: dict[str, float] = {}
    for name, pool in scorer.pools.items():
        def workload(rate: float | None, seed: int, burst: int | None = None) -> list[wl.TraceRequest]:
            reqs = wl.text_workload(pool, rate, spec.duration_s, burst=burst, seed=seed)  # noqa: B023
            return wl.with_max_tokens(reqs, spec.max_tokens_mode)

        runs = text_policies(spec)
        capacity = capacities[name] = measure_capacity(workload(None, spec.seed, BURST), spec.config)
        for i, rate in enumerate(spec.rates):
            cases.append(SweepCase(name, rate, workload(rate, spec.seed + i), runs, "paper", rate / capacity))
        if spec.burst:
            cases.append(SweepCase(name, "burst", workload(None, spec.seed, spec.burst), runs, "burst"))
        capacity_runs = [r for r in runs if r.label in CAPACITY_POLICIES]
        cases += [capacity_case(spec, pool, capacity, factor, capacity_runs) for factor in spec.load_factors]
    if spec.traces:
        tau = trace_tau(spec, scorer)
        for name in spec.traces:
            full = wl.load_trace(name, data_root)
            for speed in spec.trace_speedups or TRACE_SPEEDUPS[name]:
                reqs = wl.with_max_tokens(wl.scale_trace(full, speed, spec.trace_duration_s), "true_length")
                cases.append(SweepCase(f"{name} x{speed:g}", round(wl.trace_rate(reqs), 2), reqs, trace_policies(spec, tau), "trace"))
    return cases, capacities


def run_sweep(spec: SweepSpec, data_root: Path, progress: bool = True) -> list[dict]:
    """Every case under each of its policies, then the goodput entries."""
    from tqdm import tqdm

    scorer = Scorer({name: wl.load_pool(name, data_root) for name in spec.text_workloads})
    cases, capacities = build_cases(spec, data_root, scorer)
    rows: list[dict] = []
    with tqdm(total=sum(len(c.runs) for c in cases), disable=not progress, desc="simulating", unit="run") as bar:
        for case in cases:
            for run in case.runs:
                rows.append(run_one(case, run, spec, scorer))
                bar.update()
    rows += refine_goodput(spec, scorer, capacities, rows)
    return rows + goodput_entries(rows, capacities, spec.slo)


def run_rows(rows: Sequence[dict]) -> list[dict]:
    """The simulation runs of a results file (without its goodput entries)."""
    return [r for r in rows if r.get("entry", "run") == "run"]


def public_rows(rows: Sequence[dict]) -> list[dict]:
    def clean(v: object) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return [{k: clean(v) for k, v in r.items() if not k.startswith("_")} for r in rows]


def write_json(rows: Sequence[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(public_rows(rows), indent=1) + "\n")


def config_dict(cfg: SimConfig) -> dict:
    d = asdict(cfg)
    d["cost_model"] = {k: v for k, v in asdict(cfg.cost_model).items() if k not in ("gpu", "model")}
    d["cost_model"]["gpu"] = cfg.cost_model.gpu.name
    d["cost_model"]["model"] = cfg.cost_model.model.name
    return d

