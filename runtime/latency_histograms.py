"""The scheduler's latency distributions, free of Triton: which phases of a request are timed and
the bucket bounds of their histograms.

Triton 2.51's python backend publishes native Prometheus histograms (`MetricFamily.HISTOGRAM`, a
metric with `buckets=` and `observe()`; checked on the CPU build's stub and tritonserver), so the
bucketing itself is Triton's; what is chosen here is where the buckets lie. The TTFT target of the
chat SLO (workloads.goodput, 2 s) must be a bucket bound, so that the dashboard's SLO attainment,
`rate(..._bucket{le="2"}) / rate(..._count)`, is exact rather than interpolated.
"""

from __future__ import annotations

from typing import Callable, Literal

Phase = Literal["queue_wait", "ttft"]
QUEUE_WAIT: Phase = "queue_wait"  # arrival at the scheduler -> admission into the LLM (admitted requests)
TTFT: Phase = "ttft"  # arrival at the scheduler -> first generated token

TTFT_TARGET_S = 2.0  # the chat SLO's p90 TTFT (workloads.goodput.CHAT_SLO; tests hold them equal)

# Seconds. Short waits (a free slot) to minutes (an overloaded replica, the queue deadline).
QUEUE_WAIT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                                         60.0, 120.0, 300.0)
TTFT_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
                                   300.0)
BUCKETS: dict[Phase, tuple[float, ...]] = {QUEUE_WAIT: QUEUE_WAIT_BUCKETS, TTFT: TTFT_BUCKETS}

# What the relay calls with each timed phase (ltr_scheduler's model.py: Triton's histogram.observe).
Observe = Callable[[Phase, float], None]


def bucket_problems(bounds: tuple[float, ...], must_include: tuple[float, ...] = ()) -> list[str]:
    """Why `bounds` would make a bad histogram (Triton and Prometheus want them strictly increasing
    and finite; +Inf is added by the exposition); empty when fine."""
    found = []
    if not bounds:
        found.append("no buckets")
    if any(b <= 0 or b != b or b == float("inf") for b in bounds):
        found.append("bounds must be positive and finite")
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        found.append("bounds must increase strictly")
    found += [f"{value:g} is not a bound" for value in must_include if value not in bounds]
    return found
