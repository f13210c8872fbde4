"""Run the exported predictor under onnxruntime's GPU execution providers (CUDA, TensorRT FP16),
compare its scores with the CPU ones, and time it per batch size. For a GPU box; never run on one yet.

    pip uninstall -y onnxruntime && pip install onnxruntime-gpu   # same major.minor as requirements.txt
    python tools/predictor_gpu_check.py --onnx build/gpu_artifacts/length_predictor/1/model.onnx \
        --reference model_repository/length_predictor/1/model.onnx --out results/predictor_gpu.json

The fp32 file on the CPU provider is the numeric reference for each GPU provider; `--reference` (the
shipped int8-weight file on CPU, what CPU serving returns) is compared too. Rank agreement (Kendall's
tau) matters more than absolute differences: the scheduler only orders by the score.

It fails (exit 1, `"ok": false`, each failure named in `"failures"`) when a requested provider is
not in this onnxruntime build or when a session did not get the providers it asked for: ONNX Runtime
falls back to the next provider, or to CPU, with only a log warning (a CUDA or TensorRT library that
does not load, an onnxruntime-gpu built for another CUDA major), and CPU latency reported as GPU
latency would be worse than no number. On a machine without a GPU: `--providers CPUExecutionProvider`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PROBE_ROWS = 64  # prompts scored for the comparison


def serving_trt_profile() -> tuple[str, str, str]:
    """min, opt and max shapes of the served TensorRT profile (deploy/gpu/predictor_profile.py), so
    the TensorRT provider builds the engine the server builds. Imported here, not at the top: inside
    the serving image (tools/gpu_smoke.sh) the profile comes in by --trt-profile instead."""
    from deploy.gpu.predictor_profile import PredictorProfile

    profile = PredictorProfile.from_repository()
    return tuple(profile.shapes(which) for which in ("min", "opt", "max"))


def providers_for(name: str, trt_profile: tuple[str, str, str], cache_dir: str) -> list:
    if name == "TensorrtExecutionProvider":
        low, opt, high = trt_profile
        options = {
            "trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache_dir,
            "trt_profile_min_shapes": low, "trt_profile_opt_shapes": opt, "trt_profile_max_shapes": high,
        }
        return [(name, options), "CUDAExecutionProvider", "CPUExecutionProvider"]
    if name == "CUDAExecutionProvider":
        return [name, "CPUExecutionProvider"]
    return [name]


def provider_names(requested: list) -> list[str]:
    """The names in an InferenceSession providers list (a name, or a (name, options) pair)."""
    return [item[0] if isinstance(item, tuple) else item for item in requested]


def fallback(requested: list, got: list[str]) -> str | None:
    """Why the session is not what was asked for (None when it is): the first requested provider
    must lead, and none of the requested ones may be missing (ONNX Runtime drops one that fails to
    load and runs on the next)."""
    names = provider_names(requested)
    missing = [name for name in names if name not in got]
    if got[:1] != names[:1] or missing:
        return f"asked for {names}, the session runs on {got}" + (f" ({', '.join(missing)} dropped)" if missing else "")
    return None


def max_shape(trt_profile: tuple[str, str, str]) -> tuple[int, int]:
    """(batch, length) of the profile's max shape, `input_ids:BxL,...`."""
    first = trt_profile[2].split(",")[0].split(":")[1]
    batch, length = first.split("x")
    return int(batch), int(length)


