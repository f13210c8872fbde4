#!/usr/bin/env bash
# GPU path of the length predictor (UNVERIFIED here: no GPU or TensorRT on the build machines).
#
# 1. Folds the committed int8 weight-only model.onnx back into a plain fp32 ONNX file
#    (python -m predictor.quantize dequantize), which is what the ONNX Runtime backend with the
#    TensorRT accelerator (deploy/gpu/length_predictor/onnxruntime_trt.pbtxt) and trtexec take.
# 2. Builds a TensorRT plan with trtexec: FP16, one optimization profile covering every (batch,
#    padded length) preprocessing sends (deploy/gpu/predictor_profile.py).
#
# Usage: export/build_predictor_plan.sh [SRC_VERSION_DIR] [OUT_VERSION_DIR]
#   SRC_VERSION_DIR  default model_repository/length_predictor/1 (model.onnx + predictor.json)
#   OUT_VERSION_DIR  default rendered/gpu/length_predictor/1; receives model.onnx (fp32), model.plan,
#                    and copies of tokenizer.json / predictor.json for the preprocessing model.
# Env: TRTEXEC (default trtexec), PYTHON (default .venv/bin/python),
#      PREDICTOR_TRT_SHAPES: the trtexec shape flags; default from deploy/gpu/predictor_profile.py
#      (`$PYTHON -m deploy.gpu.predictor_profile --trtexec --version-dir SRC`), the one place that
#      also renders the ONNX Runtime variant's profile. Pass it when PYTHON cannot import this
#      repository's deploy package (inside the serving image, docs/gpu.md step 4).
#      DRY_RUN=1: print the trtexec command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-model_repository/length_predictor/1}
OUT=${2:-rendered/gpu/length_predictor/1}
PYTHON=${PYTHON:-.venv/bin/python}
TRTEXEC=${TRTEXEC:-trtexec}
SHAPES=${PREDICTOR_TRT_SHAPES:-$("$PYTHON" -m deploy.gpu.predictor_profile --trtexec --version-dir "$SRC")}
read -r -a SHAPE_FLAGS <<< "$SHAPES"
DRY_RUN=${DRY_RUN:-0}
if [ "$DRY_RUN" = 1 ]; then
  printf '+'; printf ' %q' "$TRTEXEC" --onnx="$OUT/model.onnx" --saveEngine="$OUT/model.plan" --fp16 "${SHAPE_FLAGS[@]}"; printf '\n'
  exit 0
fi

mkdir -p "$OUT"
"$PYTHON" -m predictor.quantize dequantize "$SRC/model.onnx" "$OUT/model.onnx"
cp "$SRC/tokenizer.json" "$SRC/predictor.json" "$OUT/"

command -v "$TRTEXEC" >/dev/null || { echo "trtexec not found (TensorRT / NGC container needed); wrote $OUT/model.onnx only" >&2; exit 2; }
"$TRTEXEC" \
  --onnx="$OUT/model.onnx" \
  --saveEngine="$OUT/model.plan" \
  --fp16 \
  "${SHAPE_FLAGS[@]}"
echo "wrote $OUT/model.plan (serve with platform: \"tensorrt_plan\", same tensor names and dims)"
