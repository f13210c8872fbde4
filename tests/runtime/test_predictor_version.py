"""The serving predictor version: the highest version folder that Triton reports ready."""

from __future__ import annotations

import time

from runtime.predictor_version import (
    ServingVersionWatch,
    highest_ready,
    version_folders,
)


def test_version_folders_are_numeric_and_highest_first(tmp_path):
    for name in ("1", "10", "2", "notes", "3x"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert version_folders(tmp_path) == ["10", "2", "1"]
    assert version_folders(tmp_path / "missing") == []


def test_highest_ready_skips_versions_not_loaded_and_failing_checks():
    def is_ready(v: str) -> bool:
        if v == "3":
            raise RuntimeError("no answer")
        return v in {"1", "2"}

    assert highest_ready(["4", "3", "2", "1"], is_ready) == "2"
    assert highest_ready(["4"], is_ready) is None


def test_watch_follows_a_swap_and_reports_the_change(tmp_path):
    (tmp_path / "1").mkdir()
    ready = {"1"}
    changes, now, asked = [], [0.0], []

    def is_ready(version: str) -> bool:
        asked.append(version)
        return version in ready

    watch = ServingVersionWatch(tmp_path, is_ready, interval_s=0.25, on_change=changes.append, clock=lambda: now[0])
    assert watch.maybe_refresh() == "1"
    (tmp_path / "2").mkdir()  # exported, not yet loaded: still version 1
    now[0] = 0.3
    assert watch.maybe_refresh() == "1"
    ready.add("2")
    now[0] = 0.4
    n = len(asked)
    assert watch.maybe_refresh() == "1" and len(asked) == n, "asked again within the interval"
    now[0] = 0.6
    assert watch.maybe_refresh() == "2" and changes == ["1", "2"]
