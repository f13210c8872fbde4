"""python -m simulator {sweep,trace} ... : see `--help` of each command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np

from engine.batching import KvPolicy
from engine.cost_model import GPUS, CostModel
from predictor.evaluate import kendall_tau
from repo_paths import RESULTS_DIR, data_dir
from simulator.sim import SimConfig, simulate
from simulator.sweep import (
    LOAD_FACTORS,
    PAPER_RATES,
    SERVED,
    SweepSpec,
    config_dict,
    public_rows,
    run_rows,
    run_sweep,
    write_json,
)
from workloads import report
from workloads import traces as wl
from workloads.metrics import summarize


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        max_inflight=args.max_inflight,
        batch_slots=args.batch_slots,
        kv_budget_tokens=args.kv_budget or None,
        kv_policy=args.kv_policy,
        starvation_threshold=args.starvation_threshold,
        starvation_quantum=args.starvation_quantum,
        cost_model=CostModel().with_overrides(gpu=args.gpu),
        request_overhead_s=args.request_overhead_s,
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="data folder (default $LTR_DATA_DIR or ../shared/data)")
    p.add_argument("--max-inflight", type=int, default=SERVED.max_inflight, help="scheduler admission gate")
    p.add_argument("--batch-slots", type=int, default=SERVED.batch_slots, help="engine batch slots")
    p.add_argument("--kv-budget", type=int, default=0, help="KV tokens (0: from the cost model)")
    p.add_argument("--kv-policy", default="guaranteed_no_evict", choices=get_args(KvPolicy))
    p.add_argument("--starvation-threshold", type=int, default=SERVED.starvation_threshold)
    p.add_argument("--starvation-quantum", type=int, default=SERVED.starvation_quantum)
    p.add_argument("--gpu", default="a100_80gb", choices=sorted(GPUS))
    p.add_argument("--request-overhead-s", type=float, default=0.0,
                   help="fixed per-request latency outside the engine (served path)")


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = SweepSpec(
        text_workloads=args.workloads,
        rates=args.rates,
        duration_s=args.duration,
        burst=args.burst or None,
        traces=args.traces,
        trace_speedups=args.trace_speedups,
        trace_duration_s=args.trace_duration,
        trace_tau=args.trace_tau,
        predictors=dict(kv.split("=", 1) for kv in args.predictor),
        sp_thresholds=args.sp_thresholds,
        sp_paper=not args.no_sp_paper,
        load_factors=args.load_factors,
        max_tokens_mode=args.max_tokens_mode,
        config=_config(args),
    )
    root = data_dir(args.data_dir)
    t0 = time.perf_counter()
    rows = run_sweep(spec, root, progress=not args.quiet)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    write_json(rows, out)
    runs = run_rows(rows)
    n_sim = sum(r["n_requests"] for r in runs)
    sim_wall = sum(r["sim_wall_s"] for r in runs)
    mode = ("one generic max_tokens cap of " f"{wl.GENERIC_MAX_TOKENS} for every request (the engine's output limit), "
            "answers ending at the target model's own lengths" if spec.max_tokens_mode == "generic" else
            "**true_length: every request's max_tokens is its own answer length (the usual benchmarks' shortcut; "
            "not what a user gets)**")
    pre = (
        f"Simulated with `python -m simulator sweep` (`make bench-sim`): {len(runs)} runs, "
        f"{n_sim:,} requests in {sim_wall:.1f} s of simulation ({n_sim / sim_wall:,.0f} simulated "
        f"requests per wall-clock second; {wall:.0f} s in all with loading and scoring).\n\n"
        f"Configuration: `{json.dumps(config_dict(spec.config))}`. Text workloads, max_tokens: {mode}. "
        f"Poisson arrivals for {spec.duration_s:g} s at each of the paper's rates, for {spec.capacity_duration_s:g} s "
        f"at {min(spec.load_factors):g}x-{max(spec.load_factors):g}x of the workload's capacity (FCFS throughput "
        "while a burst's queue lasts; one arrival process, time-scaled), and a burst of "
        f"{spec.burst} requests; goodput under the SLO {spec.slo.describe()}; traces: first "
        f"{spec.trace_duration_s:g} s (after scaling) at the speed-up in the workload name. Plots: "
        + ", ".join(
            f"`sim_{w}_rates.png`, `sim_{w}_cdf_{max(spec.rates):g}.png`"
            + (f", `sim_{w}_cdf_burst.png`" if spec.burst else "")
            for w in spec.text_workloads
        )
        + "."
    )
    report.write_markdown(rows, out.with_suffix(".md"), "Simulated scheduling policies", pre)
    for w in spec.text_workloads:
        report.plot_rates(runs, w, out.with_name(f"sim_{w}_rates.png"))
        top = max(spec.rates)
        report.plot_cdf(runs, w, top, out.with_name(f"sim_{w}_cdf_{top:g}.png"))
        if spec.burst:
            report.plot_cdf(runs, w, "burst", out.with_name(f"sim_{w}_cdf_burst.png"),
                            f"{w}: burst of {spec.burst} requests, latency CDF")
    print(out.with_suffix(".md").read_text())
    return 0


def cmd_never_worse(args: argparse.Namespace) -> int:
    """The guarded policy against FCFS, LTR and the oracle at 0.5x-1.5x capacity, 3 seeds."""
    from simulator.never_worse import TRADEOFF_LOADS, NeverWorseSpec, run_never_worse

    spec = NeverWorseSpec(workloads=args.workloads, loads=args.loads, seeds=args.seeds, duration_s=args.duration,
                          workers=args.workers, config=_config(args))
    t0 = time.perf_counter()
    rows = run_never_worse(spec, data_dir(args.data_dir), progress=not args.quiet)
    wall = time.perf_counter() - t0
    out = Path(args.out)
    write_json(rows, out)
    lines = [
        "# Never worse than FCFS: the guarded policy (simulated)", "",
        f"`python -m simulator never-worse` (`make bench-sim`), {sum(r.get('entry') in ('run', 'tradeoff') for r in rows)} "
        f"runs in {wall:.0f} s on {spec.workers} processes. Each run: {spec.duration_s:g} s of arrivals at the load "
        f"(x the workload's capacity), arrival seeds {list(spec.seeds)}, generic max_tokens "
        f"({wl.GENERIC_MAX_TOKENS}); the worst seed is reported. Scores: cross-fitted (text), noisy oracle at the "
        "cross-fitted Arena-Hard tau (traces). SLO: " + spec.slo.describe() + ".", "",
        "## never_worse (FCFS / guarded; >= 1 is at least as good as FCFS)", "",
        "| workload | tau | range | mean s/token | mean lat | p90 lat | p99 lat | p90 TTFT | gain kept | "
        "SLO attainment margin | LTR p99 ratio |", "|" + "---|" * 11,
    ]
    for e in (r for r in rows if r.get("entry") == "never_worse"):
        for rng_, ratio, kept, margin, ltr in (
            ("0.5-1.0x", e["min_ratio"], e["gain_kept"], e["slo_attainment_min_margin"], e["ltr_min_ratio"]),
            ("1.1-1.5x", e["min_ratio_overload"], e["gain_kept_overload"], e["slo_attainment_min_margin_overload"],
             e["ltr_min_ratio_overload"]),
        ):
            if not ratio:
                continue
            cells = " | ".join(f"{ratio[m]:.2f}" for m in ("mean_latency_per_token_s", "mean_latency_s",
                                                            "p90_latency_s", "p99_latency_s", "p90_ttft_s"))
            tau = e["kendall_tau"]
            lines.append(f"| {e['workload']} | {'-' if tau is None else f'{tau:.2f}'} | {rng_} | {cells} | "
                         f"{'-' if kept is None else f'{kept:.2f}'} | "
                         f"{'-' if margin is None else f'{margin:+.3f}'} | {ltr['p99_latency_s']:.2f} |")
    lines += ["", f"## goodput (highest load with >= 90% of requests meeting the SLO; worst seed)", "",
              "| workload | policy | goodput (x capacity) | by seed | vs FCFS |", "|---|---|---|---|---|"]
    for e in (r for r in rows if r.get("entry") == "goodput"):
        vs = e.get("vs_fcfs")
        lines.append(f"| {e['workload']} | {e['policy']} | {e['goodput_load'] if e['goodput_load'] is not None else '< 0.5'}"
                     f" | {e['goodput_load_by_seed']} | {'-' if vs is None else f'{vs:.2f}'} |")
    lines += ["", "## The guard with random scores (guarded_random / FCFS ratios)", ""]
    for e in (r for r in rows if r.get("entry") == "random_guard_check"):
        worst = min(v for d in e["ratio_to_fcfs"].values() for v in d.values())
        best = max(v for d in e["ratio_to_fcfs"].values() for v in d.values())
        lines.append(f"- {e['workload']}: FCFS/guarded ratios {worst:.3f}-{best:.3f} at loads "
                     f"{', '.join(e['ratio_to_fcfs'])} (score tau {', '.join(f'{t:.3f}' for t in e['kendall_tau'])})")
    lines += ["", "## Trade-off plots", ""]
    groups = {"up to capacity": [x for x in TRADEOFF_LOADS if x <= 1.0], "overload": [x for x in TRADEOFF_LOADS if x > 1.0]}
    for w in spec.workloads:
        png = out.with_name(f"sim_tradeoff_{w}.png")
        report.plot_tradeoff(rows, w, groups, spec.seeds[0], png)
        lines.append(f"- [{png.name}]({png.name})")
    lines += ["", "## Runs", ""]
    cols = [("workload", "workload", "{}"), ("load", "x capacity", "{:.1f}"), ("seed", "seed", "{}"),
            ("policy", "policy", "{}"), ("n_requests", "n", "{}"), ("mean_latency_per_token_s", "s/token", "{:.4f}"),
            ("mean_latency_s", "mean lat", "{:.2f}"), ("p90_latency_s", "p90 lat", "{:.2f}"),
            ("p99_latency_s", "p99 lat", "{:.2f}"), ("p90_ttft_s", "p90 TTFT", "{:.2f}"),
            ("p99_ttft_s", "p99 TTFT", "{:.2f}"), ("slo_attainment", "SLO att.", "{:.3f}")]
    lines.append(report.markdown_table([r for r in rows if r.get("entry") in ("run", "tradeoff")], cols))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: lines.index("## Runs")]))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """Simulate one saved workload (jsonl, e.g. the served benchmark's) under the given policies."""
    reqs = wl.load_jsonl(Path(args.workload))
    if args.stagger_s:
        # Requests reach the scheduler one after another (client send loop, preprocessing,
        # predictor): spread same-time arrivals by `stagger_s` each, in workload order.
        from dataclasses import replace as _replace

        reqs = [_replace(r, arrival_s=r.arrival_s + i * args.stagger_s) for i, r in enumerate(reqs)]
    scores_by_policy = json.loads(Path(args.scores).read_text()) if args.scores else {}
    cfg = _config(args)
    rows = []
    true = np.array([r.answer_tokens for r in reqs], dtype=float)
    for policy in args.policies:
        if policy in scores_by_policy:
            scores = np.array(scores_by_policy[policy], dtype=float)
        elif policy == "ltr":
            scores = _ltr_scores(reqs, args.tau)
        elif policy == "fcfs":
            scores = np.zeros(len(reqs))
        else:
            scores = true
        res = simulate(reqs, scores, policy, cfg)
        rows.append({"workload": args.name, "policy": policy, "rate": round(wl.trace_rate(reqs), 3),
                     "kendall_tau": kendall_tau(scores, true) if policy != "fcfs" else None, **summarize(res.times),
                     "sim_wall_s": res.wall_s})
    print(json.dumps(public_rows(rows), indent=1))
    return 0


def _ltr_scores(reqs: list[wl.TraceRequest], tau: float) -> np.ndarray:
    """The exported predictor's scores when every request has a prompt, else a noisy oracle."""
    from workloads.scores import find_predictor, noisy_oracle_scores

    vdir = find_predictor()
    if vdir is not None and all(r.prompt is not None for r in reqs):
        from runtime.length_predictor import LengthRanker

        return LengthRanker(vdir).score_texts([r.prompt or "" for r in reqs], batch_size=32).astype(float)
    return noisy_oracle_scores([r.output_tokens for r in reqs], tau)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sw = sub.add_parser("sweep", help="the paper's sweep on text workloads and traces")
    _common(sw)
    sw.add_argument("--workloads", nargs="*", default=["alpaca", "arena"], choices=list(wl.TEXT_WORKLOADS))
    sw.add_argument("--rates", nargs="*", type=float, default=list(PAPER_RATES))
    sw.add_argument("--duration", type=float, default=60.0)
    sw.add_argument("--burst", type=int, default=2000, help="burst size (0: none)")
    sw.add_argument("--traces", nargs="*", default=list(wl.TRACE_WORKLOADS), choices=list(wl.TRACE_WORKLOADS))
    sw.add_argument("--trace-speedups", nargs="*", type=float, default=None,
                    help="replay speed-ups for every trace (default: x1 and x4 for Azure, x0.25 and x1 for Mooncake)")
    sw.add_argument("--trace-duration", type=float, default=600.0)
    sw.add_argument("--trace-tau", type=float, default=None,
                    help="Kendall's tau of the noisy oracle on traces (default: the shipped predictor's on Arena-Hard)")
    sw.add_argument("--load-factors", nargs="*", type=float, default=list(LOAD_FACTORS),
                    help="rates as fractions of the workload's measured capacity (goodput sweep)")
    sw.add_argument("--max-tokens-mode", default="generic", choices=list(wl.MAX_TOKENS_MODES),
                    help="generic: one cap for every request, as clients send; true_length: each request's "
                         "own answer length (labelled so in every output)")
    sw.add_argument("--predictor", action="append", default=[], metavar="NAME=DIR",
                    help="extra exported predictor (e.g. pointwise=build/predictor/pointwise)")
    sw.add_argument("--sp-thresholds", nargs="*", type=int, default=list(SweepSpec.sp_thresholds),
                    help="extra LTR runs with these starvation thresholds (admissions)")
    sw.add_argument("--no-sp-paper", action="store_true", help="skip the paper-style preemptive promotion run")
    sw.add_argument("--out", default=str(RESULTS_DIR / "sim.json"))
    sw.add_argument("--quiet", action="store_true")
    nw = sub.add_parser("never-worse", help="the guarded policy against FCFS at 0.5x-1.5x capacity, 3 seeds")
    _common(nw)
    from simulator.never_worse import LOADS, WORKLOADS

    nw.add_argument("--workloads", nargs="*", default=list(WORKLOADS),
                    choices=list(wl.TEXT_WORKLOADS) + list(wl.TRACE_WORKLOADS))
    nw.add_argument("--loads", nargs="*", type=float, default=list(LOADS))
    nw.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    nw.add_argument("--duration", type=float, default=300.0, help="seconds of arrivals per run")
    nw.add_argument("--workers", type=int, default=2, help="simulation processes")
    nw.add_argument("--out", default=str(RESULTS_DIR / "sim_never_worse.json"))
    nw.add_argument("--quiet", action="store_true")
    tr = sub.add_parser("trace", help="simulate one saved workload (jsonl)")
    _common(tr)
    tr.add_argument("workload")
    tr.add_argument("--name", default="trace")
    tr.add_argument("--policies", nargs="*", default=["fcfs", "ltr", "oracle"])
    tr.add_argument("--scores", default=None, help="json {policy: [score per request]}")
    tr.add_argument("--tau", type=float, default=0.55, help="noisy-oracle tau for ltr when prompts are missing")
    tr.add_argument("--stagger-s", type=float, default=0.0,
                    help="add i x this to request i's arrival (models requests reaching the scheduler one by one)")
    args = parser.parse_args(argv)
    if args.cmd == "never-worse":
        return cmd_never_worse(args)
    return cmd_sweep(args) if args.cmd == "sweep" else cmd_trace(args)


if __name__ == "__main__":
    sys.exit(main())
