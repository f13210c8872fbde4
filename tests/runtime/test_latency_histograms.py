"""The scheduler histograms' bucket bounds: valid for Triton and Prometheus, and the SLO's TTFT
target a bound, so SLO attainment is read off one bucket exactly."""

from __future__ import annotations

from runtime.latency_histograms import BUCKETS, QUEUE_WAIT, TTFT, TTFT_TARGET_S, bucket_problems
from workloads.goodput import CHAT_SLO


def test_the_target_is_the_chat_slos_and_a_bound_of_both_histograms():
    assert TTFT_TARGET_S == CHAT_SLO.p90_ttft_s
    for phase in (QUEUE_WAIT, TTFT):
        assert bucket_problems(BUCKETS[phase], must_include=(TTFT_TARGET_S,)) == []


def test_bad_bounds_are_named():
    assert bucket_problems(()) == ["no buckets"]
    assert "bounds must increase strictly" in bucket_problems((1.0, 1.0))
    assert "bounds must be positive and finite" in bucket_problems((0.0, float("inf")))
    assert bucket_problems((1.0, 5.0), must_include=(2.0,)) == ["2 is not a bound"]
