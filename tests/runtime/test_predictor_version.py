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
    changes = []
    watch = ServingVersionWatch(tmp_path, ready.__contains__, interval_s=0.01, on_change=changes.append).start()
    try:
        deadline = time.monotonic() + 5
        while watch.current != "1" and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "2").mkdir()  # exported, not yet loaded: still version 1
        time.sleep(0.05)
        assert watch.current == "1"
        ready.add("2")
        while watch.current != "2" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watch.current == "2" and changes == ["1", "2"]
    finally:
        watch.stop()
