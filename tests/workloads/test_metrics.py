"""The metric definitions both instruments (simulator and served benchmark) report."""

from __future__ import annotations

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
