"""`make bench-loop`: the predictor learns a deployment's own traffic, end to end on a real server.

On a scratch copy of the model repository (the checkout's `model_repository/` is left as it was):
1. deploy with the shipped predictor (version 1, trained on AlpacaEval prompts and Llama-3 lengths),
   the stand-in LLM ending answers at Llama-3.1-8B-Instruct's lengths for CASTILLO's prompts
   (`length_table=build/lengths/llama-3.1-8b-instruct.json`: a new traffic mix and a model upgrade
   at once), the request log on and the repository API behind a key;
2. send `--n-logged` CASTILLO prompts through the ensemble and let the log fill;
3. `predictor.retrain` on the log (fine-tune v1, replay, judge on the newest slice, install v2);
4. send `--n-test` fresh CASTILLO prompts (in neither version's training data) and hot-swap to v2
   while they stream (`deploy.swap`): failed requests are counted;
5. report Kendall's tau of the served scores against the generated lengths before (v1) and after
   (v2) on the fresh prompts, a learning curve (tau of a version retrained on the first k logged
   rows), FCFS / LTR mean latency per token at one overloaded rate in the simulator
   (simulator.sim.simulate with the served versions' scores and the generated lengths), and the
   retrain time.

    python -m benchmarks.loop --out results/loop.json      # ~15-25 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from deploy.repository import render_repository
from deploy.swap import swap
from deploy.triton import RepositoryAccess, TritonServer
from loadtest.prompts import DEFAULT_PROMPT_FORMAT, add_prompt_format_argument, http_body
from predictor.data import CASTILLO_FILE
from predictor.evaluate import kendall_tau
from predictor.retrain import RetrainSettings, retrain
from repo_paths import BUILD_DIR, data_dir
from runtime.length_predictor import LengthRanker, latest_version_dir
from runtime.contracts import Entry
from runtime.request_log import read_rows
from workloads.lengths import CASTILLO_TABLE, LENGTHS_DIR
from workloads.metrics import summarize
from workloads.traces import TraceRequest, poisson_arrivals

WORK = BUILD_DIR / "loop"


def castillo_prompts(root: Path) -> list[str]:
    rows = [json.loads(line) for line in (root / CASTILLO_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(dict.fromkeys(r["prompt"] for r in rows))


def split_prompts(prompts: list[str], n_logged: int, n_test: int, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint traffic (logged) and fresh test prompts, drawn at random."""
    order = np.random.RandomState(seed).permutation(len(prompts))
    if n_logged + n_test > len(prompts):
        raise SystemExit(f"only {len(prompts)} prompts for {n_logged} logged + {n_test} test")
    return [prompts[i] for i in order[n_test : n_test + n_logged]], [prompts[i] for i in order[:n_test]]


def generate(http_url: str, prompt: str, max_tokens: int, timeout_s: float = 600,
             prompt_format: str = DEFAULT_PROMPT_FORMAT) -> tuple[bool, str]:
    """One non-streamed request through the ensemble's generate_stream, chat-templated as CASTILLO's
    lengths were recorded (loadtest.prompts); (ok, finish_reason or error)."""
    body = json.dumps(http_body(prompt, max_tokens, prompt_format, **{Entry.STREAM: False})).encode()
    req = urllib.request.Request(f"http://{http_url}/v2/models/ensemble/generate_stream", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            events = [json.loads(line[6:]) for line in resp.read().splitlines() if line.startswith(b"data: ")]
    except (urllib.error.URLError, OSError) as exc:
        return False, str(exc)
    if not events or "error" in events[-1]:
        return False, str(events[-1] if events else "no response")
    return True, events[-1].get("finish_reason", "")


def send_all(http_url: str, prompts: list[str], max_tokens: int, concurrency: int,
             on_done=None, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> list[tuple[float, float, bool, str]]:
    """Closed loop: `concurrency` clients; returns (start, end, ok, detail) per request."""
    results: list[tuple[float, float, bool, str]] = []
    lock = threading.Lock()

    def one(prompt: str) -> None:
        t0 = time.time()
        ok, detail = generate(http_url, prompt, max_tokens, prompt_format=prompt_format)
        with lock:
            results.append((t0, time.time(), ok, detail))
            if on_done is not None:
                on_done(len(results))

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, prompts))
    return results


