"""The replica benchmark's pieces: scaled workloads, the HPA rule, SLO attainment, gain ratios."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.replica_sweep import (
    HPA_FILE,
    MIN_REPLICA_RUNS,
    HpaRule,
    gain_entries,
    pooled,
    repetitions,
    slo_attainment,
    trace_windows,
    warp_trace,
)
from workloads.goodput import Slo
from workloads.metrics import RequestTimes
from workloads.traces import GENERIC_MAX_TOKENS, TraceRequest


def trace(n: int, gap: float = 1.0) -> list[TraceRequest]:
    return [TraceRequest(f"t{i}", i * gap, 10 + i, 5 + i) for i in range(n)]


def test_windows_give_every_replica_the_same_number_of_requests_over_the_duration() -> None:
    full = trace(10, gap=2.0)  # 0.5 req/s
    out = trace_windows(full, n_windows=3, per_window=4, duration_s=8.0)
    assert len(out) == 12
    assert all(0.0 <= r.arrival_s < 8.0 for r in out)
    assert all(r.max_tokens == GENERIC_MAX_TOKENS for r in out)
    # window 0 is requests 0-3 at gaps of 2 s stretched to 8 s: arrivals 0, 2, 4, 6 (here 4 req / 8 s)
    assert sorted(r.arrival_s for r in out if r.request_id.endswith("@0")) == pytest.approx([0, 2, 4, 6])
    # window 2 runs past the end of the trace and wraps around to its start
    assert [r.request_id for r in out if r.request_id.endswith("@2")] == ["t8@2", "t9@2", "t0@2", "t1@2"]
    assert [r.arrival_s for r in out] == sorted(r.arrival_s for r in out)


def test_small_clusters_cover_the_same_windows_as_larger_ones() -> None:
    full = trace(100)
    one = [trace_windows(full, 1, 5, 10.0, first_window=k) for k in range(4)]
    four = trace_windows(full, 4, 5, 10.0)
    assert sorted(r.request_id for rep in one for r in rep) == sorted(r.request_id for r in four)
    assert [repetitions(n) for n in (1, 4, 16, 64)] == [MIN_REPLICA_RUNS, MIN_REPLICA_RUNS // 4, 1, 1]


def test_pooled_times_keep_every_request() -> None:
    def times(n: int, start: float) -> RequestTimes:
        return RequestTimes(np.zeros(n), np.full(n, start), np.full(n, start + 1), np.ones(n, dtype=int), np.zeros(n))

    both = pooled([times(2, 1.0), times(3, 5.0)])
    assert both.ttft.tolist() == [1.0, 1.0, 5.0, 5.0, 5.0]
    assert len(both.output_tokens) == 5


def test_windows_keep_a_window_s_own_arrival_pattern() -> None:
    full = [TraceRequest(f"t{i}", t, 1, 1) for i, t in enumerate([0.0, 0.1, 0.2, 5.0, 10.0, 10.1])]
    out = trace_windows(full, n_windows=1, per_window=3, duration_s=10.0)
    # requests 0-2 span 0 .. 5 s (the next window's start): a burst at the start stays a burst
    assert [r.arrival_s for r in out] == pytest.approx([0.0, 0.2, 0.4])


def test_warp_follows_the_phase_rates() -> None:
    full = trace(1000, gap=1.0)  # 1 req/s
    out = warp_trace(full, [(100.0, 2.0), (50.0, 6.0), (100.0, 1.0)])
    t = np.array([r.arrival_s for r in out])
    assert np.sum(t < 100) == pytest.approx(200, abs=1)
    assert np.sum((t >= 100) & (t < 150)) == pytest.approx(300, abs=1)
    assert np.sum(t >= 150) == pytest.approx(100, abs=1)
    assert t.max() < 250


def test_hpa_rule_is_read_from_the_shipped_manifest() -> None:
    rule = HpaRule.load(HPA_FILE)
    assert [m for m, _ in rule.metrics] == ["ltr_scheduler_waiting_requests", "ltr_scheduler_inflight_requests",
                                            "ltr_scheduler_predicted_backlog_tokens"]
    assert all(t > 0 for _, t in rule.metrics) and 1 <= rule.min_replicas <= rule.max_replicas


def test_hpa_desired_replicas() -> None:
    rule = HpaRule((("waiting", 16.0), ("inflight", 56.0)), min_replicas=2, max_replicas=8, scale_down_window_s=60)

    def asks(waiting: float, inflight: float = 0.0) -> int:
        return rule.desired(4, {"waiting": waiting, "inflight": inflight})

    assert asks(32.0) == 8  # ceil(4 * 32 / 16)
    assert rule.desired(4, {"waiting": 32.0}) == 8  # a metric not supplied is left out
    assert asks(20.0) == 5  # ceil(4 * 1.25)
    assert asks(17.0) == 4  # within the 10% tolerance
    assert asks(100.0) == 8  # maxReplicas
    assert asks(0.0) == 2  # an empty queue and idle engines ask for minReplicas
    assert asks(0.0, 56.0) == 4, "busy engines hold the replicas although nothing waits"
    assert asks(0.0, 70.0) == 5  # the larger ask wins: ceil(4 * 70 / 56)
    history = [(0.0, 8), (30.0, 6), (60.0, 2), (90.0, 2)]
    assert rule.stabilized(history[:3], 60.0) == 6  # the 8 at t=0 has left the 60 s window
    assert rule.stabilized(history, 90.0) == 2


def test_slo_attainment_counts_requests_within_both_bounds() -> None:
    times = RequestTimes(
        arrival=np.zeros(4), first_token=np.array([1.0, 3.0, 1.0, 0.5]), finish=np.array([5.0, 5.0, 50.0, 1.0]),
        output_tokens=np.array([100, 100, 100, 10]), max_gap=np.zeros(4),
    )
    # request 1: TTFT too long; request 2: 0.5 s/token too slow
    assert slo_attainment(times, Slo(p90_ttft_s=2.0, p90_latency_per_token_s=0.1)) == pytest.approx(0.5)


def test_gain_entries_are_ratios_of_s_per_token() -> None:
    def row(policy: str, spt: float) -> dict:
        return {"entry": "run", "workload": "w", "replicas": 4, "router": "score", "policy": policy,
                "mean_latency_per_token_s": spt, "p90_latency_s": 1.0, "slo_attainment": 1.0,
                "goodput_rps_per_replica": 1.0, "chat_slo_met": True}

    (g,) = gain_entries([row("fcfs", 0.06), row("ltr", 0.02), row("oracle", 0.016)])
    assert g["fcfs_over_ltr"] == pytest.approx(3.0)
    assert g["ltr_over_oracle"] == pytest.approx(1.25)
    assert gain_entries([row("fcfs", 0.06), row("ltr", 0.02)]) == []  # no oracle run: no entry
