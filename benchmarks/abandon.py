"""Issue 13: abandoned requests on the two Triton entry points, `ltr_bls` (the default) and
`ensemble` (kept for compatibility), measured side by side on real tritonservers.

    python -m benchmarks.abandon                 # writes results/abandon.json and .md

1. Leaving clients: N clients that leave mid-answer, one way per fresh server (gRPC stream cancel,
   HTTP generate_stream close, HTTP generate close). Per run: how long after the last client left
   the scheduler's gauges (waiting + in flight) read 0, how many requests the scheduler stopped, and
   how many requests Triton itself still counts in flight (the "Model '...' has N in-flight
   inferences" lines it logs when it is stopped: Triton has no metric for them).
2. Memory: tritonserver's RSS growth per 1,000 requests, answered and abandoned.
3. Overhead: TTFT and latency at one client, the BLS entry against the ensemble.

The LLM is the `timing` stand-in; answers run to max_tokens (length_table ""), so a request that is
not stopped holds its slot to the end.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import psutil
import tritonclient.grpc as grpcclient

from deploy.local import scheduler_busy as metrics_busy
from deploy.repository import render_repository
from deploy.triton import TritonServer
from loadtest.abandon import LEAVE_KINDS, grpc_cancel, http_generate_close, http_stream_close
from loadtest.grpc_stream import generate
from repo_paths import BUILD_DIR, RESULTS_DIR

MODELS = ("ltr_bls", "ensemble")
PROMPT = "Tell me a long story about the sea."
OVERRIDES = {
    "tensorrt_llm": {"mode": "timing", "length_table": ""},
    "ltr_scheduler": {"llm_stall_timeout_s": "10"},
}
INFLIGHT_LINE = re.compile(r"Model '([^']+)' \(version \d+\) has (\d+) in-flight inferences")
FOUND_LINE = re.compile(r"Found (\d+) model versions that have in-flight inferences")


def start(work: Path) -> TritonServer:
    repo = render_repository(work / "model_repository", OVERRIDES)
    return TritonServer(repo, work).start()


def metrics(server: TritonServer) -> dict[str, float]:
    """Prometheus samples by `name{labels}`."""
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def scheduler_busy(server: TritonServer) -> float:
    return metrics_busy(urllib.request.urlopen(server.metrics_url, timeout=10).read().decode())


def scheduler_events(server: TritonServer) -> dict[str, float]:
    return {k.split('event="')[1].split('"')[0]: v for k, v in metrics(server).items()
            if k.startswith("ltr_scheduler_requests_total")}


def inflight_at_stop(server: TritonServer, timeout_s: float = 3.0) -> dict[str, int]:
    """Stop the server (SIGTERM; killed after `timeout_s`) and read what Triton said it still counts
    in flight, by model, at its first look (an empty dict: nothing)."""
    at = server.log_path.stat().st_size
    server.stop(timeout_s=timeout_s)
    text = server.log_path.read_bytes()[at:].decode(errors="replace")
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if FOUND_LINE.search(line) and counts:
            break  # the first look is enough: the counts repeat every second
        match = INFLIGHT_LINE.search(line)
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


def leave(server: TritonServer, model: str, kind: str, max_tokens: int) -> Callable[[], object]:
    host, port = "127.0.0.1", server.ports.http
    return {
        "grpc_cancel": lambda: grpc_cancel(server.grpc_url, PROMPT, max_tokens, model=model),
        "http_stream_close": lambda: http_stream_close(host, port, PROMPT, max_tokens, model=model),
        "http_generate_close": lambda: http_generate_close(host, port, PROMPT, max_tokens, model=model, within_s=1.0),
    }[kind]


def warm_up(server: TritonServer, model: str) -> None:
    """A cold predictor takes a second or more: clients would leave before reaching the scheduler."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        for _ in range(3):
            assert generate(client, PROMPT, 4, model=model).error is None
    finally:
        client.close()


def wait_idle(server: TritonServer, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if scheduler_busy(server) == 0:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def probe_leaving(work: Path, model: str, kind: str, clients: int, max_tokens: int) -> dict:
    server = start(work)
    try:
        warm_up(server, model)
        wait_idle(server, 10)
        before = scheduler_events(server)
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: leave(server, model, kind, max_tokens)(), range(clients)))
        released_s = wait_idle(server, timeout_s=300)
        after = scheduler_events(server)
    finally:
        phantom = inflight_at_stop(server)
    delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in ("completed", "cancelled")}
    return {"model": model, "kind": kind, "clients": clients, "max_tokens": max_tokens,
            "scheduler_idle_after_s": None if released_s is None else round(released_s, 2),
            "stopped_in_scheduler": delta["cancelled"], "ran_to_the_end": delta["completed"],
            "triton_inflight_at_stop": phantom, "phantom": sum(phantom.values())}


def _rss(server: TritonServer) -> int:
    return psutil.Process(server.process.pid).memory_info().rss


