#!/usr/bin/env bash
# Build the Llama-3 TensorRT-LLM engine from a Hugging Face checkpoint folder:
#   1. convert_checkpoint.py (TensorRT-LLM's llama example) -> TensorRT-LLM checkpoint (sharded for TP)
#   2. trtllm-build -> engine folder (rank<N>.engine + config.json), paged KV cache, inflight batching
# Run it inside the serving image (deploy/gpu/Dockerfile, TensorRT-LLM 1.0.0) on the GPU box, so the
# engine matches the runtime that serves it. UNVERIFIED here: no GPU, no TensorRT-LLM on the build
# machines; only --dry-run is tested (tests/test_gpu_target_export.py).
#
# Usage: export/build_llm_engine.sh --checkpoint HF_DIR --out ENGINE_DIR [options]
#   --model 8b|70b          8b: tp 1; 70b: tp 8 (Llama-3-70B has 8 KV heads: tp must divide 8)
#   --tp N / --pp N         tensor / pipeline parallel sizes (override the model's default)
#   --dtype D               bfloat16 (default; the checkpoint's dtype) | float16
#   --max-batch-size N      engine batch slots (default 64); the scheduler's max_inflight follows it
#   --max-input-len N       longest prompt (default 4096)
#   --max-seq-len N         prompt + generated tokens (default 8192; Llama-3 context is 8192)
#   --max-num-tokens N      tokens per engine step, context chunks included (default 8192)
#   --workdir DIR           converted checkpoint (default build/trtllm_checkpoint/<model>-tp<N>)
#   --trtllm-src DIR        a TensorRT-LLM checkout at tag v1.0.0 (default $TRTLLM_SRC or /opt/TensorRT-LLM)
#   --dry-run               print the commands only
set -euo pipefail

MODEL=8b TP="" PP=1 DTYPE=bfloat16 CHECKPOINT="" OUT="" WORKDIR=""
MAX_BATCH_SIZE=64 MAX_INPUT_LEN=4096 MAX_SEQ_LEN=8192 MAX_NUM_TOKENS=8192
TRTLLM_SRC=${TRTLLM_SRC:-/opt/TensorRT-LLM} TRTLLM_VERSION=1.0.0 DRY_RUN=0

die() { echo "build_llm_engine.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --tp) TP=$2; shift 2 ;;
    --pp) PP=$2; shift 2 ;;
    --dtype) DTYPE=$2; shift 2 ;;
    --checkpoint) CHECKPOINT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --max-batch-size) MAX_BATCH_SIZE=$2; shift 2 ;;
    --max-input-len) MAX_INPUT_LEN=$2; shift 2 ;;
    --max-seq-len) MAX_SEQ_LEN=$2; shift 2 ;;
    --max-num-tokens) MAX_NUM_TOKENS=$2; shift 2 ;;
    --trtllm-src) TRTLLM_SRC=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

case "$MODEL" in
  8b) TP=${TP:-1} ;;
  70b) TP=${TP:-8} ;;
  *) die "--model must be 8b or 70b, got $MODEL" ;;
esac
case "$DTYPE" in bfloat16|float16) ;; *) die "--dtype must be bfloat16 or float16" ;; esac
for v in TP PP MAX_BATCH_SIZE MAX_INPUT_LEN MAX_SEQ_LEN MAX_NUM_TOKENS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
(( 8 % TP == 0 )) || die "--tp $TP must divide Llama-3's 8 KV heads (1, 2, 4 or 8)"
(( MAX_INPUT_LEN < MAX_SEQ_LEN )) || die "--max-input-len must be below --max-seq-len"
[ -n "$CHECKPOINT" ] || die "--checkpoint HF_DIR is required"
[ -n "$OUT" ] || die "--out ENGINE_DIR is required"
WORKDIR=${WORKDIR:-build/trtllm_checkpoint/llama3-${MODEL}-tp${TP}-pp${PP}}
WORLD_SIZE=$((TP * PP))
CONVERT="$TRTLLM_SRC/examples/models/core/llama/convert_checkpoint.py"

run() {  # print each command; run it unless --dry-run
  printf '+'; printf ' %q' "$@"; printf '\n'
  [ "$DRY_RUN" -eq 1 ] || "$@"
}

if [ "$DRY_RUN" -eq 0 ]; then
  [ -f "$CHECKPOINT/config.json" ] && [ -f "$CHECKPOINT/tokenizer.json" ] \
    || die "$CHECKPOINT is not a Hugging Face checkpoint folder (config.json, tokenizer.json, *.safetensors)"
  [ -f "$CONVERT" ] || die "no $CONVERT: git clone --depth 1 --branch v$TRTLLM_VERSION https://github.com/NVIDIA/TensorRT-LLM.git $TRTLLM_SRC"
  command -v trtllm-build >/dev/null || die "trtllm-build not found: run inside the serving image (deploy/gpu/Dockerfile)"
  have=$(python3 -c "import tensorrt_llm; print(tensorrt_llm.__version__)" 2>/dev/null | tail -n1 || true)
  [ "$have" = "$TRTLLM_VERSION" ] || echo "warning: TensorRT-LLM $have here, the serving image has $TRTLLM_VERSION; engines only run on the version that built them" >&2
fi

run python3 "$CONVERT" \
  --model_dir "$CHECKPOINT" \
  --output_dir "$WORKDIR" \
  --dtype "$DTYPE" \
  --tp_size "$TP" \
  --pp_size "$PP"

run trtllm-build \
  --checkpoint_dir "$WORKDIR" \
  --output_dir "$OUT" \
  --gemm_plugin auto \
  --gpt_attention_plugin auto \
  --kv_cache_type paged \
  --use_paged_context_fmha enable \
  --remove_input_padding enable \
  --context_fmha enable \
  --max_beam_width 1 \
  --max_batch_size "$MAX_BATCH_SIZE" \
  --max_input_len "$MAX_INPUT_LEN" \
  --max_seq_len "$MAX_SEQ_LEN" \
  --max_num_tokens "$MAX_NUM_TOKENS" \
  --workers "$WORLD_SIZE"

echo "engine: $OUT ($WORLD_SIZE GPU(s)); next: make deploy TARGET=gpu ENGINE_DIR=$OUT CHECKPOINT_DIR=$CHECKPOINT"
