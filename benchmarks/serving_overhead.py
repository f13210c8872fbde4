"""Issue-2 figures on a real tritonserver: what the ensemble (preprocessing, predictor, scheduler,
postprocessing) adds to a short request over calling the LLM model directly, and what the
OpenAI-compatible server (issue 12: HTTP + SSE + chat template in front of the ensemble) adds over
calling the ensemble directly, and what the door (issue 29: door/, what clients reach) adds over
calling Triton directly (`ltr_bls` and `ensemble` over gRPC, `ltr_bls` over HTTP generate_stream),
at 1 and 32 concurrent clients; server start-up time and resident memory; the scheduler's cost per
operation. The paths take turns, in rounds, so that a change in the host's load falls on all of them
alike; the host's load average is recorded beside the figures.

    python -m benchmarks.serving_overhead        # writes results/overhead.json and .md

The LLM is the `timing` stand-in, so both paths spend the same modelled GPU time; the difference
is the serving overhead. `max_inflight` is raised to 64 so the scheduler never queues here:
this measures overhead, not scheduling.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
import tritonclient.grpc as grpcclient

from benchmarks import scheduler_cost
from deploy.door import Door
from deploy.openai_frontend import OpenAIFrontend
from deploy.repository import render_repository
from deploy.triton import TritonServer
from loadtest.grpc_stream import ensemble_inputs, stream_infer, tensor
from openai_server.settings import DEFAULT_MODEL_NAME as OPENAI_MODEL
from repo_paths import RESULTS_DIR
from runtime.llama3_tokenizer import load_tokenizer

PROMPT = "What is the capital of France?"
ROUNDS = 4  # each path's requests at one concurrency, split in turns with the other paths
OVERRIDES = {
    "ltr_scheduler": {"max_inflight": "64"},
    # length_table "": every answer has exactly max_tokens tokens on every path (the chat template
    # changes the prompt, and natural lengths are looked up by prompt).
    "tensorrt_llm": {"mode": "timing", "max_batch_slots": "64", "length_table": ""},
}


def direct_inputs(max_tokens: int) -> list:
    tokenizer = load_tokenizer()
    ids = np.array([[tokenizer.bos_id] + tokenizer.encode(PROMPT)], dtype=np.int32)
    return [
        tensor("input_ids", ids),
        tensor("input_lengths", np.array([[ids.shape[1]]], dtype=np.int32)),
        tensor("request_output_len", np.array([[max_tokens]], dtype=np.int32)),
        tensor("streaming", np.array([[True]])),
    ]


def timed_request(url: str, model: str, inputs: list) -> tuple[float, float]:
    """(time to first response, time to the final response) of one streamed request."""
    client = grpcclient.InferenceServerClient(url)
    try:
        start = time.perf_counter()
        first = None
        for result in stream_infer(client, model, inputs):
            if isinstance(result, str):
                raise RuntimeError(result)
            first = first or time.perf_counter() - start
        return first, time.perf_counter() - start
    finally:
        client.close()


def timed_openai_request(port: int, max_tokens: int) -> tuple[float, float]:
    """(time to the first content chunk, time to `data: [DONE]`) of one streamed chat completion,
    on a new connection as the gRPC paths use a new client."""
    body = json.dumps({"model": OPENAI_MODEL, "messages": [{"role": "user", "content": PROMPT}],
                       "max_tokens": max_tokens, "stream": True}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        start = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {resp.read()[:300]!r}")
        first = None
        for line in resp:
            if line.startswith(b"data: [DONE]"):
                return first, time.perf_counter() - start
            if first is None and line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - start
        raise RuntimeError("stream ended without [DONE]")
    finally:
        conn.close()


def timed_http_stream(http_url: str, model: str, max_tokens: int) -> tuple[float, float]:
    """(time to the first SSE event, time to the end of the stream) of one HTTP generate_stream."""
    host, port = http_url.rsplit(":", 1)
    body = json.dumps({"text_input": PROMPT, "max_tokens": max_tokens, "stream": True}).encode()
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    try:
        start = time.perf_counter()
        conn.request("POST", f"/v2/models/{model}/generate_stream", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {resp.read()[:300]!r}")
        first = None
        for line in resp:
            if first is None and line.startswith(b"data: "):
                first = time.perf_counter() - start
        return first, time.perf_counter() - start
    finally:
        conn.close()


def latencies(request: Callable[[], tuple[float, float]], clients: int, per_client: int) -> np.ndarray:
    """[requests, 2] array of (TTFT, latency) in seconds, `clients` concurrent clients."""
    def client_loop(_: int) -> list[tuple[float, float]]:
        return [request() for _ in range(per_client)]

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return np.array([t for chunk in pool.map(client_loop, range(clients)) for t in chunk])


def model_time_breakdown(url: str) -> dict[str, dict[str, float]]:
    """Mean queue and compute time per execution of each ensemble step (Triton's statistics),
    to show where the ensemble's added time goes. Decoupled models report only their execute
    call, not the streaming that follows, so the scheduler and the LLM are left out."""
    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics(as_json=True)["model_stats"]
    client.close()
    out = {}
    for model in stats:
        if model["name"] not in ("preprocessing", "length_predictor", "postprocessing"):
            continue
        inf = model["inference_stats"]
        executions = int(model.get("execution_count", 0)) or 1
        count = int(inf["success"].get("count", 0)) or 1
        out[model["name"]] = {
            "requests": count,
            "executions": executions,
            "queue_ms_per_request": round(int(inf["queue"].get("ns", 0)) / count / 1e6, 2),
            "compute_ms_per_execution": round(int(inf["compute_infer"].get("ns", 0)) / executions / 1e6, 2),
        }
    return out


def resident_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64, help="requests per path and concurrency level")
    parser.add_argument("--out", default=str(RESULTS_DIR / "overhead.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        repo = render_repository(Path(tmp) / "repo", OVERRIDES)
        server = TritonServer(repo, Path(tmp))
        t0 = time.perf_counter()
        server.start()
        startup_s = time.perf_counter() - t0
        try:
            idle_mb = resident_mb(server.process.pid)
            frontend = OpenAIFrontend(server.grpc_url, Path(tmp)).start()
            door = Door(server, Path(tmp)).start()
            ensemble, direct = ensemble_inputs(PROMPT, args.max_tokens), direct_inputs(args.max_tokens)
            paths: dict[str, Callable[[], tuple[float, float]]] = {
                "ensemble": lambda: timed_request(server.grpc_url, "ensemble", ensemble),
                "direct_llm": lambda: timed_request(server.grpc_url, "tensorrt_llm", direct),
                "openai": lambda: timed_openai_request(frontend.port, args.max_tokens),
                "ltr_bls": lambda: timed_request(server.grpc_url, "ltr_bls", ensemble),
                "ltr_bls_door": lambda: timed_request(door.grpc_url, "ltr_bls", ensemble),
                "ensemble_door": lambda: timed_request(door.grpc_url, "ensemble", ensemble),
                "ltr_bls_http": lambda: timed_http_stream(server.http_url, "ltr_bls", args.max_tokens),
                "ltr_bls_http_door": lambda: timed_http_stream(door.http_url, "ltr_bls", args.max_tokens),
            }
            for request in paths.values():  # warm-up
                latencies(request, 4, 4)
            rows = []
            load_before = os.getloadavg()
            for clients in (1, 32):
                per_client = max(1, args.requests // clients)
                rounds = min(ROUNDS, per_client)
                samples: dict[str, list[np.ndarray]] = {name: [] for name in paths}
                for _ in range(rounds):  # the paths take turns: the host's load falls on all alike
                    for name, request in paths.items():
                        samples[name].append(latencies(request, clients, per_client // rounds))
                for name in paths:
                    ttft, lat = (np.concatenate(samples[name]) * 1000).T
                    rows.append({
                        "path": name, "clients": clients, "requests": int(lat.size),
                        "p50_ms": round(float(np.percentile(lat, 50)), 2),
                        "p99_ms": round(float(np.percentile(lat, 99)), 2),
                        "mean_ms": round(float(lat.mean()), 2),
                        "ttft_p50_ms": round(float(np.percentile(ttft, 50)), 2),
                        "ttft_p99_ms": round(float(np.percentile(ttft, 99)), 2),
                    })
                    print(rows[-1])
            load_after = os.getloadavg()
            loaded_mb = resident_mb(server.process.pid)
            frontend_mb = resident_mb(frontend.process.pid)
            door_mb = resident_mb(door.process.pid)
            per_model = model_time_breakdown(server.grpc_url)
        finally:
            if "door" in locals():
                door.stop()
            if "frontend" in locals():
                frontend.stop()
            server.stop()

    result = {
        "max_tokens": args.max_tokens,
        "startup_s": round(startup_s, 2),
        "resident_mb_idle": round(idle_mb, 1),
        "resident_mb_after_load": round(loaded_mb, 1),
        "openai_server_resident_mb_after_load": round(frontend_mb, 1),
        "door_resident_mb_after_load": round(door_mb, 1),
        "host": {"cpus": os.cpu_count(), "load_avg_1m_before": round(load_before[0], 2),
                 "load_avg_1m_after": round(load_after[0], 2)},
        "latency": rows,
        "ensemble_steps": per_model,
        "scheduler_cost": scheduler_cost.main([]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))
    return result


def to_markdown(result: dict) -> str:
    by = {(r["path"], r["clients"]): r for r in result["latency"]}
    lines = [
        f"Short request ({result['max_tokens']} output tokens), `timing` stand-in LLM; gRPC streaming "
        "(direct_llm, ensemble, ltr_bls; `_door`: the same through the door), HTTP generate_stream (ltr_bls_http, "
        "and through the door) and the OpenAI server's streamed chat completion over HTTP (openai).",
        "",
        "| clients | path | latency p50 / p99 (ms) | TTFT p50 / p99 (ms) |",
        "|---:|---|---:|---:|",
    ]
    for clients in (1, 32):
        for name in ("direct_llm", "ensemble", "openai", "ltr_bls", "ltr_bls_door", "ensemble_door",
                     "ltr_bls_http", "ltr_bls_http_door"):
            if (name, clients) not in by:
                continue
            r = by[(name, clients)]
            lines.append(
                f"| {clients} | {name} | {r['p50_ms']} / {r['p99_ms']} | {r['ttft_p50_ms']} / {r['ttft_p99_ms']} |"
            )
        for upper, lower in (("ensemble", "direct_llm"), ("openai", "ensemble"), ("ltr_bls_door", "ltr_bls"),
                             ("ensemble_door", "ensemble"), ("ltr_bls_http_door", "ltr_bls_http")):
            if (upper, clients) not in by or (lower, clients) not in by:
                continue
            u, d = by[(upper, clients)], by[(lower, clients)]
            lines.append(
                f"| {clients} | {upper} − {lower} | {u['p50_ms'] - d['p50_ms']:+.1f} / {u['p99_ms'] - d['p99_ms']:+.1f} | "
                f"{u['ttft_p50_ms'] - d['ttft_p50_ms']:+.1f} / {u['ttft_p99_ms'] - d['ttft_p99_ms']:+.1f} |"
            )
    lines += [
        "",
        "Where the time goes, whole run (Triton statistics; per request queue time, per execution compute time):",
        "",
        "| step | requests | executions | queue ms / request | compute ms / execution |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, st in result["ensemble_steps"].items():
        lines.append(
            f"| {name} | {st['requests']} | {st['executions']} | {st['queue_ms_per_request']} | {st['compute_ms_per_execution']} |"
        )
    lines += [
        "",
        f"Start-up to ready: {result['startup_s']} s; resident memory of tritonserver and its stubs: "
        f"{result['resident_mb_idle']} MB idle, {result['resident_mb_after_load']} MB after the load; "
        f"the OpenAI server: {result['openai_server_resident_mb_after_load']} MB after the load"
        + (f"; the door: {result['door_resident_mb_after_load']} MB." if "door_resident_mb_after_load" in result else "."),
        "",
        (f"Host: {result['host']['cpus']} CPUs, load average (1 min) {result['host']['load_avg_1m_before']} before "
         f"and {result['host']['load_avg_1m_after']} after the latency runs (other work was running beside it "
         "when that is above the benchmark's own ~2)." if "host" in result else ""),
        "",
        "Scheduler: " + ", ".join(
            f"{r['policy']} {r['us_per_enqueue_and_admission']} us" for r in result["scheduler_cost"]
        ) + f" per enqueue + admission with {result['scheduler_cost'][0]['waiting']} waiting.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
