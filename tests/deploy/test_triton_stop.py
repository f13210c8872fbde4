"""What a stop leaves behind: the server's process tree and the shared memory it mapped."""

from __future__ import annotations

from pathlib import Path

from deploy.local import scheduler_busy
from deploy.triton import SHM_REGION_PREFIX, process_tree, shm_regions


def _proc(root: Path, pid: int, ppid: int, maps: str = "") -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(f"{pid} (name with) paren) S {ppid} 1 1")
    (root / str(pid) / "maps").write_text(maps)


def test_process_tree_finds_children_and_grandchildren_only(tmp_path):
    _proc(tmp_path, 10, 1)
    _proc(tmp_path, 11, 10)
    _proc(tmp_path, 12, 11)
    _proc(tmp_path, 20, 1)
    assert sorted(process_tree(10, tmp_path)) == [10, 11, 12]


def test_shm_regions_are_the_python_backend_files_mapped(tmp_path):
    region = SHM_REGION_PREFIX + "abc"
    _proc(tmp_path, 10, 1, f"7f00-7f10 rw-s 00000000 00:1a 5 {region}\n7f10-7f20 r-xp 0 08:01 9 /usr/lib/libc.so\n")
    _proc(tmp_path, 11, 10, f"7f00-7f10 rw-s 00000000 00:1a 5 {SHM_REGION_PREFIX}def (deleted)\n")
    assert shm_regions([10, 11, 99], tmp_path) == {Path(region), Path(SHM_REGION_PREFIX + "def")}


def test_scheduler_busy_adds_waiting_and_generating():
    text = (
        "# HELP ltr_scheduler_waiting_requests x\n"
        'ltr_scheduler_waiting_requests{policy="ltr"} 2\n'
        'ltr_scheduler_inflight_requests{policy="ltr"} 3\n'
        'nv_inference_count{model="ensemble"} 7\n'
    )
    assert scheduler_busy(text) == 5
    assert scheduler_busy("") == 0


def test_a_server_whose_models_are_all_unloaded_is_not_waited_for(tmp_path):
    """Once every stub has exited, Triton only waits for its next once-a-second check: stop then."""
    import subprocess
    import sys
    import time

    from deploy.triton import _alive, stop_tritonserver

    server = subprocess.Popen([sys.executable, "-c", (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: None)  # a server that would wait out its timeout\n"
        "stub = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.3)'])\n"
        "open(sys.argv[1], 'w').write('up')\n"
        "time.sleep(120)\n"), str(tmp_path / "up")])
    try:
        while not (tmp_path / "up").exists():
            time.sleep(0.05)
        started = time.monotonic()
        assert stop_tritonserver(server.pid, timeout_s=60)
        assert time.monotonic() - started < 30  # not the 60 s timeout
        server.wait(5)
        assert not _alive(server.pid)
    finally:
        server.kill()
