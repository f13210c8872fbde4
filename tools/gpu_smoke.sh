#!/usr/bin/env bash
# GPU smoke test (make gpu-smoke): on a machine with an NVIDIA GPU and Docker, from a built engine
# and its Hugging Face checkpoint,
#   1. render the GPU bundle, build the serving image, start it and follow its log until ready
#      (make deploy TARGET=gpu ... --run always: fails with the server's own error lines);
#   2. send one streamed request through the ensemble (gRPC), and one through the OpenAI front end
#      on port 9000 when something answers there; print TTFT and tokens/s (results/gpu_smoke.json);
#   3. stop the server;
#   4. run the predictor's GPU check (tools/predictor_gpu_check.py: CPU vs CUDA vs TensorRT FP16
#      scores, latency per batch size) inside the serving image, on the predictor's GPU, with the
#      served TensorRT profile (results/predictor_gpu.json).
# Never run yet: the build machines have no GPU and no Docker engine (only --dry-run is tested).
# Step 4 pip-installs onnxruntime-gpu into the container's /tmp, so the GPU box needs PyPI access.
#
# Usage: tools/gpu_smoke.sh [options]
#   --engine-dir DIR        engine (default build/engines/llama3-8b-instruct)
#   --checkpoint-dir DIR    Hugging Face checkpoint (default build/hf/Meta-Llama-3-8B-Instruct)
#   --predictor-variant V   onnx (default) | plan
#   --gpu-memory-gib N      memory of one GPU (default 80; H200: 141), for the KV fraction
#   --max-tokens N          tokens per smoke request (default 128)
#   --keep                  leave the server running (skips step 4's clean GPU: it runs beside it)
#   --dry-run               print the commands only
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE_DIR=build/engines/llama3-8b-instruct CHECKPOINT_DIR=build/hf/Meta-Llama-3-8B-Instruct
VARIANT=onnx GPU_MEMORY_GIB=80 MAX_TOKENS=128 KEEP=0 DRY_RUN=0
PY=${PY:-.venv/bin/python}
DOCKER=${DOCKER:-docker}
HTTP_PORT=${HTTP_PORT:-8000} GRPC_PORT=${GRPC_PORT:-8001} OPENAI_URL=${OPENAI_URL:-http://127.0.0.1:9000}
CONTAINER=ltr-serving-gpu
# onnxruntime-gpu for the serving image's CUDA 12.9 / cuDNN 9: 1.22.0 is built with CUDA 12.2 (its
# capi/build_and_package_info.py; CUDA minor-version compatibility covers 12.9), and it is the ORT
# version of Triton 25.06's onnxruntime backend that the image serves the predictor with. The newest
# on PyPI (1.31.1) is built for CUDA 13 and would fall back to CPU here (predictor_gpu_check fails then).
ONNXRUNTIME_GPU_VERSION=1.22.0

die() { echo "gpu_smoke.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --engine-dir) ENGINE_DIR=$2; shift 2 ;;
    --checkpoint-dir) CHECKPOINT_DIR=$2; shift 2 ;;
    --predictor-variant) VARIANT=$2; shift 2 ;;
    --gpu-memory-gib) GPU_MEMORY_GIB=$2; shift 2 ;;
    --max-tokens) MAX_TOKENS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case "$VARIANT" in onnx|plan) ;; *) die "--predictor-variant must be onnx or plan" ;; esac

run() {  # print each command; run it unless --dry-run
  printf '+'; printf ' %q' "$@"; printf '\n'
  [ "$DRY_RUN" -eq 1 ] || "$@"
}
pinned() { sed -n "s/^$1==//p" requirements.txt; }

if [ "$DRY_RUN" -eq 0 ]; then
  command -v "$DOCKER" >/dev/null && "$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers here (needs Docker with the NVIDIA Container Toolkit)"
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || die "no NVIDIA GPU answers here (nvidia-smi -L)"
  [ -f "$ENGINE_DIR/config.json" ] || die "no engine in $ENGINE_DIR: build it first (docs/gpu.md step 3, export/build_llm_engine.sh)"
  [ -f "$CHECKPOINT_DIR/tokenizer.json" ] || die "no Hugging Face checkpoint in $CHECKPOINT_DIR (docs/gpu.md step 1)"
  [ -x "$PY" ] || die "no $PY: run make setup first"
fi

stop_server() { run "$DOCKER" rm -f "$CONTAINER" || true; }
if [ "$KEEP" -eq 0 ]; then trap stop_server EXIT; fi

echo "== 1. build, start, wait for ready"
run make deploy TARGET=gpu ENGINE_DIR="$ENGINE_DIR" CHECKPOINT_DIR="$CHECKPOINT_DIR" PREDICTOR_VARIANT="$VARIANT" \
  HTTP_PORT="$HTTP_PORT" GRPC_PORT="$GRPC_PORT" GPU_ARGS="--run always --gpu-memory-gib $GPU_MEMORY_GIB"
run curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready"

echo "== 2. one streamed request through the ensemble, one through the OpenAI front end (if up)"
run "$PY" tools/gpu_smoke_requests.py --grpc-url "127.0.0.1:$GRPC_PORT" --openai-url "$OPENAI_URL" \
  --max-tokens "$MAX_TOKENS" --out results/gpu_smoke.json

echo "== 3. stop the server"
if [ "$KEEP" -eq 0 ]; then stop_server; trap - EXIT; fi

echo "== 4. predictor GPU check in the serving image (latency per batch size)"
PREDICTOR_GPU=$("$PY" -c "import sys; from deploy.repository import read_config
try: print(read_config(sys.argv[1]).instance_group[0].gpus[0])
except OSError: print(0)  # not rendered (--dry-run)" build/gpu/model_repository/length_predictor/config.pbtxt)
SHAPES=$("$PY" -m deploy.gpu.predictor_profile --ort)
CHECK="python3 -m pip install -q --target /tmp/ltr_ort onnxruntime-gpu==$ONNXRUNTIME_GPU_VERSION numpy==$(pinned numpy) scipy==$(pinned scipy)"
# The image puts Triton's onnxruntime backend folder (its libonnxruntime*.so) first on LD_LIBRARY_PATH:
# taken out for the check, so that the wheel's own libraries load.
CHECK+=' && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH//\/opt\/tritonserver\/backends\/onnxruntime/}'
CHECK+=" && PYTHONPATH=/tmp/ltr_ort python3 tools/predictor_gpu_check.py --onnx build/gpu_artifacts/length_predictor/1/model.onnx"
CHECK+=" --reference model_repository/length_predictor/1/model.onnx --trt-profile '$SHAPES'"
CHECK+=" --trt-cache build/gpu_smoke/trt_cache --out results/predictor_gpu.json"
run "$DOCKER" run --rm --gpus "device=$PREDICTOR_GPU" --user "$(id -u):$(id -g)" -e HOME=/tmp \
  -v "$PWD":/work -w /work ltr-serving-gpu:25.10 bash -c "$CHECK"

echo "== done: results/gpu_smoke.json, results/predictor_gpu.json"
