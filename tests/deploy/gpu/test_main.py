"""`python -m deploy.gpu` (make deploy TARGET=gpu): renders, prints the commands, starts nothing here."""

from __future__ import annotations

import pytest

from deploy.gpu.__main__ import main
from deploy.gpu.bundle import TRITON_TRTLLM_IMAGE, missing_artifacts
from tests.deploy.gpu.helpers import write_engine


def test_cli_renders_prints_and_starts_nothing_here(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "b"), "--engine-dir", str(tmp_path / "engine"),
                 "--checkpoint-dir", str(tmp_path / "hf"), "--predictor-artifacts", str(tmp_path / "none"),
                 "--max-batch-size", "16", "--run", "auto"]) == 0
    out = capsys.readouterr().out
    assert "docker run" in out and TRITON_TRTLLM_IMAGE in out and "max_inflight 16" in out
    assert "Not started" in out
    assert missing_artifacts(tmp_path / "b")


def test_cli_refuses_flags_that_contradict_the_engine(tmp_path):
    engine = write_engine(tmp_path / "engine", max_batch_size=32)
    with pytest.raises(SystemExit, match="disagrees"):
        main(["--out", str(tmp_path / "b"), "--engine-dir", str(engine), "--checkpoint-dir", str(tmp_path / "hf"),
              "--max-batch-size", "64", "--run", "never"])


def test_run_always_fails_when_it_cannot_start(tmp_path, capsys):
    """tools/gpu_smoke.sh relies on it: no silent success without a server."""
    assert main(["--out", str(tmp_path / "b"), "--engine-dir", str(tmp_path / "engine"),
                 "--checkpoint-dir", str(tmp_path / "hf"), "--predictor-artifacts", str(tmp_path / "none"),
                 "--predictor-cache-dir", str(tmp_path / "cache"), "--run", "always"]) == 1
    captured = capsys.readouterr()
    assert "Not started" in captured.err and "placement  predictor on GPU 0" in captured.out
