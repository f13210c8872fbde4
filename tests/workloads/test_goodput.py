"""Goodput: the highest rate meeting the SLO, with every lower rate meeting it too."""

from __future__ import annotations

from workloads.goodput import CHAT_SLO, Slo, goodput


def row(rate: float, ttft: float, s_tok: float) -> dict:
    return {"rate": rate, "n_requests": 10, "p90_ttft_s": ttft, "p90_latency_per_token_s": s_tok}


def test_goodput_is_the_last_rate_of_an_unbroken_run_of_passes() -> None:
    rows = [row(4, 0.5, 0.05), row(2, 0.3, 0.03), row(6, 2.5, 0.05), row(8, 0.4, 0.04)]
    assert goodput(rows)["rate"] == 4, "8 meets the SLO by luck after 6 failed: it does not count"
    assert goodput([row(1, 3.0, 0.01)]) is None
    assert goodput([row(1, 1.0, 0.2)], Slo(p90_latency_per_token_s=0.25))["rate"] == 1


def test_boundaries_count_as_met_and_empty_rows_do_not() -> None:
    assert CHAT_SLO.met_by(row(1, 2.0, 0.1))
    assert not CHAT_SLO.met_by(row(1, 2.0001, 0.1)) and not CHAT_SLO.met_by(row(1, 2.0, 0.1001))
    assert not CHAT_SLO.met_by({"n_requests": 0})


def test_an_slo_is_written_as_its_two_bounds() -> None:
    assert CHAT_SLO.to_json() == {"p90_ttft_s": 2.0, "p90_latency_per_token_s": 0.1}
    assert Slo(1.5, 0.05).to_json() == {"p90_ttft_s": 1.5, "p90_latency_per_token_s": 0.05}


def test_a_row_without_requests_never_meets_the_slo_and_one_request_can() -> None:
    fast = {"p90_ttft_s": 0.1, "p90_latency_per_token_s": 0.01}
    assert not CHAT_SLO.met_by(fast)  # no n_requests: nothing was measured
    assert not CHAT_SLO.met_by({**fast, "n_requests": 0})
    assert CHAT_SLO.met_by({**fast, "n_requests": 1})
