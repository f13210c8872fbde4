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


def test_hpa_rule_reads_the_manifests_rate_limits_and_keeps_chosen_metrics() -> None:
    rule = HpaRule.load(HPA_FILE)
    assert rule.scale_up == (2, 60.0) and rule.scale_down == (1, 300.0)
    assert [m for m, _ in rule.only(["ltr_scheduler_predicted_backlog_tokens"]).metrics] == [
        "ltr_scheduler_predicted_backlog_tokens"]
    with pytest.raises(ValueError):
        rule.only(["nothing"])


def test_hpa_scaler_follows_the_metric_within_the_rate_limits_and_the_window() -> None:
    from simulator.replica_sweep import HpaScaler
    from simulator.replicas import GaugeSample

    rule = HpaRule((("ltr_scheduler_predicted_backlog_tokens", 100.0),), min_replicas=1, max_replicas=10, scale_down_window_s=30.0,
                   scale_up=(2, 60.0), scale_down=(1, 60.0))
    scaler = HpaScaler(rule, 2)

    def at(t: float, per_pod: float, pods: int) -> int:
        return scaler(GaugeSample(t, (0,) * pods, (0,) * pods, 0, 0, (per_pod,) * pods, pods))

    assert at(15, 500.0, 2) == 4  # asks for 10, the policy allows 2 more per 60 s
    assert at(30, 500.0, 4) == 4  # no room left in this 60 s
    assert at(90, 500.0, 4) == 6
    assert at(100, 0.0, 6) == 6  # a drop waits for the 30 s window
    assert at(135, 0.0, 6) == 5  # then one replica per 60 s
    assert at(150, 0.0, 5) == 5
    assert scaler.log[0] == (15, 10, 4)


def test_expected_tokens_come_from_a_calibration_that_never_saw_the_prompt() -> None:
    from simulator.replica_sweep import calibrated_expected_tokens
    from workloads.traces import PromptPool

    rng = np.random.default_rng(0)
    n = 400
    lengths = rng.integers(10, 1000, n)
    pool = PromptPool("p", tuple(f"prompt {i}" for i in range(n)), np.full(n, 5), lengths,
                      tuple((int(x),) for x in lengths))
    scores = np.log(lengths) + rng.normal(0, 0.3, n)
    folds = np.arange(n) % 2
    expected = calibrated_expected_tokens(pool, scores, folds, bins=8)
    assert np.corrcoef(expected, lengths)[0, 1] > 0.7  # follows the lengths
    # fold 1's scores on another scale: each fold is calibrated on its own model's scores
    shifted = np.where(folds == 1, scores + 100.0, scores)
    assert np.allclose(calibrated_expected_tokens(pool, shifted, folds, bins=8), expected)


def test_step_requests_follow_the_phases_and_a_mix_step_draws_long_prompts() -> None:
    from simulator.replica_sweep import long_half, step_requests
    from workloads.traces import PromptPool

    n = 100
    lengths = np.arange(1, n + 1) * 10
    pool = PromptPool("p", tuple(f"q{i}" for i in range(n)), np.full(n, 5), lengths, tuple((int(x),) for x in lengths))
    long = long_half(pool)
    assert len(long) == 50 and lengths[long].min() >= np.median(lengths)
    short = long_half(pool, long=False)
    assert sorted([*short, *long]) == list(range(n)) and lengths[short].max() < lengths[long].min()
    reqs = step_requests(pool, [(100.0, 2.0), (50.0, 8.0), (100.0, 2.0)], seed=1, items=[None, long, None])
    t = np.array([r.arrival_s for r in reqs])
    assert np.sum((t >= 100) & (t < 150)) == pytest.approx(400, rel=0.2)
    step = [r for r in reqs if 100 <= r.arrival_s < 150]
    assert all(r.item in set(long.tolist()) and r.output_tokens == lengths[r.item] and r.prompt == pool.prompts[r.item]
               for r in step)
    assert all(r.max_tokens == GENERIC_MAX_TOKENS for r in reqs) and t.max() < 250


def test_only_the_signal_rows_are_replaced_in_a_results_file(tmp_path) -> None:
    import json

    from simulator.replica_sweep import SIGNAL_MARK, replace_signal_rows

    out = tmp_path / "replicas.json"
    out.write_text(json.dumps([{"entry": "run", "x": 1}, {"entry": "signal_step", "old": True}]))
    out.with_suffix(".md").write_text(f"# Many replicas\n\nold tables\n\n{SIGNAL_MARK}\n\nold signal\n")
    row = {"entry": "signal_step", "step": "rate", "workload": "w", "router": "least_waiting", "autoscaling": "fixed",
           "hpa_metrics": {}, "replicas_start": 4, "phases": [{"seconds": 1.0, "load": 0.5}], "capacity_rps": 1.0,
           "n_requests": 10, "n_step_requests": 5, "kendall_tau": 0.5, "expected_median_rel_error": 0.3,
           "scrape_s": 15.0, "start_delay_s": 60.0, "react_s": None, "slo_attainment_step": 0.5,
           "p90_ttft_step_s": 1.0, "mean_latency_per_token_step_s": 0.01, "slo_attainment_all": 0.9,
           "replica_seconds": 60.0, "replicas_peak": 4}
    replace_signal_rows(out, [row], cpu_s=1.0, load="1.0 / 1.0 / 1.0")
    assert [r["entry"] for r in json.loads(out.read_text())] == ["run", "signal_step"]
    md = out.with_suffix(".md").read_text()
    assert "old tables" in md and "old signal" not in md and md.count(SIGNAL_MARK) == 1 and "| least_waiting | fixed |" in md
