"""Client-side timing of streamed requests and the report helpers (no server)."""

from __future__ import annotations

import math

import pytest

from loadtest.replay import StreamTiming, synthetic_prompt, to_request_times
from workloads.metrics import summarize
from workloads.report import markdown_table, target_lines


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


def test_synthetic_prompt_length() -> None:
    assert synthetic_prompt(50).count(" the") == 47


def test_targets_and_table() -> None:
    def row(policy: str, s_tok: float, lat: float, mwt: float, **kw: object) -> dict:
        return {"workload": "w", "rate": 64.0, "policy": policy, "mean_latency_per_token_s": s_tok,
                "mean_latency_s": lat, "max_waiting_time_s": mwt, "p99_max_waiting_time_s": mwt * 2, **kw}

    rows = [row("fcfs", 0.9, 150, 140), row("ltr_nosp", 0.3, 110, 100), row("oracle", 0.2, 100, 90),
            row("ltr", 0.33, 112, 105, starvation_threshold=200)]
    lines = "\n".join(target_lines(rows, "w", 64.0))
    assert "FCFS/LTR s/token = 3.00x" in lines and "LTR/oracle = 1.50x" in lines
    assert "keeps 95% of LTR's s/token gain" in lines
    table = markdown_table([{"rate": 1.0, "policy": "fcfs", "mean_latency_s": float("nan")}])
    assert "| fcfs |" in table and "| - |" in table