def probe_inputs(batch: int, seq: int, vocab: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ids with random lengths (right padding, mask 0), as the preprocessing model sends."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(1000, vocab, size=(batch, seq)).astype(np.int64)
    lengths = rng.randint(1, seq + 1, size=batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = 0
    return ids, mask


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def timed(session, ids: np.ndarray, mask: np.ndarray, iters: int) -> dict:
    feed = {"input_ids": ids, "attention_mask": mask}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "p50_ms_per_prompt": float(np.percentile(ms, 50) / ids.shape[0])}


def check(onnx: Path, reference: Path | None, providers: list[str], batch_sizes: list[int], seq: int,
          iters: int, vocab: int, cache_dir: str, trt_profile: tuple[str, str, str]) -> dict:
    import onnxruntime as ort

    rows = max(PROBE_ROWS, *batch_sizes)
    max_batch, max_length = max_shape(trt_profile)
    if rows > max_batch or seq > max_length:
        raise ValueError(f"probe {rows}x{seq} lies outside the served TensorRT profile (max {max_batch}x{max_length})")

    available = ort.get_available_providers()
    cpu = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    shipped = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"]) if reference else None
    ids, mask = probe_inputs(rows, seq, vocab, seed=0)  # enough rows for a rank statistic
    cpu_scores = cpu.run(None, {"input_ids": ids, "attention_mask": mask})[0][:, 0]
    report: dict = {"onnxruntime": ort.__version__, "available_providers": available, "onnx": str(onnx),
                    "probe": {"batch": int(ids.shape[0]), "seq": seq}, "providers": {}}
    if shipped is not None:
        ref_scores = shipped.run(None, {"input_ids": ids, "attention_mask": mask})[0][:, 0]
        report["fp32_cpu_vs_reference_cpu"] = {"max_abs_diff": float(np.abs(cpu_scores - ref_scores).max()),
                                               "kendall_tau": kendall_tau(cpu_scores, ref_scores)}
    failures: list[str] = []
    for name in providers:
        if name not in available:
            report["providers"][name] = {"status": "not available in this onnxruntime build"}
            failures.append(f"{name}: not available in this onnxruntime build (available: {available})")
            continue
        requested = providers_for(name, trt_profile, cache_dir)
        session = ort.InferenceSession(str(onnx), providers=requested)
        why = fallback(requested, session.get_providers())
        if why is not None:
            report["providers"][name] = {"status": f"fallback: {why}", "session_providers": session.get_providers()}
            failures.append(f"{name}: {why}")
            continue  # its scores and latency would be another provider's
        scores = session.run(None, {"input_ids": ids, "attention_mask": mask})[0][:, 0]
        entry = {"status": "ok", "session_providers": session.get_providers(),
                 "max_abs_diff_vs_cpu": float(np.abs(scores - cpu_scores).max()),
                 "kendall_tau_vs_cpu": kendall_tau(scores, cpu_scores), "latency": {}}
        for batch in batch_sizes:
            entry["latency"][str(batch)] = timed(session, ids[:batch], mask[:batch], iters)
        report["providers"][name] = entry
    report["ok"] = not failures
    report["failures"] = failures
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, required=True, help="fp32 predictor ONNX (GPU path)")
    ap.add_argument("--reference", type=Path, help="the shipped (int8-weight) model.onnx, scored on CPU")
    ap.add_argument("--providers", default="TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider")
    ap.add_argument("--batch-sizes", default="1,4,16,64")
    ap.add_argument("--seq", type=int, default=128, help="padded predictor tokens per prompt (<= the profile's max)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--vocab", type=int, default=30522, help="predictor tokenizer vocabulary size")
    ap.add_argument("--trt-cache", default="build/predictor_trt_cache")
    ap.add_argument("--trt-profile", help="'MIN OPT MAX' shapes (python -m deploy.gpu.predictor_profile --ort); "
                    "default: read from this checkout")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    trt_profile = tuple(args.trt_profile.split()) if args.trt_profile else serving_trt_profile()
    if len(trt_profile) != 3:
        ap.error("--trt-profile takes three shapes: min, opt and max")
    report = check(args.onnx, args.reference, args.providers.split(","), [int(b) for b in args.batch_sizes.split(",")],
                   args.seq, args.iters, args.vocab, args.trt_cache, trt_profile)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if not report["ok"]:
        print("predictor_gpu_check: FAILED\n  " + "\n  ".join(report["failures"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
