"""The headline is computed from the committed results, its interval is what it says, and
results/headline.json is what the results give today."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import headline
from repo_paths import RESULTS_DIR


def test_t_interval_of_equal_ratios_is_a_point() -> None:
    iv = headline.t_interval([1.2, 1.2, 1.2])
    assert iv["mean"] == pytest.approx(1.2) and iv["low"] == pytest.approx(1.2) and iv["high"] == pytest.approx(1.2)


def test_t_interval_is_the_geometric_mean_with_students_t() -> None:
    iv = headline.t_interval([1.0, 2.0, 4.0])
    assert iv["mean"] == pytest.approx(2.0)
    half = 4.302652729911275 * math.log(2.0) / math.sqrt(3)  # t(0.975, df 2) x sd of the logs / sqrt(n)
    assert iv["low"] == pytest.approx(2.0 * math.exp(-half)) and iv["high"] == pytest.approx(2.0 * math.exp(half))


def test_queue_depth_is_littles_law() -> None:
    assert headline.queue_depth({"throughput_req_s": 2.0, "mean_ttft_s": 3.5}) == 7.0


def test_the_committed_headline_is_what_the_results_give() -> None:
    committed = json.loads((RESULTS_DIR / "headline.json").read_text())
    assert committed == json.loads(json.dumps(headline.compute())), "rerun `make headline`"


def test_served_figures_use_three_seeds_and_name_their_entry() -> None:
    s = headline.compute()["served"]
    assert len(s["seeds"]) >= 3 and s["entry"] == ["ltr_bls"]
    assert s["ltr"]["s_per_token"]["n_seeds"] == len(s["seeds"])
    assert all(0.85 <= load <= 0.95 for load in s["load"])


def test_simulated_rows_carry_duration_and_queue() -> None:
    for row in headline.compute()["simulated"]:
        assert row["duration_s"] is not None and row["queue_depth_fcfs"]


def test_update_docs_replaces_only_the_block(tmp_path) -> None:  # noqa: ANN001
    h = headline.compute()
    doc = tmp_path / "README.md"
    doc.write_text(f"# Title\n\n{headline.START}\nold figures\n{headline.END}\n\nthe rest\n")
    assert headline.update_docs(h, [doc]) == [doc]
    text = doc.read_text()
    assert headline.block(text) == headline.render(h) and text.endswith("\n\nthe rest\n")
    assert headline.update_docs(h, [doc]) == []  # already current
