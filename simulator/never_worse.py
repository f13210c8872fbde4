"""`make bench-sim` (second part): is the `guarded` policy never worse than FCFS?

Every workload — AlpacaEval and Arena-Hard (prompts with the target model's own answer lengths) and
the Azure and Mooncake traces (arrival times and token counts) — at 0.5x-1.5x of its capacity
(FCFS throughput while a burst's queue lasts), 300 s of arrivals per run, 3 arrival seeds, generic
`max_tokens`, under fcfs, ltr, oracle and guarded. Out-of-sample scores: text workloads use the
cross-fitted scores (each prompt scored by a fold model that did not train on it); traces carry no
text, so they use a noisy oracle at the cross-fitted Kendall's tau measured on Arena-Hard.

Arrival seeds: text workloads draw Poisson arrivals (seed 100 + s); a trace replays a contiguous
block of its own requests (block s of 3: start, middle, end of the file), time-scaled to last 300 s
at the load's rate, so its burstiness is its own.

Entries written beside the runs, worst seed taken everywhere:
* `never_worse` per workload: FCFS/policy minima of five metrics over 0.5-1.0x (`min_ratio`) and
  1.1-1.5x (`min_ratio_overload`), the share of LTR's mean s/token gain kept (`gain_kept`, 0.8-1.0x;
  `gain_kept_overload`) and the SLO attainment's smallest margin over FCFS's;
* `goodput` per workload and policy: the highest load with >= 90% of requests meeting the SLO;
* `random_guard`: the guarded policy with random scores against FCFS (the guard must step aside);
* `tradeoff`: other settings of the guarded policy, for the trade-off plot.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from deploy.repository import source_parameters
from predictor.evaluate import kendall_tau
from simulator.policies import make_policy
from simulator.sim import SimConfig, simulate
from simulator.sweep import BURST, measure_capacity
from workloads import traces as wl
from workloads.goodput import ATTAINMENT_GOAL, DEFAULT_REQUEST_SLO, RequestSlo, attainment_goodput
from workloads.metrics import summarize
from workloads.scores import cross_fitted_pool_scores, noisy_oracle_scores, request_scores

LOADS = tuple(round(0.5 + 0.1 * i, 1) for i in range(11))
UP_TO_CAPACITY = (0.5, 1.0)
GAIN_LOADS = (0.8, 1.0)
OVERLOAD = (1.1, 1.5)
RATIO_METRICS = ("mean_latency_per_token_s", "mean_latency_s", "p90_latency_s", "p99_latency_s", "p90_ttft_s")
WORKLOADS = ("alpaca", "arena", "azure_conv", "azure_code", "mooncake_conv")
BASE_POLICIES = ("fcfs", "ltr", "oracle", "guarded")
NEW_POLICY = "guarded"
# Other settings of the guarded policy for the trade-off curve: short_quantile (1 = plain LTR order
# with the guard), at a few loads and one seed.
TRADEOFF = {f"guarded_q{q:g}": {"guarded_short_quantile": str(q)} for q in (0.1, 0.3, 0.5, 1.0)}
TRADEOFF["guarded_q0.3_age4"] = {"guarded_short_quantile": "0.3", "guarded_age_factor": "4"}  # aging at 4x TTFT target
TRADEOFF["guarded_q0.3_share0.1"] = {"guarded_short_quantile": "0.3", "guarded_overtake_share": "0.1"}
TRADEOFF_LOADS = (0.9, 1.0, 1.2, 1.5)


@dataclass
class NeverWorseSpec:
    workloads: Sequence[str] = WORKLOADS
    loads: Sequence[float] = LOADS
    seeds: Sequence[int] = (0, 1, 2)
    duration_s: float = 300.0
    policies: Sequence[str] = BASE_POLICIES
    tradeoff: dict[str, dict[str, str]] = field(default_factory=lambda: dict(TRADEOFF))
    tradeoff_loads: Sequence[float] = TRADEOFF_LOADS
    random_loads: Sequence[float] = (1.0, 1.3)
    slo: RequestSlo = DEFAULT_REQUEST_SLO
    config: SimConfig = field(default_factory=SimConfig)
    workers: int = 2


@dataclass
class Task:
    """One simulation: a workload at one load and seed under one policy (and its settings)."""

    workload: str
    load: float
    seed: int
    rate: float
    label: str
    policy: str
    params: dict[str, str]
    reqs: list[wl.TraceRequest]
    scores: np.ndarray
    score_source: str
    kendall_tau: float | None
    entry: str = "run"


def trace_block(full: Sequence[wl.TraceRequest], rate: float, duration_s: float, seed: int,
                seeds: int = 3) -> list[wl.TraceRequest]:
    """`rate` x `duration_s` consecutive requests of a trace (block `seed` of `seeds`, spread over the
    file), shifted to start at 0 and time-scaled to span `duration_s`."""
    n = min(len(full), max(2, int(round(rate * duration_s))))
    start = 0 if seeds <= 1 else (len(full) - n) * seed // (seeds - 1)
    block = full[start:start + n]
    t0, span = block[0].arrival_s, max(block[-1].arrival_s - block[0].arrival_s, 1e-9)
    scale = duration_s * (n - 1) / n / span
    return [replace(r, arrival_s=(r.arrival_s - t0) * scale) for r in block]


def run_task(task: Task, spec_slo: RequestSlo, config: SimConfig) -> dict:
    # the guarded policy with its served settings (config.pbtxt), then the task's own
    params = {**source_parameters("ltr_scheduler"), **task.params} if task.policy == NEW_POLICY else None
    policy = make_policy(task.policy, params)
    # as served (config.pbtxt: starvation threshold included); the oracle without, as in `make bench-sim`
    cfg = replace(config, starvation_threshold=0, starvation_quantum=0) if task.policy == "oracle" else config
    res = simulate(task.reqs, task.scores, policy, cfg)
    return {
        "entry": task.entry, "workload": task.workload, "policy": task.label, "policy_params": task.params or None,
        "load": task.load, "rate": task.rate, "seed": task.seed, "sweep": "never_worse",
        "duration_s": float(max(r.arrival_s for r in task.reqs)), "score_source": task.score_source,
        "kendall_tau": task.kendall_tau, "max_tokens_mode": "generic", **summarize(res.times),
        "slo": spec_slo.to_json(), "slo_attainment": spec_slo.attainment(res.times),
        "starvation_threshold": cfg.starvation_threshold, "max_inflight": cfg.max_inflight,
        "oldest_picks": getattr(policy, "aged_total", 0) + getattr(policy, "budget_total", 0),
        "guard_distrusted_picks": getattr(policy, "distrusted_total", None),
        "guard_tau": getattr(getattr(policy, "guard", None), "tau", None), "sim_wall_s": res.wall_s,
    }


def _run(args: tuple[Task, RequestSlo, SimConfig]) -> dict:
    return run_task(*args)


def build_tasks(spec: NeverWorseSpec, root: Path) -> tuple[list[Task], dict[str, float]]:
    tasks: list[Task] = []
    capacities: dict[str, float] = {}
    pools = {n: wl.load_pool(n, root) for n in spec.workloads if n in wl.TEXT_WORKLOADS}
    arena = pools.get("arena") or wl.load_pool("arena", root)
    trace_tau = kendall_tau(cross_fitted_pool_scores(arena), arena.output_tokens)
    for name in spec.workloads:
        if name in pools:
            pool = pools[name]
            pool_scores = cross_fitted_pool_scores(pool)
            burst = wl.with_max_tokens(wl.text_workload(pool, None, burst=BURST, seed=0), "generic")
        else:
            full = wl.with_max_tokens(wl.load_trace(name, root), "generic")
            burst = [replace(r, arrival_s=0.0) for r in full[:BURST]]
        capacity = capacities[name] = measure_capacity(burst, spec.config)

        def workload(load: float, seed: int) -> tuple[list[wl.TraceRequest], np.ndarray, str]:
            rate = load * capacity  # noqa: B023
            if name in pools:  # noqa: B023
                reqs = wl.with_max_tokens(wl.text_workload(pool, rate, spec.duration_s, seed=100 + seed), "generic")  # noqa: B023
                return reqs, request_scores(reqs, pool_scores), "cross_fitted"  # noqa: B023
            reqs = trace_block(full, rate, spec.duration_s, seed, len(spec.seeds))  # noqa: B023
            true = [r.answer_tokens for r in reqs]
            return reqs, noisy_oracle_scores(true, trace_tau, seed), f"noisy_oracle@{trace_tau:.3f}"

        def add(load: float, seed: int, labels: dict[str, tuple[str, dict[str, str]]], entry: str = "run") -> None:
            reqs, scores, source = workload(load, seed)
            true = np.array([r.answer_tokens for r in reqs], dtype=float)
            for label, (policy, params) in labels.items():
                if policy == "fcfs":
                    s, src, tau = np.zeros(len(reqs)), "none", None
                elif policy == "oracle":
                    s, src, tau = true, "oracle", 1.0
                elif entry == "random_guard":
                    s = np.random.default_rng(1000 + seed).standard_normal(len(reqs))
                    src, tau = "random", kendall_tau(s, true)
                else:
                    s, src, tau = scores, source, kendall_tau(scores, true)
                tasks.append(Task(name, load, seed, round(load * capacity, 3), label, policy, params, reqs, s,  # noqa: B023
                                  src, tau, "run" if entry == "random_guard" and policy == "fcfs" else entry))

        for load in spec.loads:
            for seed in spec.seeds:
                add(load, seed, {p: (p, {}) for p in spec.policies})
        for load in spec.tradeoff_loads:
            add(load, spec.seeds[0], {label: (NEW_POLICY, params) for label, params in spec.tradeoff.items()}, "tradeoff")
        for load in spec.random_loads:
            add(load, spec.seeds[0], {"guarded_random": (NEW_POLICY, {})}, "random_guard")
    return tasks, capacities


def run_never_worse(spec: NeverWorseSpec, root: Path, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    tasks, capacities = build_tasks(spec, root)
    args = [(t, spec.slo, spec.config) for t in tasks]
    workers = max(1, min(spec.workers, os.cpu_count() or 1))
    if workers == 1:
        rows = [run_task(*a) for a in tqdm(args, disable=not progress, desc="never-worse", unit="run")]
    else:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(tqdm(pool.map(_run, args, chunksize=2), total=len(args), disable=not progress,
                             desc="never-worse", unit="run"))
    for r in rows:
        r["capacity_rps"] = capacities[r["workload"]]
    return rows + summary_entries(rows, spec, capacities)


def _within(load: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] - 1e-9 <= load <= bounds[1] + 1e-9


def _by(rows: Sequence[dict], workload: str, policy: str, entry: str = "run") -> dict[tuple[float, int], dict]:
    return {(r["load"], r["seed"]): r for r in rows
            if r.get("entry") == entry and r["workload"] == workload and r["policy"] == policy}


def gain_kept(fcfs: dict, ltr: dict, pol: dict, keys: Sequence[tuple[float, int]]) -> tuple[float | None, dict]:
    """Share of LTR's mean s/token gain over FCFS that `pol` keeps, pooled over the loads of `keys`
    per seed (one load's gain can be ~0 at low load, where a ratio means nothing), worst seed; and
    per load, worst seed."""
    metric = "mean_latency_per_token_s"
    seeds = sorted({s for _, s in keys})
    pooled = []
    for seed in seeds:
        ks = [k for k in keys if k[1] == seed]
        ltr_gain = sum(fcfs[k][metric] - ltr[k][metric] for k in ks)
        if ltr_gain > 0:
            pooled.append(sum(fcfs[k][metric] - pol[k][metric] for k in ks) / ltr_gain)
    per_load: dict[str, float] = {}
    for load in sorted({k[0] for k in keys}):
        vals = [(fcfs[k][metric] - pol[k][metric]) / (fcfs[k][metric] - ltr[k][metric])
                for k in keys if k[0] == load and fcfs[k][metric] - ltr[k][metric] > 0]
        if vals:
            per_load[f"{load:g}"] = min(vals)
    return (min(pooled) if pooled else None), per_load


def summary_entries(rows: Sequence[dict], spec: NeverWorseSpec, capacities: dict[str, float]) -> list[dict]:
    out: list[dict] = []
    for workload in capacities:
        fcfs, ltr, pol = (_by(rows, workload, p) for p in ("fcfs", "ltr", NEW_POLICY))
        keys = sorted(set(fcfs) & set(ltr) & set(pol))
        if not keys:
            continue

        def min_ratio(bounds: tuple[float, float], policy: dict = pol) -> dict[str, float]:
            ks = [k for k in keys if _within(k[0], bounds)]
            return {m: min(fcfs[k][m] / policy[k][m] for k in ks) for m in RATIO_METRICS} if ks else {}

        def slo_margin(bounds: tuple[float, float]) -> float | None:
            ks = [k for k in keys if _within(k[0], bounds)]
            return min(pol[k]["slo_attainment"] - fcfs[k]["slo_attainment"] for k in ks) if ks else None

        kept, kept_by_load = gain_kept(fcfs, ltr, pol, [k for k in keys if _within(k[0], GAIN_LOADS)])
        kept_o, kept_o_by_load = gain_kept(fcfs, ltr, pol, [k for k in keys if _within(k[0], OVERLOAD)])
        first = next(iter(pol.values()))
        out.append({
            "entry": "never_worse", "workload": workload, "policy": NEW_POLICY, "baseline": "fcfs",
            "untamed": "ltr", "score_source": first["score_source"], "kendall_tau": first["kendall_tau"],
            "max_tokens_mode": "generic", "duration_s": spec.duration_s, "seeds": list(spec.seeds),
            "capacity_rps": capacities[workload], "worst": "min over loads and seeds of FCFS/policy",
            "min_ratio": min_ratio(UP_TO_CAPACITY), "min_ratio_overload": min_ratio(OVERLOAD),
            "ltr_min_ratio": min_ratio(UP_TO_CAPACITY, ltr), "ltr_min_ratio_overload": min_ratio(OVERLOAD, ltr),
            "gain_kept": kept, "gain_kept_by_load": kept_by_load,
            "gain_kept_overload": kept_o, "gain_kept_overload_by_load": kept_o_by_load,
            "slo": spec.slo.to_json(), "slo_attainment_min_margin": slo_margin(UP_TO_CAPACITY),
            "slo_attainment_min_margin_overload": slo_margin(OVERLOAD),
        })
        for policy in spec.policies:
            runs = _by(rows, workload, policy)
            per_seed = [attainment_goodput([r for (_, s), r in runs.items() if s == seed]) for seed in spec.seeds]
            loads = [None if b is None else b["load"] for b in per_seed]
            worst = None if any(v is None for v in loads) else min(loads)  # type: ignore[type-var]
            out.append({
                "entry": "goodput", "workload": workload, "policy": policy, "sweep": "never_worse",
                "slo": spec.slo.to_json(), "attainment_goal": ATTAINMENT_GOAL, "capacity_rps": capacities[workload],
                "goodput_load": worst, "goodput_rps": None if worst is None else worst * capacities[workload],
                "goodput_load_by_seed": loads, "below_sweep": worst is None,
                "worst": "min over seeds",
            })
        fc = {e["policy"]: e for e in out if e["entry"] == "goodput" and e["workload"] == workload}
        base = fc.get("fcfs", {}).get("goodput_load")
        for e in fc.values():
            e["vs_fcfs"] = None if not base or e["goodput_load"] is None else e["goodput_load"] / base
        rnd = _by(rows, workload, "guarded_random", "random_guard")
        if rnd:
            out.append({
                "entry": "random_guard_check", "workload": workload, "policy": "guarded_random",
                "ratio_to_fcfs": {f"{load:g}": {m: fcfs[(load, seed)][m] / r[m] for m in RATIO_METRICS}
                                  for (load, seed), r in rnd.items() if (load, seed) in fcfs},
                "kendall_tau": [r["kendall_tau"] for r in rnd.values()],
                "guard_distrusted_picks": [r["guard_distrusted_picks"] for r in rnd.values()],
            })
    return out
