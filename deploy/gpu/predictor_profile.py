"""The input shapes the length predictor's TensorRT engine is built for, derived from what
preprocessing actually sends, in one place for both GPU variants: the ONNX Runtime TensorRT
accelerator (`trt_profile_*_shapes` in the rendered onnxruntime_trt config) and the TensorRT plan
(`trtexec --minShapes/--optShapes/--maxShapes` in export/build_predictor_plan.sh).

Without a profile TensorRT builds an engine per new (batch, length) shape, stalling requests for
seconds each time. What arrives at `length_predictor`:
- batch: 1 .. the model's `max_batch_size` (its dynamic batcher merges single requests up to it);
- length: preprocessing truncates to predictor.json `max_length` and right-pads to a multiple of
  `predictor_pad_multiple` (runtime.length_predictor.pad_batch), so widths are pad_multiple, 2x, ..., up to
  max_length rounded up to that multiple.

    python -m deploy.gpu.predictor_profile [--trtexec | --ort] [--version-dir model_repository/length_predictor/1]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.repository import read_config, source_parameters
from repo_paths import SOURCE_REPOSITORY
from runtime.length_predictor import latest_version_dir, read_meta

INPUTS = ("input_ids", "attention_mask")  # both [batch, length], same shape
OPT_BATCH = 16  # TensorRT tunes kernels for the opt shape: a batch the 500 us batcher window forms under load
CONTAINER_TRT_CACHE = "/cache/length_predictor_trt"  # a mounted volume (docker_run.sh), kept across restarts


@dataclass(frozen=True)
class PredictorProfile:
    max_batch: int  # length_predictor max_batch_size
    max_length: int  # predictor.json max_length (tokenizer truncation)
    pad_multiple: int  # preprocessing predictor_pad_multiple

    @classmethod
    def from_repository(cls, source: Path = SOURCE_REPOSITORY, version_dir: Path | None = None) -> "PredictorProfile":
        version_dir = Path(version_dir) if version_dir else latest_version_dir(Path(source) / "length_predictor")
        return cls(
            max_batch=read_config(Path(source) / "length_predictor" / "config.pbtxt").max_batch_size,
            max_length=int(read_meta(version_dir)["max_length"]),
            pad_multiple=int(source_parameters("preprocessing", Path(source))["predictor_pad_multiple"]),
        )

    @property
    def min_length(self) -> int:
        return self.pad_multiple  # pad_batch never sends a narrower batch

    @property
    def max_padded_length(self) -> int:
        return -(-self.max_length // self.pad_multiple) * self.pad_multiple

    @property
    def opt_length(self) -> int:
        half = self.max_padded_length // 2
        return max(self.min_length, half - half % self.pad_multiple)

    def shape(self, which: str) -> tuple[int, int]:
        return {"min": (1, self.min_length), "opt": (min(OPT_BATCH, self.max_batch), self.opt_length),
                "max": (self.max_batch, self.max_padded_length)}[which]

    def shapes(self, which: str) -> str:
        """`input_ids:BxL,attention_mask:BxL`, the syntax of both ORT's trt_profile_* and trtexec."""
        batch, length = self.shape(which)
        return ",".join(f"{name}:{batch}x{length}" for name in INPUTS)

    def ort_tensorrt_parameters(self, cache_dir: str = CONTAINER_TRT_CACHE) -> dict[str, str]:
        """Parameters of the onnxruntime backend's TensorRT accelerator (names: onnxruntime_backend
        r25.06 src/onnxruntime.cc): the profile, and engine + timing caches on the mounted volume."""
        return {
            "trt_profile_min_shapes": self.shapes("min"),
            "trt_profile_opt_shapes": self.shapes("opt"),
            "trt_profile_max_shapes": self.shapes("max"),
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": cache_dir,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": cache_dir,
        }

    def trtexec_flags(self) -> list[str]:
        return [f"--{which}Shapes={self.shapes(which)}" for which in ("min", "opt", "max")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version-dir", type=Path, help="predictor version folder (its predictor.json); default: latest")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--trtexec", action="store_true", help="print the trtexec shape flags, one line")
    out.add_argument("--ort", action="store_true", help="print the min, opt and max shapes, one line "
                     "(tools/predictor_gpu_check.py --trt-profile)")
    args = ap.parse_args(argv)
    profile = PredictorProfile.from_repository(version_dir=args.version_dir)
    if args.trtexec:
        print(" ".join(profile.trtexec_flags()))
    elif args.ort:
        print(" ".join(profile.shapes(which) for which in ("min", "opt", "max")))
    else:
        for which in ("min", "opt", "max"):
            print(f"{which}: {profile.shapes(which)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