def probe_memory(work: Path, model: str, requests: int, concurrency: int = 8) -> dict:
    """RSS growth of tritonserver over `requests` answered gRPC streams, then over `requests`
    cancelled ones (after a warm-up of each)."""
    server = start(work)
    url = server.grpc_url

    def answered(_: int) -> None:
        client = grpcclient.InferenceServerClient(url)
        try:
            gen = generate(client, PROMPT, 8, model=model)
            assert gen.error is None, gen.error
        finally:
            client.close()

    def cancelled(_: int) -> None:
        grpc_cancel(url, PROMPT, 200, model=model, within_s=0.2)

    out: dict = {"model": model, "requests": requests}
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            for name, call in (("answered", answered), ("cancelled", cancelled)):
                list(pool.map(call, range(200)))  # warm-up: allocator pools, threads
                wait_idle(server, 120)
                rss_before, started = _rss(server), time.monotonic()
                list(pool.map(call, range(requests)))
                wait_idle(server, 120)
                time.sleep(1.0)
                out[name] = {"seconds": round(time.monotonic() - started, 1),
                             "rss_mib_before": round(rss_before / 2**20, 1), "rss_mib_after": round(_rss(server) / 2**20, 1),
                             "growth_bytes_per_request": round((_rss(server) - rss_before) / requests, 1)}
    finally:
        out["triton_inflight_at_stop"] = inflight_at_stop(server)
    return out


def probe_overhead(work: Path, requests: int, max_tokens: int = 32) -> dict:
    """One client, alternating models, so both see the same machine load."""
    server = start(work)
    samples: dict[str, dict[str, list[float]]] = {m: {"ttft_ms": [], "latency_ms": []} for m in MODELS}
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for i in range(requests + 4):
            for model in MODELS:
                gen = generate(client, PROMPT, max_tokens, model=model)
                assert gen.error is None and gen.tokens == max_tokens, gen.error
                if i >= 4:  # warm-up
                    samples[model]["ttft_ms"].append(gen.ttft_s * 1000)
                    samples[model]["latency_ms"].append(gen.latency_s * 1000)
        client.close()
    finally:
        server.stop(timeout_s=5)
    return {model: {name: {"mean": round(statistics.mean(v), 1), "p50": round(statistics.median(v), 1),
                           "p90": round(sorted(v)[int(0.9 * (len(v) - 1))], 1)} for name, v in s.items()}
            | {"requests": requests, "max_tokens": max_tokens} for model, s in samples.items()}


def run(out: Path, clients: int, max_tokens: int, memory_requests: int, overhead_requests: int,
        models: tuple[str, ...] = MODELS) -> dict:
    work = BUILD_DIR / "abandon"
    report: dict = {"overrides": OVERRIDES, "leaving": [], "memory": [], "overhead": {}}
    for model in models if clients else ():
        for kind in LEAVE_KINDS:
            report["leaving"].append(probe_leaving(work / f"{model}_{kind}", model, kind, clients, max_tokens))
            print(json.dumps(report["leaving"][-1]), flush=True)
    if memory_requests:
        for model in models:
            report["memory"].append(probe_memory(work / f"{model}_memory", model, memory_requests))
            print(json.dumps(report["memory"][-1]), flush=True)
    if overhead_requests:
        report["overhead"] = probe_overhead(work / "overhead", overhead_requests)
    out.mkdir(parents=True, exist_ok=True)
    (out / "abandon.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "abandon.md").write_text(markdown(report))
    return report


def markdown(r: dict) -> str:
    lines = ["# Abandoned requests: `ltr_bls` vs `ensemble` (issue 13)", "",
             "Real tritonserver per row, timing stand-in LLM, answers run to max_tokens. Reproduce: "
             "`python -m benchmarks.abandon`.", "",
             "| entry | clients leave by | clients | scheduler idle after the last left (s) | stopped in the scheduler "
             "| ran to the end | Triton in flight at stop |", "|---|---|---|---|---|---|---|"]
    for row in r["leaving"]:
        lines.append(f"| {row['model']} | {row['kind']} | {row['clients']} | {row['scheduler_idle_after_s']} | "
                     f"{row['stopped_in_scheduler']} | {row['ran_to_the_end']} | {row['phantom']} "
                     f"{row['triton_inflight_at_stop'] or ''} |")
    if r["memory"]:
        lines += ["", "## tritonserver RSS growth (gRPC streams, 8 concurrent, after 200 warm-up requests)", "",
                  "| entry | requests | answered: bytes/request | cancelled: bytes/request | Triton in flight at stop |",
                  "|---|---|---|---|---|"]
        for row in r["memory"]:
            lines.append(f"| {row['model']} | {row['requests']} | {row['answered']['growth_bytes_per_request']} | "
                         f"{row['cancelled']['growth_bytes_per_request']} | {row['triton_inflight_at_stop'] or 0} |")
    if r["overhead"]:
        lines += ["", "## Overhead at one client (gRPC stream)", "",
                  "| entry | requests | max_tokens | TTFT mean / p50 / p90 (ms) | latency mean / p50 / p90 (ms) |",
                  "|---|---|---|---|---|"]
        for model, row in r["overhead"].items():
            t, l = row["ttft_ms"], row["latency_ms"]
            lines.append(f"| {model} | {row['requests']} | {row['max_tokens']} | {t['mean']} / {t['p50']} / {t['p90']} | "
                         f"{l['mean']} / {l['p50']} / {l['p90']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="0: skip the leaving clients")
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--memory-requests", type=int, default=1000, help="0: skip the memory probe")
    parser.add_argument("--overhead-requests", type=int, default=40, help="0: skip the overhead probe")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    print(markdown(run(Path(args.out), args.clients, args.max_tokens, args.memory_requests, args.overhead_requests,
                       tuple(args.models))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
