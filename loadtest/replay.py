"""Open-loop replay of a workload against an entry point (`ltr_bls` by default) over one gRPC stream, timing every token.

One bidirectional stream carries all requests (tritonclient multiplexes them by request id), so the
client costs little CPU and sends each request at its trace arrival time whether or not earlier ones
have finished (open loop). Timestamps are taken in the stream callback with `time.perf_counter()`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from loadtest.grpc_stream import DEFAULT_MODEL
from loadtest.prompts import DEFAULT_PROMPT_FORMAT
from loadtest.workload_requests import grpc_inputs
from workloads.metrics import RequestTimes
from workloads.traces import TraceRequest


@dataclass
class StreamTiming:
    """Client-side timeline of one streamed request (seconds on the replay clock)."""

    sent: float = float("nan")
    chunk_times: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    done: float = float("nan")
    error: str | None = None

    @property
    def tokens(self) -> int:
        return sum(self.chunk_tokens)

    @property
    def token_times(self) -> list[float]:
        return [t for t, n in zip(self.chunk_times, self.chunk_tokens) if n > 0]

    @property
    def ttft(self) -> float:
        tt = self.token_times
        return tt[0] - self.sent if tt else float("nan")

    @property
    def latency(self) -> float:
        tt = self.token_times
        return tt[-1] - self.sent if tt else float("nan")

    @property
    def tpot(self) -> float:
        tt = self.token_times
        return (tt[-1] - tt[0]) / (self.tokens - 1) if self.tokens > 1 else float("nan")

    @property
    def max_gap(self) -> float:
        tt = self.token_times
        return float(np.max(np.diff(tt))) if len(tt) > 1 else 0.0


def to_request_times(timings: Sequence[StreamTiming], arrivals: Sequence[float] | None = None) -> RequestTimes:
    """Successful requests as `RequestTimes` (arrival = when the client sent it)."""
    ok = [t for t in timings if t.error is None and t.tokens > 0]
    return RequestTimes(
        arrival=np.array([t.sent for t in ok]),
        first_token=np.array([t.token_times[0] for t in ok]),
        finish=np.array([t.token_times[-1] for t in ok]),
        output_tokens=np.array([t.tokens for t in ok]),
        max_gap=np.array([t.max_gap for t in ok]),
    )


def replay_grpc(
    url: str,
    reqs: Sequence[TraceRequest],
    model: str = DEFAULT_MODEL,
    timeout_s: float = 600.0,
    progress: bool = True,
    prompt_format: str = DEFAULT_PROMPT_FORMAT,
) -> list[StreamTiming]:
    """Send `reqs` at their arrival times (open loop) and wait until all finish or `timeout_s`;
    dataset prompts chat-templated unless `prompt_format` is "raw" (loadtest.prompts)."""
    timings = [StreamTiming() for _ in reqs]
    index = {f"q{i}": i for i in range(len(reqs))}
    pending = set(index)
    lock = threading.Lock()
    all_done = threading.Event()
    t0 = time.perf_counter()

    errors: list[str] = []  # stream errors do not carry the request id in tritonclient

    def callback(result: grpcclient.InferResult | None, error: InferenceServerException | None) -> None:
        now = time.perf_counter() - t0
        with lock:
            if error is not None:
                errors.append(error.message() if hasattr(error, "message") else str(error))
            else:
                resp = result.get_response()
                i = index.get(resp.id)
                if i is None:
                    return
                counts = result.as_numpy("output_token_count")
                n = int(counts.reshape(-1)[0]) if counts is not None else 0
                if n:
                    timings[i].chunk_times.append(now)
                    timings[i].chunk_tokens.append(n)
                if resp.parameters["triton_final_response"].bool_param:
                    timings[i].done = now
                    pending.discard(resp.id)
            if len(pending) <= len(errors):
                all_done.set()

    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=callback)
    from tqdm import tqdm

    try:
        order = sorted(range(len(reqs)), key=lambda i: reqs[i].arrival_s)
        for i in tqdm(order, disable=not progress, desc="sending", unit="req", mininterval=5.0):
            r = reqs[i]
            delay = r.arrival_s - (time.perf_counter() - t0)
            if delay > 0:
                time.sleep(delay)
            # the true length goes only to the experiments-only input the oracle policy reads
            inputs = grpc_inputs(r, prompt_format, oracle=True)
            timings[i].sent = time.perf_counter() - t0
            client.async_stream_infer(
                model, inputs,
                request_id=f"q{i}", enable_empty_final_response=True,
            )
        all_done.wait(timeout_s)
        with lock:
            reason = "; ".join(sorted(set(errors)))[:500] or "timed out"
            for rid in pending:
                timings[index[rid]].error = reason
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()
    return timings
