"""The optional retrain timer (deploy/retrain_timer.py): interval parsing, one cycle's outcomes,
the loop's stop, and `deploy start` refusing a timer without a request log."""

from __future__ import annotations

import json
import threading

import pytest

from deploy import local
from deploy.retrain_timer import parse_interval, run_cycle, run_every


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("6h", 21600), ("1.5h", 5400), ("1d", 86400)])
def test_intervals(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "6 hours", "-1h", "h", "59s", "0.5m"])
def test_bad_intervals_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RETRAIN_EVERY"):
        parse_interval(text)


def test_a_shipped_version_is_swapped_in() -> None:
    swaps = []
    result = run_cycle(lambda: {"shipped": True, "reason": "better", "version_dir": "v/2"},
                       lambda: swaps.append(1) or {"after": ["2"]})
    assert swaps == [1] and result["shipped"] and result["swap"] == {"after": ["2"]}


def test_no_swap_when_the_judge_keeps_the_old_version() -> None:
    swaps = []
    result = run_cycle(lambda: {"shipped": False, "reason": "tau 0.30 < 0.31 + margin"}, lambda: swaps.append(1))
    assert swaps == [] and not result["shipped"] and "swap" not in result and "margin" in result["reason"]


def test_a_failing_cycle_is_reported_not_raised() -> None:
    def broken() -> dict:
        raise FileNotFoundError("no request log at /x")

    result = run_cycle(broken, lambda: pytest.fail("no swap after a failed retrain"))
    assert result["shipped"] is False and "no request log" in result["error"]


def test_cycles_run_on_the_interval_until_stopped(tmp_path) -> None:
    stop, runs = threading.Event(), []

    def cycle() -> dict:
        runs.append(1)
        if len(runs) == 3:
            stop.set()
        return {"shipped": False, "n": len(runs)}

    reports = tmp_path / "reports.jsonl"
    run_every(0.01, cycle, reports, stop)
    assert [json.loads(line)["n"] for line in reports.read_text().splitlines()] == [1, 2, 3]


def test_deploy_refuses_a_timer_without_the_request_log(tmp_path, capsys) -> None:
    assert local.main(["--state-dir", str(tmp_path), "start", "--retrain-every", "6h"]) == 1
    assert "REQUEST_LOG" in capsys.readouterr().err
    assert not (tmp_path / "tritonserver.pid").exists()
