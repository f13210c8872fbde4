"""The graceful-stop signal: a deadline in a file, read at most every `recheck_s`."""

from __future__ import annotations

from runtime.drain import DrainSignal, begin_drain


def test_no_file_or_no_path_means_serving(tmp_path):
    assert DrainSignal(None)() is None
    assert DrainSignal(tmp_path / "draining")() is None


def test_seconds_left_count_down_from_the_written_deadline(tmp_path):
    now = {"t": 1000.0}
    path = tmp_path / "draining"
    signal = DrainSignal(path, clock=lambda: now["t"], recheck_s=0.5)
    assert signal() is None
    assert begin_drain(path, 30.0, clock=lambda: now["t"]) == 1030.0
    assert signal() is None  # read again only after recheck_s
    now["t"] += 0.5
    assert signal() == 29.5
    now["t"] += 40
    assert signal() == -10.5  # over: generating requests end
    path.unlink()
    now["t"] += 1
    assert signal() is None  # a new start serves again


def test_a_garbled_file_is_ignored(tmp_path):
    path = tmp_path / "draining"
    path.write_text("not a number")
    assert DrainSignal(path)() is None


def test_by_default_the_file_is_read_again_after_a_fifth_of_a_second(tmp_path):
    now = {"t": 1000.0}
    path = tmp_path / "draining"
    signal = DrainSignal(path, clock=lambda: now["t"])
    assert signal() is None
    begin_drain(path, 10.0, clock=lambda: now["t"])
    now["t"] += 0.19
    assert signal() is None  # within the recheck interval: not read yet
    now["t"] += 0.01
    assert signal() == 1010.0 - 1000.2
    assert [p.name for p in tmp_path.iterdir()] == ["draining"]  # written in place, no temporary left
