"""`make bench-serve`: the same trace served by the real Triton ensemble under each policy, with the
`timing` stand-in LLM, compared with the simulator's prediction for the same trace and configuration.

Requests are sent as clients send them: one generic `max_tokens` cap, answers ending at the target
model's own lengths (the stand-in's length table, `make lengths`). The default workload is
Arena-Hard, whose prompts the shipped predictor never trained on, so the served LTR column ranks by
held-out scores, as a user's traffic would be ranked; on AlpacaEval its scores are in-sample, and the
rows say so (`score_source`). The oracle learns each true length only through the experiments-only
input `expected_output_len`, which the replay sends and `fcfs`/`ltr` never read. Prompts go as
their lengths were recorded, one user turn of the Llama-3 chat template (`--prompt-format chat`,
loadtest.prompts; `raw` is labelled in the rows); the simulator's prompt lengths stay the raw ones
(the template's 9 tokens more per prompt are not modelled there).

For each policy a fresh tritonserver is started on free loopback ports (its own rendered model
repository under build/bench_serve/), the trace is replayed open-loop over gRPC streaming, and the
server is stopped. Then the simulator runs the same requests with the same scores, `max_inflight`,
batch slots and cost model. Writes results/serve.json (rows with the keys of results/sim.json plus
`instrument`: served | simulated) and results/serve.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from loadtest.grpc_stream import DEFAULT_MODEL
from loadtest.prompts import DEFAULT_PROMPT_FORMAT, add_prompt_format_argument
from loadtest.replay import replay_grpc, to_request_times
from predictor.evaluate import kendall_tau
from repo_paths import BUILD_DIR, REPO_ROOT, RESULTS_DIR, SOURCE_REPOSITORY, data_dir
from deploy.repository import source_parameters
from simulator.policies import make_policy
from simulator.sim import simulate
from simulator.sweep import BURST, SERVED, measure_capacity, public_rows
from workloads import report
from workloads import traces as wl
from workloads.metrics import summarize
from workloads.scores import find_predictor, predictor_pool_scores, request_scores, shipped_source

RESULTS = RESULTS_DIR
WORK = BUILD_DIR / "bench_serve"


def serve_one(
    policy: str, reqs: list[wl.TraceRequest], max_inflight: int, timeout_s: float, source: Path | None = None,
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
) -> tuple[dict, float]:
    from deploy.local import deployment_overrides
    from deploy.repository import render_repository
    from deploy.triton import Ports, TritonServer

    work = WORK / policy
    overrides = deployment_overrides(policy, "timing", [f"ltr_scheduler.max_inflight={max_inflight}"])
    repo = render_repository(work / "model_repository", overrides, source=source or SOURCE_REPOSITORY)
    server = TritonServer(repo, work, Ports.free(), env={"LTR_LLM_MODE": "timing"})
    server.start(timeout_s=180)
    try:
        time.sleep(1.0)
        t0 = time.perf_counter()
        timings = replay_grpc(server.grpc_url, reqs, model=DEFAULT_MODEL, timeout_s=timeout_s, prompt_format=prompt_format)
        wall = time.perf_counter() - t0
    finally:
        server.stop()
    times = to_request_times(timings)
    failed = [t.error for t in timings if t.error is not None]
    short = sum(1 for t, r in zip(timings, reqs) if t.error is None and t.tokens != r.answer_tokens)
    row = summarize(times)
    row["failed"] = len(failed)
    row["wrong_token_count"] = short
    if failed:
        row["first_error"] = failed[0]
    return row, wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--workload", default="arena", choices=list(wl.TEXT_WORKLOADS))
    p.add_argument("--rate", type=float, default=2.0, help="Poisson arrivals per second")
    p.add_argument("--max-tokens-mode", default="generic", choices=list(wl.MAX_TOKENS_MODES),
                   help="generic: one cap for every request; true_length: each answer's own length (labelled)")
    add_prompt_format_argument(p)
    p.add_argument("--duration", type=float, default=40.0, help="seconds of arrivals")
    p.add_argument("--load", type=float, default=None,
                   help="arrival rate as this x the workload's capacity (simulated FCFS burst throughput); overrides --rate")
    p.add_argument("--requests", type=int, default=None, help="with --load: arrivals for this many requests (sets --duration)")
    p.add_argument("--burst", type=int, default=0, help="send this many requests at once instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-inflight", type=int, default=8, help="ltr_scheduler admission gate")
    p.add_argument("--policies", nargs="*", default=["fcfs", "ltr", "oracle"], help="fcfs, ltr, guarded, oracle")
    p.add_argument("--timeout", type=float, default=240.0, help="per-policy drain limit after the last send (s)")
    p.add_argument("--out", default=str(RESULTS / "serve.json"))
    p.add_argument("--sim-only", action="store_true", help="only simulate (to choose a configuration)")
    p.add_argument("--model-repository", default=None, help="source model repository (default: model_repository/)")
    p.add_argument("--report-only", action="store_true", help="rewrite the markdown from an existing --out json")
    args = p.parse_args(argv)

    out = Path(args.out)
    if args.report_only:
        rows = json.loads(out.read_text())
        write_markdown(rows, out.with_suffix(".md"), rows[0]["workload"])
        print(out.with_suffix(".md").read_text())
        return 0
    root = data_dir(args.data_dir)
    from deploy.local import answer_lengths

    table, lengths = answer_lengths({})
    if table is None and not args.sim_only:
        raise SystemExit(f"{lengths}: the served answers would not end at their natural lengths; run `make lengths`")
    pool = wl.load_pool(args.workload, root)
    cfg = replace(SERVED, max_inflight=args.max_inflight)  # the served deployment, as bench_serve configures it
    capacity = measure_capacity(wl.with_max_tokens(wl.text_workload(pool, None, burst=BURST, seed=args.seed),
                                                   args.max_tokens_mode), cfg)
    if args.load is not None:
        args.rate = round(args.load * capacity, 3)
        if args.requests:  # enough Poisson arrivals for `requests`, then cut to exactly that many
            args.duration = round(1.3 * args.requests / args.rate, 1)
    if args.burst:
        reqs = wl.text_workload(pool, None, burst=args.burst, seed=args.seed)
    else:
        reqs = wl.text_workload(pool, args.rate, args.duration, seed=args.seed, max_requests=args.requests)
    reqs = wl.with_max_tokens(reqs, args.max_tokens_mode)
    wl.save_jsonl(reqs, WORK / f"{out.stem}_workload.jsonl")
    true = np.array([r.answer_tokens for r in reqs], dtype=float)
    source = Path(args.model_repository) if args.model_repository else None
    vdir = find_predictor(source / "length_predictor" if source else None)
    scores = {"fcfs": np.zeros(len(reqs)), "oracle": true}
    predictor_note = "none"
    if vdir is not None:
        scores["ltr"] = request_scores(reqs, predictor_pool_scores(pool, vdir))
        sha = hashlib.sha256((vdir / "model.onnx").read_bytes()).hexdigest()[:12]
        predictor_note = f"{vdir.relative_to(REPO_ROOT) if vdir.is_relative_to(REPO_ROOT) else vdir} (model.onnx sha256 {sha})"
    if "ltr" in scores:
        scores["guarded"] = scores["ltr"]  # the same predictor's scores; the policy decides what to do with them
    sources = {"fcfs": "none", "oracle": "oracle", "ltr": shipped_source(args.workload),
               "guarded": shipped_source(args.workload)}
    label = (f"{args.workload} burst of {args.burst}" if args.burst
             else f"{args.workload} poisson {args.rate:g}/s x {args.duration:g}s")
    rows: list[dict] = []
    for policy in args.policies:
        if policy not in scores:
            print(f"skipping {policy}: no exported predictor to score with")
            continue
        # the guarded policy with the settings it is served with (config.pbtxt)
        sim = simulate(reqs, scores[policy], make_policy(policy, source_parameters("ltr_scheduler")), cfg)
        common = {"workload": label, "policy": policy, "rate": "burst" if args.burst else args.rate,
                  "load": None if args.burst else args.rate / capacity, "capacity_rps": capacity,
                  "score_source": sources[policy], "max_tokens_mode": args.max_tokens_mode,
                  "kendall_tau": kendall_tau(scores[policy], true) if policy != "fcfs" else None,
                  "prompt_format": args.prompt_format, "max_inflight": cfg.max_inflight, "batch_slots": cfg.batch_slots,
                  "predictor": predictor_note if policy in ("ltr", "guarded") else None, "seed": args.seed}
        rows.append({**common, "instrument": "simulated", **summarize(sim.times)})
        if args.sim_only:
            continue
        row, wall = serve_one(policy, reqs, args.max_inflight, args.timeout, source, args.prompt_format)
        # the entry model every served row went through (results/headline.json names it)
        rows.append({**common, "instrument": "served", "entry_model": DEFAULT_MODEL, **row, "wall_s": wall})
        print(json.dumps(rows[-2:], indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(public_rows(rows), indent=1) + "\n")
    write_markdown(rows, out.with_suffix(".md"), label)
    print(out.with_suffix(".md").read_text())
    return 0


def write_markdown(rows: list[dict], path: Path, label: str) -> None:
    first = rows[0] if rows else {}
    cols = [("instrument", "instrument", "{}")] + report.COLUMNS[1:] + [("failed", "failed", "{}")]
    lines = [
        "# Served vs simulated: the same trace on the real Triton ensemble (timing stand-in LLM)",
        "",
        f"Workload: {label}, {rows[0]['n_requests'] if rows else 0} requests; ltr_scheduler max_inflight "
        f"{first.get('max_inflight')}; tensorrt_llm stand-in with {first.get('batch_slots')} batch slots, timing mode (Llama-3-8B on an "
        f"A100-80GB cost model); starvation threshold {SERVED.starvation_threshold}, quantum {SERVED.starvation_quantum} (served defaults). "
        + (f"Load: {first['load']:.2f}x the engine's capacity for this workload ({first['capacity_rps']:.2f} req/s, FCFS "
           "throughput on a burst in the simulator). " if first.get("load") else "")
        + ("max_tokens: one generic cap for every request, answers ending at the target model's own lengths. "
           if first.get("max_tokens_mode") == "generic" else
           "**max_tokens: each request's own answer length (true_length; not what a user gets).** ")
        + ("Prompts: one user turn of the Llama-3 chat template, as the recorded answers were asked for. "
           if first.get("prompt_format", "raw") == "chat" else  # rows before issue 30 went raw
           "**Prompts: raw text without the chat template (not what the recorded lengths answered).** ")
        + "Reproduce: `make bench-serve` (`python -m loadtest.bench_serve`).",
        "",
        report.markdown_table(rows, cols),
        "",
    ]
    ltr = next((r for r in rows if r["policy"] == "ltr"), None)
    if ltr is not None:
        lines += [f"LTR scores ({ltr['score_source']}): the exported predictor {ltr.get('predictor')}, Kendall's tau "
                  f"{ltr['kendall_tau']:.2f} against the lengths generated; the oracle ranks by the true length, "
                  "sent in the experiments-only input `expected_output_len`.", ""]
    lines += [
        "## Simulator vs served",
        "",
    ]
    k = "mean_latency_per_token_s"
    for pol in dict.fromkeys(r["policy"] for r in rows):
        s = next((r for r in rows if r["policy"] == pol and r["instrument"] == "simulated"), None)
        v = next((r for r in rows if r["policy"] == pol and r["instrument"] == "served"), None)
        if s and v and v.get("n_requests"):
            err = s["mean_latency_s"] / v["mean_latency_s"] - 1
            lines.append(f"- {pol}: simulated mean latency {s['mean_latency_s']:.2f}s vs served "
                         f"{v['mean_latency_s']:.2f}s ({err:+.1%}); s/token {s[k]:.4f} vs {v[k]:.4f}")
    for inst in ("served", "simulated"):
        f = next((r for r in rows if r["policy"] == "fcfs" and r["instrument"] == inst), None)
        l = next((r for r in rows if r["policy"] == "ltr" and r["instrument"] == inst), None)
        o = next((r for r in rows if r["policy"] == "oracle" and r["instrument"] == inst), None)
        if f and l and f.get("n_requests") and l.get("n_requests"):
            lines.append(f"- {inst}: FCFS/LTR s/token = {f[k] / l[k]:.2f}x"
                         + (f", FCFS/oracle = {f[k] / o[k]:.2f}x" if o and o.get("n_requests") else ""))
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