def served_pairs(rows: list[dict], prompts: set[str], version: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Served score and generated length of completed rows for `prompts` (one row per prompt, the last).
    A chat-templated request logs its user turn stripped, as the template holds it: matched stripped."""
    prompts = {p.strip() for p in prompts}
    last = {}
    for r in rows:
        if (r.get("prompt") or "").strip() in prompts and r["finish_reason"] in ("stop", "length") and (
                version is None or r.get("predictor_version") == version):
            last[r["prompt"]] = r
    chosen = list(last.values())
    return (np.array([r["score"] for r in chosen]), np.array([r["output_tokens"] for r in chosen], float),
            [r["prompt"] for r in chosen])


def simulated_latency_per_token(lengths: np.ndarray, prompt_tokens: np.ndarray, scores: dict[str, np.ndarray],
                                rate: float, duration_s: float, max_tokens: int, seed: int) -> dict:
    """Mean latency per output token, FCFS vs LTR under each version's scores, at one rate."""
    from simulator.sim import simulate

    rng = np.random.default_rng(seed)
    arrivals = poisson_arrivals(rate, duration_s, rng)
    pick = rng.integers(0, len(lengths), len(arrivals))
    reqs = [TraceRequest(f"r{i}", float(t), int(prompt_tokens[j]), max(1, int(lengths[j])), item=int(j), max_tokens=max_tokens)
            for i, (t, j) in enumerate(zip(arrivals, pick))]
    out = {"rate_per_s": rate, "duration_s": duration_s, "n_requests": len(reqs)}
    out["fcfs"] = summarize(simulate(reqs, np.zeros(len(reqs)), "fcfs").times)["mean_latency_per_token_s"]
    for name, s in scores.items():
        out[f"ltr_{name}"] = summarize(simulate(reqs, s[pick], "ltr").times)["mean_latency_per_token_s"]
    return out


def synthetic_log(root: Path, avoid: set[str], n: int, path: Path, seed: int) -> Path:
    """`n` log rows made from CASTILLO's recorded lengths (one sample per row, `stop`), none of
    `avoid`: the retrain-time figure for a log of a given size without serving it first."""
    rows = [json.loads(line) for line in (root / CASTILLO_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["prompt"] not in avoid]
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        r = rows[rng.randint(len(rows))]
        out.append({"prompt": r["prompt"], "output_tokens": int(rng.choice(r["output_tokens_samples"])),
                    "finish_reason": "stop", "score": 0.0, "predictor_version": "1", "max_tokens": 4096,
                    "end_time": float(i)})
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def traffic_log(root: Path, traffic: Sequence[str], n: int, path: Path, seed: int) -> Path:
    """`n` log rows of repeating traffic: each request draws one of `traffic`'s prompts at random
    (so prompts repeat) and one of its recorded CASTILLO lengths (sampled per request, as a real
    model's would vary). What a server in timing mode would have logged, without serving it."""
    samples = {}
    for line in (root / CASTILLO_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            samples.setdefault(r["prompt"], r["output_tokens_samples"])
    pool = [p for p in traffic if p in samples]
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        p = pool[rng.randint(len(pool))]
        out.append({"prompt": p, "output_tokens": int(rng.choice(samples[p])), "finish_reason": "stop", "score": 0.0,
                    "predictor_version": "1", "max_tokens": 4096, "end_time": float(i)})
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def offline_curve(root: Path, traffic: Sequence[str], test: Sequence[str], ks: Sequence[int], model_dir: Path,
                  settings: RetrainSettings, checkpoints: Path, threads: int, seed: int, work: Path = WORK) -> list[dict]:
    """The `curve`: for each k, retrain the serving version on a `traffic_log` of k requests
    (staged, never installed) and take Kendall's tau of the staged version on the fresh `test`
    prompts against their median recorded length (10 Llama-3.1-8B samples)."""
    med = {}
    for line in (root / CASTILLO_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            med.setdefault(r["prompt"], float(np.median(r["output_tokens_samples"])))
    test = [p for p in test if p in med]
    y = np.array([med[p] for p in test])
    v1 = LengthRanker(latest_version_dir(model_dir), intra_op_threads=threads)
    curve = [{"k": 0, "tau": kendall_tau(v1.score_texts(test, 32), y), "retrain_seconds": 0.0}]
    for k in ks:
        log = traffic_log(root, traffic, k, work / f"curve_log_{k}.jsonl", seed)
        res = retrain(log, model_dir, replace(settings, min_rows=min(settings.min_rows, k)), checkpoints=checkpoints,
                      work_dir=work / f"offline_curve_{k}", install=False)
        point = {"k": k, "retrain_seconds": res["retrain_seconds"], "n_train_prompts": res.get("n_train_prompts"),
                 "n_holdout_prompts": res.get("n_holdout_prompts"), "judge": res.get("judge")}
        if "staged_dir" in res:
            point["tau"] = kendall_tau(LengthRanker(res["staged_dir"], intra_op_threads=threads).score_texts(test, 32), y)
        curve.append(point)
        print(json.dumps(point), flush=True)
    return curve


def curve_only(args: argparse.Namespace) -> int:
    """`--curve-only`: the `curve` from synthetic repeating traffic (`traffic_log`), retraining the
    shipped version, added to --out with `mix` and `v1_training`; no server is started."""
    root = data_dir(args.data_dir)
    traffic, test = split_prompts(castillo_prompts(root), args.n_traffic_prompts, args.n_test, args.seed)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    source = render_repository(work / "curve_source")
    model_dir = source / "length_predictor"
    settings = RetrainSettings(threads=args.threads, margin=args.margin)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["curve"] = offline_curve(root, traffic, test, args.curve_k, model_dir, settings, work / "curve_checkpoints",
                                    args.threads, args.seed, work)
    report["curve_method"] = (f"synthetic logs (not served): k requests drawn with repetition from {len(traffic)} traffic "
                              "prompts, each with one recorded Llama-3.1-8B length sampled per request; the shipped "
                              f"version retrained on each (staged); tau on {len(test)} fresh prompts (median of 10 samples)")
    report["mix"] = MIX
    report["v1_training"] = v1_training(model_dir)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


MIX = ("CASTILLO, all six data sets (Alpaca, Dolly: chat; Apps, BigCodeBench, DS1000, MBPP: code), lengths of "
       "Llama-3.1-8B-Instruct: v1 never trained on any CASTILLO prompt")


def v1_training(model_dir: Path) -> str:
    """What version 1 trained on, from its own predictor.json."""
    from runtime.length_predictor import read_meta

    meta = read_meta(model_dir / "1")
    t = meta.get("training", {})
    return (f"{t.get('train_prompts', '?')} AlpacaEval prompts, labels {t.get('labels', '?')} "
            f"(median over the AlpacaEval Llama-3-family generators' lengths), no CASTILLO or Arena-Hard prompt")


def plot(curve: list[dict], tau_before: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([c["n_logged"] for c in curve], [c["tau_test"] for c in curve], "o-", label="retrained on the first k logged requests")
    ax.axhline(tau_before, color="gray", ls="--", label="shipped version (v1)")
    ax.set_xscale("log")
    ax.set_xlabel("logged requests used (k)")
    ax.set_ylabel("Kendall's tau, fresh prompts")
    ax.set_title("Predictor learning the deployment's traffic (CASTILLO, Llama-3.1 lengths)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    root = data_dir(args.data_dir)
    table = LENGTHS_DIR / f"{CASTILLO_TABLE}.json"
    if not table.is_file():
        raise SystemExit(f"{table} missing: run `make lengths`")
    traffic, test = split_prompts(castillo_prompts(root), args.n_logged, args.n_test, args.seed)
    if WORK.exists():
        shutil.rmtree(WORK)
    source = render_repository(WORK / "source")  # links to the checkout's files; new versions land here
    log_dir = WORK / "request_log"
    overrides = {
        "tensorrt_llm": {"mode": "timing", "length_table": str(table.resolve()), "max_batch_slots": str(args.slots),
                         "max_tokens_in_paged_kv_cache": str(args.slots * (args.max_tokens + 4096))},
        "ltr_scheduler": {"request_log": str(log_dir)},
    }
    repo = render_repository(WORK / "served", overrides, source=source)
    access = RepositoryAccess.generate()
    report: dict = {"n_traffic_prompts": len(traffic), "max_tokens": args.max_tokens, "slots": args.slots,
                    "concurrency": args.concurrency, "seed": args.seed, "prompt_format": args.prompt_format}
    server = TritonServer(repo, WORK, repository_access=access).start(timeout_s=300)
    try:
        t0 = time.time()
        phase1 = send_all(server.http_url, traffic, args.max_tokens, args.concurrency,
                          prompt_format=args.prompt_format)
        report["phase1_seconds"] = round(time.time() - t0, 1)
        report["phase1_failed"] = sum(not ok for *_, ok, _ in phase1)
        time.sleep(2)
        rows = read_rows(log_dir)
        report["n_logged"] = len(rows)
        report["finish_reasons_logged"] = {k: sum(r["finish_reason"] == k for r in rows) for k in ("stop", "length", "cancelled", "error", "rejected")}
        s, y, _ = served_pairs(rows, set(traffic), "1")
        report["tau_v1_on_logged_traffic"] = kendall_tau(s, y)

        settings = RetrainSettings(threads=args.threads, margin=args.margin)
        ckpts = WORK / "checkpoints"  # never the machine's build/predictor/checkpoints
        model_dir = source / "length_predictor"
        snapshot = WORK / "log_snapshot.jsonl"  # the log as it was: retraining reads no later rows
        snapshot.write_text("".join(json.dumps(r) + "\n" for r in rows))
        # learning curve first (each fine-tunes v1 on the first k rows; staged, not installed)
        staged_curve = []
        for k in args.curve:
            res = retrain(snapshot, model_dir, replace(settings, min_rows=min(settings.min_rows, k)), checkpoints=ckpts,
                          work_dir=WORK / f"curve_{k}", install=False, max_rows=k)
            if "staged_dir" in res:
                moved = WORK / f"curve_{k}" / "version"
                shutil.move(res["staged_dir"], moved)
                staged_curve.append((k, moved, res["retrain_seconds"]))
        result = retrain(snapshot, model_dir, settings, checkpoints=ckpts, work_dir=WORK / "retrain")
        report["retrain"] = {k: result.get(k) for k in ("rows", "n_train_prompts", "n_replay", "n_holdout", "n_holdout_prompts", "judge",
                                                      "shipped", "reason", "train_seconds", "retrain_seconds")}
        report["retrain_seconds"] = result["retrain_seconds"]

        # fresh prompts; the swap happens while they stream
        swap_info: dict = {}
        swap_window: list[float] = []
        started = threading.Event()

        def do_swap() -> None:
            started.wait()
            swap_window.append(time.time())
            try:
                swap_info.update(swap(repo, server.http_url, access, source_repo=source))
            except Exception as exc:
                swap_info["error"] = str(exc)
            swap_window.append(time.time())

        swapper = threading.Thread(target=do_swap)
        swapper.start()
        t0 = time.time()
        phase2 = send_all(server.http_url, test, args.max_tokens, args.concurrency,
                          on_done=lambda n: started.set() if n >= args.swap_after else None,
                          prompt_format=args.prompt_format)
        started.set()
        swapper.join()
        report["phase2_seconds"] = round(time.time() - t0, 1)
        report["swap"] = swap_info
        a, b = swap_window
        report["requests_during_swap"] = sum(1 for st, en, _, _ in phase2 if st <= b and en >= a)
        report["swap_seconds"] = round(b - a, 2)
        report["failed_requests_during_swap"] = sum(1 for st, en, ok, _ in phase2 if st <= b and en >= a and not ok)
        report["failed_requests_phase2"] = sum(not ok for *_, ok, _ in phase2)
        time.sleep(2)
        rows = read_rows(log_dir)
    finally:
        server.stop()

    test_set = set(test)
    s2, y2, p2 = served_pairs(rows, test_set, "2")
    s1_served, y1_served, _ = served_pairs(rows, test_set, "1")
    report["n_test"] = len(p2)
    report["n_test_sent"] = len(test)
    report["tau_after"] = kendall_tau(s2, y2)
    # v1's scores for the same fresh prompts, with the server's own ONNX file and preprocessing
    v1 = LengthRanker(source / "length_predictor" / "1", intra_op_threads=args.threads)
    report["tau_before"] = kendall_tau(v1.score_texts(p2, 32), y2)
    report["tau_v1_served_before_swap"] = {"tau": kendall_tau(s1_served, y1_served) if len(y1_served) > 2 else None,
                                           "n": len(y1_served)}

    curve = []
    for k, version_dir, seconds in staged_curve:
        staged = LengthRanker(version_dir, intra_op_threads=args.threads)
        curve.append({"n_logged": k, "tau_test": kendall_tau(staged.score_texts(p2, 32), y2), "retrain_seconds": seconds})
    curve.append({"n_logged": report["retrain"]["rows"]["used"], "tau_test": report["tau_after"],
                  "retrain_seconds": report["retrain_seconds"], "shipped": True})
    report["learning_curve"] = curve

    # FCFS / LTR at one overloaded rate (simulator, the served versions' scores, generated lengths)
    counter = __import__("runtime.llama3_tokenizer", fromlist=["load_tokenizer"]).load_tokenizer()
    prompt_tokens = np.array([len(counter.encode(p)) + 1 for p in p2])
    report["latency_per_token"] = simulated_latency_per_token(
        y2, prompt_tokens, {"v1": v1.score_texts(p2, 32), "v2": s2}, args.rate, args.duration, args.max_tokens, args.seed)

    if args.timing_rows:  # the retrain time of a log of the size (5,000 rows), 2 threads
        report["retrain_timing"] = retrain_timing(root, test_set, model_dir, settings, ckpts, args)
    return report


def retrain_timing(root: Path, avoid: set[str], model_dir: Path, settings: RetrainSettings, checkpoints: Path,
                   args: argparse.Namespace) -> dict:
    """The retrain time of a log of `--timing-rows` rows (CASTILLO's recorded lengths written as log
    rows, none of `avoid`), from the latest version in `model_dir`; staged, never installed. The
    host's load average is recorded beside it: on 2 shared cores the wall time follows the load."""
    log = synthetic_log(root, avoid, args.timing_rows, WORK / "timing_log.jsonl", args.seed)
    load_before = os.getloadavg()[0]
    res = retrain(log, model_dir, settings, checkpoints=checkpoints, work_dir=WORK / "timing", install=False)
    return {"logged_rows": args.timing_rows, "retrain_seconds": res["retrain_seconds"],
            "train_seconds": res.get("train_seconds"), "n_train_prompts": res.get("n_train_prompts"),
            "n_replay": res.get("n_replay"), "n_holdout": res.get("n_holdout"),
            "from_version": res.get("serving_version"), "threads": settings.threads,
            "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "rows": "CASTILLO recorded lengths written as log rows (not served)"}


def timing_only(args: argparse.Namespace) -> int:
    """`--timing-only`: time a retrain alone (from the shipped version) and add it to an existing
    report as `retrain_timing_alone`, so the figure can be taken when the host is quiet."""
    report = json.loads(args.out.read_text())
    source = render_repository(WORK / "timing_source")
    settings = RetrainSettings(threads=args.threads, margin=args.margin)
    report["retrain_timing_alone"] = retrain_timing(data_dir(args.data_dir), set(), source / "length_predictor",
                                                    settings, WORK / "timing_checkpoints", args)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out.with_suffix(".md"), args.out.with_suffix(".png").name)
    print(json.dumps(report["retrain_timing_alone"], indent=1))
    return 0


def write_markdown(report: dict, path: Path, png: str) -> None:
    lat = report["latency_per_token"]
    r = report["retrain"]
    lines = [
        "# The loop: the predictor learns the deployment's traffic (`make bench-loop`)",
        "",
        "Real tritonserver on CPU (stand-in LLM in timing mode, answers ending at Llama-3.1-8B-Instruct's lengths",
        "for CASTILLO prompts), shipped predictor v1 (AlpacaEval / Llama-3 trained), request log on;",
        f"{report['n_logged']} logged requests, retrain, hot swap to v2 while {report.get('n_test_sent', '?')} fresh prompts stream",
        f"({report['n_test']} of them scored by v2: they are the test set; v1's scores for them come from the same ONNX file and",
        "preprocessing the server runs).",
        "",
        "| | value |",
        "|---|---|",
        f"| Kendall's tau on {report['n_test']} fresh prompts, v1 (before) | {report['tau_before']:.3f} |",
        f"| Kendall's tau on the same prompts, v2 (after, served scores) | {report['tau_after']:.3f} |",
        f"| logged requests / usable (stop + censored) / censored as lower bounds (length, cancelled) | {r['rows'].get('total')} / {r['rows'].get('used')} / "
        f"{r['rows'].get('censored_length', 0)}, {r['rows'].get('censored_cancelled', 0)} |",
        f"| judge on the {r.get('n_holdout_prompts', '?')} newest-first-seen prompts ({r['n_holdout']} logged rows, none trained on): tau old -> new | {r['judge']['tau_old']:.3f} -> {r['judge']['tau_new']:.3f} ({r['reason']}) |",
        f"| retrain seconds (2 threads; training alone) | {report['retrain_seconds']} ({r['train_seconds']}) |",
        *([f"| retrain seconds for {report['retrain_timing']['logged_rows']} logged rows, in the bench after the swap (2 threads; "
           f"training alone; see the load note below) | "
           f"{report['retrain_timing']['retrain_seconds']} ({report['retrain_timing']['train_seconds']}) |"]
          if "retrain_timing" in report else []),
        f"| requests in flight during the swap / failed | {report['requests_during_swap']} / {report['failed_requests_during_swap']} |",
        f"| failed requests in the whole fresh phase | {report['failed_requests_phase2']} |",
        f"| simulator, {lat['rate_per_s']} req/s for {lat['duration_s']} s: mean latency per token FCFS / LTR v1 / LTR v2 (s) | "
        f"{lat['fcfs']:.4f} / {lat['ltr_v1']:.4f} / {lat['ltr_v2']:.4f} |",
        *([f"| retrain seconds for {t['logged_rows']} logged rows, run alone (`--timing-only`; 2 threads; training alone) | "
           f"{t['retrain_seconds']} ({t['train_seconds']}) |"] if (t := report.get("retrain_timing_alone")) else []),
        *(["", f"{report['retrain_timing']['logged_rows']}-row retrains: {report['retrain_timing']['rows']}; 1-minute load average "
           f"of the 2-core host before / after: {timing_loads(report)}."] if "retrain_timing" in report else []),
        "",
        "Learning curve (tau on the fresh prompts of a version retrained on the first k logged requests):",
        "",
        "| k | tau | retrain s |",
        "|---|---|---|",
        *[f"| {c['n_logged']} | {c['tau_test']:.3f} | {c['retrain_seconds']} |" for c in report["learning_curve"]],
        "",
        f"![learning curve]({png})",
        "",
        "Reproduce: `make bench-loop` (results/loop.json holds every figure).",
    ]
    path.write_text("\n".join(lines) + "\n")


def timing_loads(report: dict) -> str:
    """The load averages of the timing runs, in the markdown's words."""
    parts = []
    for key, name in (("retrain_timing", "in the bench"), ("retrain_timing_alone", "alone")):
        load = report.get(key, {}).get("load_average_1m")
        parts.append(f"{name} {load['before']} / {load['after']}" if load else f"{name} not recorded")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/loop.json"))
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--n-logged", type=int, default=1500)
    ap.add_argument("--n-test", type=int, default=700, help="fresh prompts sent; those scored by v1 before the swap do not count")
    ap.add_argument("--timing-rows", type=int, default=5000, help="also time a retrain on this many log rows (0: skip)")
    ap.add_argument("--max-tokens", type=int, default=2048)
    ap.add_argument("--slots", type=int, default=256, help="stand-in batch slots (a fast engine fills the log sooner)")
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--swap-after", type=int, default=25, help="fresh requests finished before the swap starts")
    ap.add_argument("--curve", type=int, nargs="*", default=[300, 600])
    ap.add_argument("--rate", type=float, default=16.0, help="the overloaded rate of the simulator comparison")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--margin", type=float, default=RetrainSettings.margin)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    add_prompt_format_argument(ap)
    ap.add_argument("--curve-only", action="store_true",
                    help="only the `curve` from synthetic repeating traffic (no server), added to --out")
    ap.add_argument("--curve-k", type=int, nargs="*", default=[300, 1000, 1500, 3000, 10000])
    ap.add_argument("--work", type=Path, default=WORK, help="--curve-only: scratch folder")
    ap.add_argument("--n-traffic-prompts", type=int, default=3000, help="--curve-only: distinct prompts the traffic repeats")
    ap.add_argument("--timing-only", action="store_true",
                    help="only time a --timing-rows retrain from the shipped version and add it to --out")
    args = ap.parse_args(argv)
    if args.timing_only:
        return timing_only(args)
    if args.curve_only:
        return curve_only(args)
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    plot(report["learning_curve"], report["tau_before"], png)
    write_markdown(report, args.out.with_suffix(".md"), png.name)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
