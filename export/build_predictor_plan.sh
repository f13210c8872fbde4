#!/usr/bin/env bash
# GPU path of the length predictor (UNVERIFIED here: no GPU or TensorRT on the build machines).
#
# 1. Folds the committed int8 weight-only model.onnx back into a plain fp32 ONNX file
#    (python -m predictor.quantize dequantize), which is what the ONNX Runtime backend with the
#    TensorRT accelerator (deploy/gpu/length_predictor/onnxruntime_trt.pbtxt) and trtexec take.
# 2. Builds a TensorRT plan with trtexec: FP16, dynamic batch and sequence shapes.
#
# Usage: export/build_predictor_plan.sh [SRC_VERSION_DIR] [OUT_VERSION_DIR]
#   SRC_VERSION_DIR  default model_repository/length_predictor/1 (model.onnx + predictor.json)
#   OUT_VERSION_DIR  default rendered/gpu/length_predictor/1; receives model.onnx (fp32), model.plan,
#                    and copies of tokenizer.json / predictor.json for the preprocessing model.
# Env: TRTEXEC (default trtexec), PYTHON (default .venv/bin/python), MIN_BATCH/OPT_BATCH/MAX_BATCH
#      (1/16/64), MIN_SEQ/OPT_SEQ (1/64); MAX_SEQ defaults to max_length from predictor.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-model_repository/length_predictor/1}
OUT=${2:-rendered/gpu/length_predictor/1}
PYTHON=${PYTHON:-.venv/bin/python}
TRTEXEC=${TRTEXEC:-trtexec}
MIN_BATCH=${MIN_BATCH:-1}; OPT_BATCH=${OPT_BATCH:-16}; MAX_BATCH=${MAX_BATCH:-64}
MAX_LEN=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['max_length'])" "$SRC/predictor.json")
MIN_SEQ=${MIN_SEQ:-1}; OPT_SEQ=${OPT_SEQ:-64}; MAX_SEQ=${MAX_SEQ:-$MAX_LEN}

mkdir -p "$OUT"
"$PYTHON" -m predictor.quantize dequantize "$SRC/model.onnx" "$OUT/model.onnx"
cp "$SRC/tokenizer.json" "$SRC/predictor.json" "$OUT/"

command -v "$TRTEXEC" >/dev/null || { echo "trtexec not found (TensorRT / NGC container needed); wrote $OUT/model.onnx only" >&2; exit 2; }
"$TRTEXEC" \
  --onnx="$OUT/model.onnx" \
  --saveEngine="$OUT/model.plan" \
  --fp16 \
  --minShapes=input_ids:${MIN_BATCH}x${MIN_SEQ},attention_mask:${MIN_BATCH}x${MIN_SEQ} \
  --optShapes=input_ids:${OPT_BATCH}x${OPT_SEQ},attention_mask:${OPT_BATCH}x${OPT_SEQ} \
  --maxShapes=input_ids:${MAX_BATCH}x${MAX_SEQ},attention_mask:${MAX_BATCH}x${MAX_SEQ}
echo "wrote $OUT/model.plan (serve with platform: \"tensorrt_plan\", same tensor names and dims)"
