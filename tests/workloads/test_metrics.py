"""The metric definitions both instruments (simulator and served benchmark) report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workloads.metrics import RequestTimes, summarize


def test_summarize_definitions() -> None:
    t = RequestTimes(arrival=np.array([0.0, 1.0]), first_token=np.array([2.0, 1.5]),
                     finish=np.array([4.0, 2.5]), output_tokens=np.array([5, 1]),
                     max_gap=np.array([1.0, 0.0]))
    s = summarize(t)
    assert s["mean_latency_s"] == pytest.approx((4.0 + 1.5) / 2)
    assert s["mean_latency_per_token_s"] == pytest.approx((4.0 / 5 + 1.5) / 2)
    assert s["mean_ttft_s"] == pytest.approx((2.0 + 0.5) / 2)
    assert s["mean_tpot_s"] == pytest.approx((2.0 / 4 + 0.0) / 2)
    assert s["max_waiting_time_s"] == pytest.approx((2.0 + 0.5) / 2)
    assert s["throughput_tok_s"] == pytest.approx(6 / 4.0)


def test_summarize_writes_every_column_by_name() -> None:
    # ten requests: latencies 1..10 s, so that the percentiles 50, 90, 99 differ from 51, 91, 100
    k = np.arange(1.0, 11.0)
    t = RequestTimes(arrival=np.full(10, 2.0), first_token=2.0 + k / 2, finish=2.0 + k,
                     output_tokens=np.full(10, 2), max_gap=np.zeros(10))
    s = summarize(t)
    assert s == pytest.approx({
        "n_requests": 10,
        "mean_latency_s": 5.5,
        "p50_latency_s": float(np.percentile(k, 50)),
        "p90_latency_s": float(np.percentile(k, 90)),
        "p99_latency_s": float(np.percentile(k, 99)),
        "mean_latency_per_token_s": 2.75,
        "p90_latency_per_token_s": float(np.percentile(k / 2, 90)),
        "mean_ttft_s": 2.75,
        "p90_ttft_s": float(np.percentile(k / 2, 90)),
        "p99_ttft_s": float(np.percentile(k / 2, 99)),
        "mean_tpot_s": 2.75,
        "max_waiting_time_s": 2.75,
        "p99_max_waiting_time_s": float(np.percentile(k / 2, 99)),
        "throughput_tok_s": 20 / 10.0,  # from the first arrival (2 s) to the last finish (12 s)
        "throughput_req_s": 10 / 10.0,
        "mean_output_tokens": 2.0,
    })
    assert float(np.percentile(k, 50)) != float(np.percentile(k, 51))  # the test can tell them apart
    assert float(np.percentile(k, 99)) != float(np.percentile(k, 100))


def test_no_requests_and_a_zero_span_have_no_rates() -> None:
    empty = RequestTimes(*(np.array([]) for _ in range(5)))
    assert summarize(empty) == {"n_requests": 0}
    one = RequestTimes(arrival=np.array([3.0]), first_token=np.array([3.0]), finish=np.array([3.0]),
                       output_tokens=np.array([1]), max_gap=np.array([0.0]))
    s = summarize(one)
    assert s["n_requests"] == 1 and math.isnan(s["throughput_tok_s"]) and math.isnan(s["throughput_req_s"])
    short = RequestTimes(arrival=np.array([3.0]), first_token=np.array([3.1]), finish=np.array([3.5]),
                         output_tokens=np.array([4]), max_gap=np.array([0.1]))
    assert summarize(short)["throughput_req_s"] == pytest.approx(2.0)  # a span under one second still counts
    assert summarize(short)["throughput_tok_s"] == pytest.approx(8.0)
