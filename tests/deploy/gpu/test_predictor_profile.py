"""The predictor's TensorRT profile covers exactly what preprocessing sends, and both GPU variants
(the rendered ONNX Runtime config and the trtexec command of the plan) take it from one place."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import pytest

from deploy.gpu.bundle import predictor_config
from deploy.gpu.predictor_profile import CONTAINER_TRT_CACHE, PredictorProfile, main
from deploy.repository import read_config, source_parameters, write_config
from repo_paths import REPO_ROOT, SOURCE_REPOSITORY
from runtime.length_predictor import pad_batch, read_meta
from tests.deploy.gpu.test_bundle import local_settings

PLAN_SCRIPT = REPO_ROOT / "export" / "build_predictor_plan.sh"


def test_profile_reads_the_numbers_where_they_are_set():
    profile = PredictorProfile.from_repository()
    assert profile.max_batch == read_config(SOURCE_REPOSITORY / "length_predictor" / "config.pbtxt").max_batch_size
    assert profile.max_length == read_meta(SOURCE_REPOSITORY / "length_predictor" / "1")["max_length"]
    assert profile.pad_multiple == int(source_parameters("preprocessing")["predictor_pad_multiple"])
    assert profile.shapes("max") == f"input_ids:{profile.max_batch}x{profile.max_padded_length}," \
                                    f"attention_mask:{profile.max_batch}x{profile.max_padded_length}"


@pytest.mark.parametrize("max_length, multiple, widths", [(128, 16, (16, 128)), (130, 16, (16, 144)), (7, 1, (1, 7))])
def test_every_width_pad_batch_produces_lies_inside_the_profile(max_length, multiple, widths):
    profile = PredictorProfile(max_batch=8, max_length=max_length, pad_multiple=multiple)
    sent = {pad_batch([[1] * n], 0, multiple)[0].shape[1] for n in range(1, max_length + 1)}  # truncation: <= max_length
    assert (min(sent), max(sent)) == widths == (profile.min_length, profile.max_padded_length)
    batch, length = profile.shape("opt")
    assert profile.min_length <= length <= profile.max_padded_length and length % multiple == 0
    assert 1 <= batch <= profile.max_batch and profile.shape("min")[0] == 1


@pytest.mark.parametrize("variant", ["onnx", "plan"])
def test_rendered_configs_take_the_profile(tmp_path, variant):
    profile = PredictorProfile(max_batch=32, max_length=96, pad_multiple=32)
    source = tmp_path / "source"
    shutil.copytree(SOURCE_REPOSITORY, source, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
    meta = source / "length_predictor" / "1" / "predictor.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "max_length": 96}))
    for model, change in (("length_predictor", lambda c: setattr(c, "max_batch_size", 32)),
                          ("preprocessing", lambda c: c.parameters["predictor_pad_multiple"].__setattr__("string_value", "32"))):
        config = read_config(source / model / "config.pbtxt")
        change(config)
        write_config(config, source / model / "config.pbtxt")
    assert PredictorProfile.from_repository(source) == profile
    config = predictor_config(local_settings(tmp_path, predictor_variant=variant), source)
    assert config.max_batch_size == 32
    if variant == "onnx":
        (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
        assert dict(trt.parameters) | profile.ort_tensorrt_parameters() == dict(trt.parameters)
        assert trt.parameters["trt_profile_max_shapes"] == "input_ids:32x96,attention_mask:32x96"
        assert trt.parameters["trt_engine_cache_path"] == CONTAINER_TRT_CACHE


def plan_dry_run(env_extra: dict | None = None) -> list[str]:
    out = subprocess.run(["bash", str(PLAN_SCRIPT)], env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1",
                         "PYTHON": str(REPO_ROOT / ".venv" / "bin" / "python"), **(env_extra or {})},
                         capture_output=True, text=True, check=True).stdout
    (line,) = [x for x in out.splitlines() if x.startswith("+ ")]
    return shlex.split(line[2:])


def test_the_plan_script_builds_the_same_profile(capsys):
    command = plan_dry_run()
    profile = PredictorProfile.from_repository()
    assert command[0] == "trtexec" and "--fp16" in command
    assert [a for a in command if "Shapes=" in a] == profile.trtexec_flags()
    assert main(["--trtexec"]) == 0 and capsys.readouterr().out.split() == profile.trtexec_flags()
    assert main(["--ort"]) == 0 and capsys.readouterr().out.split() == [profile.shapes(w) for w in ("min", "opt", "max")]


def test_the_plan_script_takes_shapes_from_outside_the_venv():
    """Inside the serving image PYTHON cannot import deploy: the host passes the flags."""
    command = plan_dry_run({"PYTHON": "/nonexistent/python", "PREDICTOR_TRT_SHAPES": "--minShapes=a --maxShapes=b"})
    assert command[-2:] == ["--minShapes=a", "--maxShapes=b"]

