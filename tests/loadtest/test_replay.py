"""Client-side timing of streamed requests and the report helpers (no server)."""

from __future__ import annotations

import math

import pytest

from loadtest.replay import StreamTiming, to_request_times
from workloads.metrics import summarize


def test_stream_timing_hand_computed() -> None:
    t = StreamTiming(sent=1.0, chunk_times=[1.5, 1.7, 2.2, 2.3], chunk_tokens=[1, 1, 0, 2])
    assert t.tokens == 4
    assert t.ttft == pytest.approx(0.5)
    assert t.latency == pytest.approx(1.3)
    assert t.tpot == pytest.approx((2.3 - 1.5) / 3)
    assert t.max_gap == pytest.approx(0.6)  # 1.7 -> 2.3: the empty chunk at 2.2 is no token


def test_failed_requests_are_left_out() -> None:
    ok = StreamTiming(sent=0.0, chunk_times=[1.0, 2.0], chunk_tokens=[1, 1])
    bad = StreamTiming(sent=0.0, error="boom")
    times = to_request_times([ok, bad])
    s = summarize(times)
    assert s["n_requests"] == 1 and s["mean_latency_s"] == pytest.approx(2.0)
    assert math.isnan(bad.ttft)

