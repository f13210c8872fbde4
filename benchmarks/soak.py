"""Issue-13 soak: many mixed requests against a real deployment, bounded by a request count.

    python -m benchmarks.soak --requests 10000     # (make soak) writes results/soak.json and .md

Mix: HTTP generate, HTTP generate_stream and gRPC stream in equal parts, to `ltr_bls` (the default
entry point; `--model ensemble` for the ensemble); 10% of the clients leave
early (HTTP: close the connection after the first token; gRPC: cancel the stream), 5% send a bad
request. Reported: requests lost (no answer), hung (none within the client timeout), wrongly
answered; the scheduler's gauges and Triton's phantom in-flight count at the end; RSS of every
process before and after and tritonserver's growth per 1,000 requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from benchmarks.faults import ENTRY_MODELS, Deployment, phantom_inflight, rss_by_process
from loadtest.abandon import http_stream_close
from loadtest.grpc_stream import ensemble_inputs
from loadtest.prompts import DEFAULT_PROMPT_FORMAT
from repo_paths import BUILD_DIR, RESULTS_DIR

CONCURRENCY = 16
RSS_EVERY = 1000  # tritonserver's RSS is sampled after every this many requests
# The stand-in's default capacity (max_inflight auto) and queue; answers run to max_tokens.
OVERRIDES = ["tensorrt_llm.length_table=", "ltr_scheduler.llm_stall_timeout_s=10"]


def http_leave_early(d: Deployment) -> dict:
    """A streaming client that reads the first event and closes the connection (lost: the
    connection ended, or 30 s passed, before any event)."""
    events = http_stream_close("127.0.0.1", d.http, "Tell me a long story.", 200, model=d.model, within_s=30)
    return {"outcome": "left" if events else "lost"}


def grpc_stream(d: Deployment, max_tokens: int, cancel: bool, bad: bool) -> dict:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{d.grpc}")
    done: list = []

    def callback(result, error) -> None:
        if error is not None:
            done.append(("error", str(error)))
        elif result.get_response().parameters.get("triton_final_response", None) is not None and \
                result.get_response().parameters["triton_final_response"].bool_param:
            done.append(("ok", ""))

    # the load tests' request (loadtest.prompts: chat-templated); `bad` adds a NaN temperature the server refuses
    inputs = ensemble_inputs("Tell me a story.", max_tokens, prompt_format=DEFAULT_PROMPT_FORMAT,
                             **({"temperature": float("nan")} if bad else {}))
    client.start_stream(callback=callback)
    try:
        try:
            client.async_stream_infer(d.model, inputs, enable_empty_final_response=True)
        except InferenceServerException as exc:  # the stream broke (e.g. the server was restarted)
            return {"outcome": "lost", "message": str(exc)[:160]}
        deadline = time.monotonic() + (0.3 if cancel else 60)
        while not done and time.monotonic() < deadline:
            time.sleep(0.02)
        if cancel:
            client.stop_stream(cancel_requests=True)
            return {"outcome": "left"}
    finally:
        client.stop_stream()
    if not done:
        return {"outcome": "hung"}
    kind, message = done[0]
    return {"outcome": kind, "message": message[:160]}


def one(d: Deployment, i: int, rng: random.Random) -> dict:
    kind = ("http", "http_stream", "grpc_stream")[i % 3]
    leave, bad = rng.random() < 0.10, rng.random() < 0.05 / 0.90
    try:
        return _one(d, kind, leave, bad, rng)
    except OSError as exc:  # e.g. refused while the supervisor restarts the server: lost, and counted
        return {"kind": kind, "leave": leave, "bad": bad and not leave, "outcome": "lost",
                "message": f"{type(exc).__name__}: {exc}"[:160], "wrong": False}


def _one(d: Deployment, kind: str, leave: bool, bad: bool, rng: random.Random) -> dict:
    max_tokens = rng.choice([4, 8, 16, 32])
    body = {"max_tokens": max_tokens, **({"top_p": 7.0} if bad else {})}
    if kind == "grpc_stream":
        result = grpc_stream(d, max_tokens if not leave else 200, cancel=leave, bad=bad and not leave)
    elif leave and kind == "http_stream":
        result = http_leave_early(d)
    elif leave:  # a non-streaming client that gives up after 0.3 s
        result = d.generate({"max_tokens": 200}, stream=False, timeout=0.3)
        result = {"outcome": "left"} if result["outcome"] == "hung" else result
    else:
        result = d.generate(body, stream=kind == "http_stream", timeout=60)
    result["wrong"] = (bad and not leave and result["outcome"] == "ok") or (not bad and result["outcome"] == "error")
    return {"kind": kind, "leave": leave, "bad": bad and not leave, **result}


def second_half_growth(curve: list[tuple[int, float]]) -> float | None:
    """Bytes per request between the sample nearest the middle and the last: warm-up (allocator
    arenas, caches) is in the first half, a leak in both."""
    if len(curve) < 3:
        return None
    middle = min(curve, key=lambda point: abs(point[0] - curve[-1][0] / 2))
    done = curve[-1][0] - middle[0]
    return round((curve[-1][1] - middle[1]) * 2**20 / done, 1) if done else None


def supervisor_recoveries(d: Deployment) -> list[dict]:
    """What the supervisor did during the soak (its readiness endpoint keeps the last 20)."""
    return d.readiness(timeout_s=5)[1].get("recoveries", [])


def run(n: int, out: Path, model: str = ENTRY_MODELS[0]) -> dict:
    state = BUILD_DIR / "soak" / "state"
    state.mkdir(parents=True, exist_ok=True)
    d = Deployment(state, OVERRIDES, model=model)
    d.start()
    roots = [d.pid("tritonserver.pid"), d.pid("openai_server.pid"), d.pid("supervisor.pid")]
    for _ in range(20):  # warm up before the first RSS reading
        d.generate({"max_tokens": 4})
    rss_before = rss_by_process(roots)
    triton_before = psutil.Process(roots[0]).memory_info().rss
    rng = random.Random(13)
    started = time.monotonic()
    try:
        results: list[dict] = []
        rss_curve = [(0, round(triton_before / 2**20, 1))]  # (requests done, tritonserver RSS MiB)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            for start in range(0, n, RSS_EVERY):  # in slices, to see whether growth levels off
                seeds = [random.Random(rng.random()) for _ in range(start, min(n, start + RSS_EVERY))]
                results += pool.map(lambda args: one(d, *args), zip(range(start, start + len(seeds)), seeds))
                with contextlib.suppress(psutil.Error, OSError, ValueError):
                    rss_curve.append((len(results), round(psutil.Process(d.pid("tritonserver.pid")).memory_info().rss / 2**20, 1)))
        time.sleep(3)
        triton_pid = d.pid("tritonserver.pid")
        restarted = triton_pid != roots[0]
        triton_after = psutil.Process(triton_pid).memory_info().rss
        rss_after = rss_by_process([triton_pid, *roots[1:]])
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics}/metrics", timeout=5).read().decode()
        gauges = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith(("ltr_scheduler_waiting_requests", "ltr_scheduler_inflight_requests"))}
        recoveries = supervisor_recoveries(d)
        log = state / "tritonserver.log"
        log_at = log.stat().st_size
        stop_started = time.monotonic()
        d.deploy("stop", "--grace", "5")
        stop_s = time.monotonic() - stop_started
        phantom = phantom_inflight(log, log_at)
    finally:
        d.deploy("stop", "--grace", "1")
    outcomes = {k: sum(r["outcome"] == k for r in results) for k in ("ok", "error", "left", "hung", "lost")}
    report = {
        "requests": n, "model": model, "concurrency": CONCURRENCY, "seconds": round(time.monotonic() - started, 1),
        "outcomes": outcomes, "by_kind": {k: sum(r["kind"] == k for r in results) for k in ("http", "http_stream", "grpc_stream")},
        "left_early": sum(r["leave"] for r in results), "bad": sum(r["bad"] for r in results),
        "wrongly_answered": sum(r["wrong"] for r in results),
        "wrong_examples": [r for r in results if r["wrong"]][:5],
        "scheduler_gauges_at_end": gauges, "phantom_inflight_at_stop": phantom, "stop_s": round(stop_s, 2),
        "tritonserver_restarted_during_soak": restarted, "supervisor_recoveries": recoveries,
        "tritonserver_growth_bytes_per_request": None if restarted else round((triton_after - triton_before) / n, 1),
        "tritonserver_rss_mib_by_requests": rss_curve,
        "tritonserver_growth_bytes_per_request_second_half": second_half_growth(rss_curve),
        "rss_mib_before": rss_before, "rss_mib_after": rss_after,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "soak.md").write_text(markdown(report))
    return report


def markdown(r: dict) -> str:
    o = r["outcomes"]
    growth = r["tritonserver_growth_bytes_per_request"]
    lines = [
        "# Soak (issue 13): `make soak`", "",
        f"{r['requests']} requests ({r['by_kind']}) to `{r.get('model', 'ensemble')}`, {r['concurrency']} concurrent "
        f"clients, {r['seconds']} s; "
        f"{r['left_early']} clients left early (HTTP: closed the connection; gRPC: cancelled the stream), {r['bad']} bad. "
        f"Reproduce: `make soak SOAK_REQUESTS={r['requests']}`"
        f"{'' if r.get('model', 'ltr_bls') == 'ltr_bls' else ' (python -m benchmarks.soak --model ' + r['model'] + ')'}.", "",
        "| ok | error | left early | hung | lost | wrongly answered |", "|---|---|---|---|---|---|",
        f"| {o['ok']} | {o['error']} | {o['left']} | {o['hung']} | {o['lost']} | {r['wrongly_answered']} |", "",
        f"At the end: scheduler gauges {r['scheduler_gauges_at_end']}; phantom in-flight requests Triton still counted "
        f"at the stop: {r['phantom_inflight_at_stop']}; `make stop` took {r['stop_s']} s; tritonserver restarted by the "
        f"supervisor during the soak: {r['tritonserver_restarted_during_soak']}"
        f"{'' if not r.get('supervisor_recoveries') else ' (' + '; '.join(rec['action'] + ' ' + rec['what'] + ' in ' + str(rec['seconds']) + ' s' for rec in r['supervisor_recoveries']) + ')'}.", "",
        f"tritonserver RSS growth: {growth if growth is not None else 'n/a (restarted)'} bytes per request"
        f"{'' if growth is None else f' ({growth * 1000 / 1024:.0f} KiB per 1,000)'}; over the second half alone: "
        f"{r.get('tritonserver_growth_bytes_per_request_second_half')} bytes per request. RSS (MiB) by requests done: "
        + ", ".join(f"{k}: {v}" for k, v in r.get("tritonserver_rss_mib_by_requests", [])) + ".", "",
        "| process | RSS before (MiB) | after |", "|---|---|---|",
    ]
    for name, value in r["rss_mib_before"].items():
        lines.append(f"| {name} | {value} | {r['rss_mib_after'].get(name, '(restarted)')} |")
    if r["wrong_examples"]:
        lines += ["", "Wrong answers (first 5):", ""] + [f"- `{json.dumps(w)[:300]}`" for w in r["wrong_examples"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    parser.add_argument("--model", default=ENTRY_MODELS[0], choices=ENTRY_MODELS, help="the Triton entry point")
    args = parser.parse_args(argv)
    print(markdown(run(args.requests, Path(args.out), args.model)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
