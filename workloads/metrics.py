"""Per-request timings and the aggregate metrics both instruments report (same definitions).

* latency: finish - arrival; per-token latency: latency / output tokens (the paper's s/token);
* TTFT: first token - arrival; TPOT: (finish - first token) / (output tokens - 1);
* max_waiting_time: the paper's starvation metric max(TTFT, max inter-token gap), per request;
* throughput: output tokens (and requests) per second from the first arrival to the last finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RequestTimes:
    """Timings of finished requests, in seconds on the instrument's clock (arrays of equal length)."""

    arrival: np.ndarray
    first_token: np.ndarray
    finish: np.ndarray
    output_tokens: np.ndarray
    max_gap: np.ndarray  # largest interval between consecutive tokens (0 for one-token outputs)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def latency(self) -> np.ndarray:
        return self.finish - self.arrival

    @property
    def ttft(self) -> np.ndarray:
        return self.first_token - self.arrival

    @property
    def tpot(self) -> np.ndarray:
        n = self.output_tokens
        return np.where(n > 1, (self.finish - self.first_token) / np.maximum(n - 1, 1), 0.0)

    @property
    def max_waiting_time(self) -> np.ndarray:
        return np.maximum(self.ttft, self.max_gap)


def summarize(times: RequestTimes) -> dict[str, float]:
    """The metric columns of a results row (`results/sim.json`, `results/serve.json`)."""
    lat = times.latency
    n = len(lat)
    if n == 0:
        return {"n_requests": 0}
    span = float(times.finish.max() - times.arrival.min())
    tokens = float(times.output_tokens.sum())
    return {
        "n_requests": n,
        "mean_latency_s": float(lat.mean()),
        "p50_latency_s": float(np.percentile(lat, 50)),
        "p90_latency_s": float(np.percentile(lat, 90)),
        "p99_latency_s": float(np.percentile(lat, 99)),
        "mean_latency_per_token_s": float((lat / times.output_tokens).mean()),
        "p90_latency_per_token_s": float(np.percentile(lat / times.output_tokens, 90)),
        "mean_ttft_s": float(times.ttft.mean()),
        "p90_ttft_s": float(np.percentile(times.ttft, 90)),
        "p99_ttft_s": float(np.percentile(times.ttft, 99)),
        "mean_tpot_s": float(times.tpot.mean()),
        "max_waiting_time_s": float(times.max_waiting_time.mean()),
        "p99_max_waiting_time_s": float(np.percentile(times.max_waiting_time, 99)),
        "throughput_tok_s": tokens / span if span > 0 else float("nan"),
        "throughput_req_s": n / span if span > 0 else float("nan"),
        "mean_output_tokens": tokens / n,
    }
