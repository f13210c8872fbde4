"""export/build_llm_engine.sh in --dry-run (the only way it runs here: no GPU, no TensorRT-LLM), and
its defaults agreeing with what the GPU render assumes when no engine is built yet."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from deploy.gpu.bundle import PREDICTOR_CONFIGS
from deploy.gpu.capacity import EngineLimits
from deploy.repository import read_config
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


def test_predictor_plan_script_covers_the_served_batch_size():
    """trtexec's --maxShapes batch (export/build_predictor_plan.sh) must reach the plan config's max_batch_size."""
    text = (REPO_ROOT / "export" / "build_predictor_plan.sh").read_text()
    max_batch = int(re.search(r"MAX_BATCH=\$\{MAX_BATCH:-(\d+)\}", text).group(1))
    assert "--fp16" in text and "--minShapes" in text and "--optShapes" in text and "--maxShapes" in text
    assert read_config(PREDICTOR_CONFIGS["plan"]).max_batch_size <= max_batch


def test_padded_predictor_inputs_stay_inside_the_tensorrt_profile():
    """preprocessing pads predictor inputs up to a multiple of predictor_pad_multiple; TensorRT's
    profile (MAX_SEQ = predictor.json max_length in build_predictor_plan.sh) must admit the padded width."""
    meta = REPO_ROOT / "model_repository" / "length_predictor" / "1" / "predictor.json"
    if not meta.is_file():
        pytest.skip("the predictor is not exported in this checkout yet")
    import json

    max_length = json.loads(meta.read_text())["max_length"]
    pre = read_config(REPO_ROOT / "model_repository" / "preprocessing" / "config.pbtxt")
    multiple = int(pre.parameters["predictor_pad_multiple"].string_value)
    assert max_length % multiple == 0, f"pad {multiple} rounds {max_length} up past the plan's max shape"
