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


def test_orphaned_regions_are_removed_mapped_and_young_ones_kept(tmp_path):
    import os
    import time

    from deploy.triton import remove_orphaned_shm_regions

    proc, shm = tmp_path / "proc", tmp_path / "shm"
    shm.mkdir()
    name = Path(SHM_REGION_PREFIX).name
    orphan, mapped, young, other = shm / f"{name}a", shm / f"{name}b", shm / f"{name}c", shm / "not_ours"
    for path in (orphan, mapped, young, other):
        path.write_bytes(b"")
    old = time.time() - 60
    for path in (orphan, mapped, other):
        os.utime(path, (old, old))
    _proc(proc, 10, 1, f"7f00-7f10 rw-s 00000000 00:1a 5 {mapped}\n")
    import deploy.triton as triton

    prefix = triton.SHM_REGION_PREFIX
    triton.SHM_REGION_PREFIX = str(shm) + "/" + name  # the maps name files under this fake /dev/shm
    try:
        assert remove_orphaned_shm_regions(proc=proc, shm=shm) == [orphan]
    finally:
        triton.SHM_REGION_PREFIX = prefix
    assert not orphan.exists() and mapped.exists() and young.exists() and other.exists()
