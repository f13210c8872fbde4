"""export/build_llm_engine.sh in --dry-run (the only way it runs here: no GPU, no TensorRT-LLM), and
its defaults agreeing with what the GPU render assumes when no engine is built yet; the predictor
plan script's shapes coming from the one profile."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from deploy.capacity import EngineLimits
from repo_paths import REPO_ROOT

SCRIPT = REPO_ROOT / "export" / "build_llm_engine.sh"


def dry_run(*args: str) -> tuple[list[str], list[str]]:
    """The convert and build commands the script would run."""
    out = subprocess.run(["bash", str(SCRIPT), "--checkpoint", "/ckpt", "--out", "/engine", "--dry-run", *args],
                         capture_output=True, text=True, check=True).stdout
    commands = [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]
    assert len(commands) == 2, out
    return commands[0], commands[1]


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_script_is_valid_bash_and_strict():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert "set -euo pipefail" in SCRIPT.read_text()


def test_8b_dry_run():
    convert, build = dry_run()
    assert convert[1].endswith("examples/models/core/llama/convert_checkpoint.py")
    assert flag(convert, "--model_dir") == "/ckpt" and flag(convert, "--tp_size") == "1"
    assert flag(convert, "--dtype") == "bfloat16"
    assert build[0] == "trtllm-build" and flag(build, "--checkpoint_dir") == flag(convert, "--output_dir")
    assert flag(build, "--output_dir") == "/engine"
    assert flag(build, "--kv_cache_type") == "paged" and flag(build, "--use_paged_context_fmha") == "enable"
    assert flag(build, "--gemm_plugin") == "auto"


def test_defaults_are_what_the_render_assumes_without_an_engine():
    _, build = dry_run()
    defaults = EngineLimits()
    assert int(flag(build, "--max_batch_size")) == defaults.max_batch_size
    assert int(flag(build, "--max_input_len")) == defaults.max_input_len
    assert int(flag(build, "--max_seq_len")) == defaults.max_seq_len


def test_70b_uses_tensor_parallelism_8():
    convert, build = dry_run("--model", "70b", "--max-batch-size", "128", "--dtype", "float16")
    assert flag(convert, "--tp_size") == "8" and flag(convert, "--dtype") == "float16"
    assert flag(build, "--workers") == "8" and flag(build, "--max_batch_size") == "128"


@pytest.mark.parametrize("args, message", [
    (["--model", "70b", "--tp", "3"], "divide"),
    (["--model", "13b"], "8b or 70b"),
    (["--max-input-len", "8192"], "below --max-seq-len"),
    (["--max-batch-size", "0"], "positive integer"),
    (["--bogus"], "unknown argument"),
])
def test_bad_arguments_fail(args, message):
    result = subprocess.run(["bash", str(SCRIPT), "--checkpoint", "/ckpt", "--out", "/engine", "--dry-run", *args],
                            capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr


def test_real_run_refuses_a_folder_that_is_no_checkpoint(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--checkpoint", str(tmp_path), "--out", str(tmp_path / "e")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "not a Hugging Face checkpoint" in result.stderr


PLAN_SCRIPT = REPO_ROOT / "export" / "build_predictor_plan.sh"


def test_plan_script_is_valid_bash_and_takes_its_shapes_from_the_profile():
    """No shape numbers of its own: they come from deploy/gpu/predictor_profile.py (tested there with
    a dry run), so the plan and the ONNX Runtime variant cannot drift apart."""
    subprocess.run(["bash", "-n", str(PLAN_SCRIPT)], check=True)
    text = PLAN_SCRIPT.read_text()
    assert "set -euo pipefail" in text and "deploy.gpu.predictor_profile --trtexec" in text
    assert "MAX_BATCH" not in text and "x${" not in text
