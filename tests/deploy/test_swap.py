"""Syncing a rendered repository's predictor versions with the source, and the guarded API's flags."""

from __future__ import annotations

import os
import stat

import pytest

from deploy.swap import sync_versions
from deploy.triton import Ports, RepositoryAccess, free_ports, server_command


def test_sync_links_new_versions_and_unlinks_retired_ones(tmp_path):
    source, rendered = tmp_path / "source", tmp_path / "rendered"
    for v in ("1", "2", "retired-3"):
        (source / v).mkdir(parents=True)
    rendered.mkdir()
    (rendered / "1").symlink_to(source / "1")
    (rendered / "3").symlink_to(source / "retired-3")
    assert sync_versions(source, rendered) == (["2"], ["3"])
    assert sorted(p.name for p in rendered.iterdir()) == ["1", "2"] and (rendered / "2").resolve() == source / "2"
    assert sync_versions(source, rendered) == ([], [])


def test_sync_never_deletes_a_real_folder(tmp_path):
    source, rendered = tmp_path / "source", tmp_path / "rendered"
    (source / "1").mkdir(parents=True)
    (rendered / "7").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="real folder"):
        sync_versions(source, rendered)
    assert (rendered / "7").is_dir()


def test_repository_access_key_file_flags_and_repr(tmp_path):
    access = RepositoryAccess.generate()
    assert len(access.key) >= 40 and access.key != RepositoryAccess.generate().key
    path = access.save(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and RepositoryAccess.load(tmp_path) == access
    flags = server_command(tmp_path, tmp_path, Ports(*free_ports(3)), repository_access=access)
    assert "--model-control-mode=explicit" in flags and "--load-model=*" in flags
    assert f"--http-restricted-api=model-repository:{access.header}={access.key}" in flags
    assert f"--grpc-restricted-protocol=model-repository:{access.header}={access.key}" in flags
    assert access.key not in repr(access) and access.key not in str(access)
    assert not any("restricted" in f for f in server_command(tmp_path, tmp_path, Ports(1, 2, 3)))
