"""The serving predictor version: the one the last swap marked, else the highest version folder."""

from __future__ import annotations

from runtime.predictor_version import ServingVersionWatch, mark_serving, serving_version, version_folders


def test_version_folders_are_numeric_and_highest_first(tmp_path):
    for name in ("1", "10", "2", "notes", "3x"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert version_folders(tmp_path) == ["10", "2", "1"]
    assert version_folders(tmp_path / "missing") == []


def test_serving_version_is_the_marked_one_else_the_highest_folder(tmp_path):
    assert serving_version(tmp_path) is None
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()  # exported, not yet swapped in: still the highest folder before any swap
    assert serving_version(tmp_path) == "2"
    mark_serving(tmp_path, "1")  # a rollback to 1
    assert serving_version(tmp_path) == "1"
    (tmp_path / "SERVING_VERSION").write_text("garbage")
    assert serving_version(tmp_path) == "2"


def test_watch_follows_a_swap_and_reports_the_change(tmp_path):
    (tmp_path / "1").mkdir()
    changes, now = [], [0.0]
    watch = ServingVersionWatch(tmp_path, interval_s=0.25, on_change=changes.append, clock=lambda: now[0])
    assert watch.maybe_refresh() == "1"
    (tmp_path / "2").mkdir()
    mark_serving(tmp_path, "1")  # version 2 exported, not yet loaded
    now[0] = 0.3
    assert watch.maybe_refresh() == "1"
    mark_serving(tmp_path, "2")
    now[0] = 0.4
    assert watch.maybe_refresh() == "1", "not read again within the interval"
    now[0] = 0.6
    assert watch.maybe_refresh() == "2" and changes == ["1", "2"]
