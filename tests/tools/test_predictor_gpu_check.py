"""tools/predictor_gpu_check.py on CPU with a tiny ONNX model of the predictor's interface: the
comparison and timing logic, and that a missing provider or a session that fell back to another
one fails the check instead of being reported as that provider's numbers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deploy.gpu.predictor_profile import PredictorProfile
from repo_paths import REPO_ROOT

spec = importlib.util.spec_from_file_location("predictor_gpu_check", REPO_ROOT / "tools" / "predictor_gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def tiny_predictor(path: Path, scale: float) -> Path:
    """score[b, 0] = scale * sum(input_ids * attention_mask): the predictor's tensor names and shapes."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["ids_f", "mask_f"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axes"], ["summed"], keepdims=1),
            helper.make_node("Mul", ["summed", "scale"], ["score"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1]), helper.make_tensor("scale", TensorProto.FLOAT, [], [scale])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_cpu_run_compares_times_and_reports_missing_providers(tmp_path):
    model = tiny_predictor(tmp_path / "fp32.onnx", 1e-6)
    reference = tiny_predictor(tmp_path / "ref.onnx", 2e-6)  # same ranking, different values
    report = gpu_check.check(model, reference, ["NoSuchExecutionProvider", "CPUExecutionProvider"], [1, 4], seq=16,
                             iters=3, vocab=5000, cache_dir=str(tmp_path / "cache"), trt_profile=gpu_check.serving_trt_profile())
    assert report["providers"]["NoSuchExecutionProvider"]["status"].startswith("not available")
    assert report["ok"] is False and report["failures"][0].startswith("NoSuchExecutionProvider: not available")
    cpu = report["providers"]["CPUExecutionProvider"]
    assert cpu["max_abs_diff_vs_cpu"] == 0.0 and cpu["kendall_tau_vs_cpu"] == 1.0
    assert set(cpu["latency"]) == {"1", "4"} and cpu["latency"]["4"]["p50_ms"] > 0
    ref = report["fp32_cpu_vs_reference_cpu"]
    assert ref["max_abs_diff"] > 0 and abs(ref["kendall_tau"] - 1.0) < 1e-9


def test_probe_inputs_are_right_padded():
    ids, mask = gpu_check.probe_inputs(8, 32, 5000, seed=1)
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert (mask[:, 0] == 1).all() and (np.diff(mask, axis=1) <= 0).all()
    assert (ids[mask == 0] == 0).all()


def test_tensorrt_provider_uses_the_served_profile():
    """The TensorRT provider builds the engine the server builds (deploy/gpu/predictor_profile.py)."""
    profile = PredictorProfile.from_repository()
    shapes = gpu_check.serving_trt_profile()
    assert shapes == tuple(profile.shapes(w) for w in ("min", "opt", "max"))
    name, options = gpu_check.providers_for("TensorrtExecutionProvider", shapes, "/tmp/c")[0]
    assert name == "TensorrtExecutionProvider" and options["trt_fp16_enable"]
    assert options["trt_profile_max_shapes"] == profile.shapes("max") == "input_ids:64x128,attention_mask:64x128"
    assert gpu_check.max_shape(shapes) == (64, 128)


def test_a_probe_outside_the_profile_is_refused(tmp_path):
    model = tiny_predictor(tmp_path / "fp32.onnx", 1e-6)
    with pytest.raises(ValueError, match="outside the served TensorRT profile"):
        gpu_check.check(model, None, ["CPUExecutionProvider"], [1], seq=256, iters=1, vocab=100,
                        cache_dir=str(tmp_path), trt_profile=gpu_check.serving_trt_profile())


def test_cli_takes_the_profile_from_the_command_line(tmp_path):
    """Inside the serving image (tools/gpu_smoke.sh) the profile comes in by --trt-profile."""
    model = tiny_predictor(tmp_path / "fp32.onnx", 1e-6)
    out = tmp_path / "report.json"
    small = "input_ids:1x8,attention_mask:1x8 input_ids:2x8,attention_mask:2x8 input_ids:64x16,attention_mask:64x16"
    assert gpu_check.main(["--onnx", str(model), "--providers", "CPUExecutionProvider", "--batch-sizes", "1",
                           "--seq", "16", "--iters", "1", "--trt-profile", small, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["providers"]["CPUExecutionProvider"]["status"] == "ok"
    with pytest.raises(SystemExit):
        gpu_check.main(["--onnx", str(model), "--trt-profile", "only one"])


def test_a_session_that_fell_back_to_cpu_fails_the_check(tmp_path, monkeypatch):
    """What an onnxruntime-gpu for the wrong CUDA does on a GPU box: the CUDA provider is listed as
    available, the session cannot load it and runs on CPU with only a warning. Here a CPU build is
    told it has CUDA, and the real InferenceSession falls back the same way."""
    import onnxruntime as ort

    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    model = tiny_predictor(tmp_path / "fp32.onnx", 1e-6)
    report = gpu_check.check(model, None, ["CUDAExecutionProvider", "CPUExecutionProvider"], [1], seq=16, iters=1,
                             vocab=5000, cache_dir=str(tmp_path), trt_profile=gpu_check.serving_trt_profile())
    cuda = report["providers"]["CUDAExecutionProvider"]
    assert cuda["status"].startswith("fallback") and cuda["session_providers"] == ["CPUExecutionProvider"]
    assert "latency" not in cuda  # no CPU numbers under the CUDA name
    assert report["ok"] is False and report["failures"] == [
        "CUDAExecutionProvider: asked for ['CUDAExecutionProvider', 'CPUExecutionProvider'], the session runs on "
        "['CPUExecutionProvider'] (CUDAExecutionProvider dropped)"]
    assert report["providers"]["CPUExecutionProvider"]["status"] == "ok"


def test_the_fallback_rule():
    trt = [("TensorrtExecutionProvider", {}), "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert gpu_check.fallback(trt, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    assert "TensorrtExecutionProvider dropped" in gpu_check.fallback(trt, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu_check.fallback(["CPUExecutionProvider"], ["CPUExecutionProvider"]) is None


def test_the_command_exits_1_on_a_failure_and_0_when_every_provider_is_real(tmp_path):
    model = tiny_predictor(tmp_path / "fp32.onnx", 1e-6)
    common = ["--onnx", str(model), "--batch-sizes", "1", "--seq", "16", "--iters", "1", "--vocab", "5000"]
    assert gpu_check.main([*common, "--providers", "CPUExecutionProvider", "--out", str(tmp_path / "ok.json")]) == 0
    assert json.loads((tmp_path / "ok.json").read_text())["ok"] is True
    assert gpu_check.main([*common, "--providers", "NoSuchExecutionProvider,CPUExecutionProvider"]) == 1
