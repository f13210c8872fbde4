"""`make deploy TARGET=gpu`: render the GPU bundle, check it, print (and where possible run) the
docker commands.

    python -m deploy.gpu --engine-dir build/engines/llama3-8b-instruct \
        --checkpoint-dir /data/Meta-Llama-3-8B-Instruct [--predictor-variant onnx|plan] [--run auto|never]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import get_args

from deploy.capacity import EngineLimits
from deploy.gpu.bundle import (
    CONTAINER_CHECKPOINT,
    CONTAINER_ENGINE,
    CONTAINER_NAME,
    DEFAULT_PREDICTOR_ARTIFACTS,
    DEFAULT_PREDICTOR_CACHE,
    PREDICTOR_CONFIGS,
    TENSORRT_LLM_VERSION,
    TRITON_TRTLLM_IMAGE,
    BatchSchedulerPolicy,
    GpuSettings,
    PredictorVariant,
    bundle_problems,
    docker_commands,
    missing_artifacts,
    render_gpu_bundle,
)
from deploy.gpu.follow import describe, follow_container
from repo_paths import BUILD_DIR, REPO_ROOT
from scheduler import POLICY_NAMES


def gpu_host_ready() -> bool:
    """Docker engine and an NVIDIA GPU both answer (false on the CPU build machines)."""
    if not (shutil.which("docker") and shutil.which("nvidia-smi")):
        return False
    probes = (["docker", "info"], ["nvidia-smi", "-L"])
    return all(subprocess.run(p, capture_output=True, timeout=30).returncode == 0 for p in probes)


def wait_until_ready(timeout_s: float, follow=follow_container) -> int:
    """Follow the container's log to a verdict: 0 when ready, 1 (with the failure printed) otherwise."""
    print(f"Following the log of {CONTAINER_NAME} until ready (at most {timeout_s:g} s):")
    outcome = follow(CONTAINER_NAME, timeout_s, echo=lambda line: print(f"  | {line}"))
    print(describe(outcome, CONTAINER_NAME, timeout_s), file=sys.stdout if outcome.status == "ready" else sys.stderr)
    return 0 if outcome.status == "ready" else 1


def _settings_from_args(args: argparse.Namespace) -> GpuSettings:
    engine_limits = EngineLimits.from_engine_dir(Path(args.engine_dir))
    given = {k: getattr(args, k) for k in ("max_batch_size", "max_input_len", "max_seq_len", "world_size")}
    if engine_limits is not None:
        for key, value in given.items():
            if value is not None and value != getattr(engine_limits, key):
                raise SystemExit(f"--{key.replace('_', '-')} {value} disagrees with the engine's config.json "
                                 f"({getattr(engine_limits, key)}); leave it out to use the engine's value")
        limits = engine_limits
    else:
        defaults = EngineLimits()
        limits = EngineLimits(**{k: v if v is not None else getattr(defaults, k) for k, v in given.items()})
    return GpuSettings(
        engine_dir=Path(args.engine_dir), checkpoint_dir=Path(args.checkpoint_dir), limits=limits,
        policy=args.policy, predictor_variant=args.predictor_variant, predictor_artifacts=Path(args.predictor_artifacts),
        batch_scheduler_policy=args.batch_scheduler_policy,
        kv_cache_free_gpu_mem_fraction=args.kv_cache_free_gpu_mem_fraction,
        enable_chunked_context=args.enable_chunked_context == "true", max_inflight=args.max_inflight,
        kv_cache_tokens=args.kv_cache_tokens, tokens_per_request=args.tokens_per_request,
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
        publish_address=args.publish_address, predictor_gpu=args.predictor_gpu, gpu_memory_gib=args.gpu_memory_gib,
        predictor_cache_dir=Path(args.predictor_cache_dir),
        enable_kv_cache_reuse=not args.no_kv_cache_reuse, cuda_graphs=not args.no_cuda_graphs,
        recv_poll_period_ms=args.recv_poll_period_ms,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(BUILD_DIR / "gpu"))
    p.add_argument("--engine-dir", default=str(BUILD_DIR / "engines" / "llama3-8b-instruct"))
    p.add_argument("--checkpoint-dir", default=str(BUILD_DIR / "hf" / "Meta-Llama-3-8B-Instruct"),
                   help="Hugging Face checkpoint folder; its tokenizer.json serves preprocessing/postprocessing")
    p.add_argument("--policy", default="ltr", choices=list(POLICY_NAMES))
    p.add_argument("--predictor-variant", choices=get_args(PredictorVariant), default="onnx")
    p.add_argument("--predictor-artifacts", default=str(DEFAULT_PREDICTOR_ARTIFACTS),
                   help="folder where export/build_predictor_plan.sh wrote model.onnx (fp32) / model.plan")
    p.add_argument("--max-batch-size", type=int, help="engine max_batch_size (read from config.json when built)")
    p.add_argument("--max-input-len", type=int)
    p.add_argument("--max-seq-len", type=int)
    p.add_argument("--world-size", type=int, help="GPUs the engine spans (tp * pp)")
    p.add_argument("--batch-scheduler-policy", choices=get_args(BatchSchedulerPolicy),
                   default="guaranteed_no_evict")
    p.add_argument("--kv-cache-free-gpu-mem-fraction", type=float, default=0.9)
    p.add_argument("--enable-chunked-context", choices=["true", "false"], default="true")
    p.add_argument("--no-kv-cache-reuse", action="store_true", help="turn off KV-cache block reuse (on by default)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="turn off CUDA graphs (cuda_graph_mode, on by default)")
    p.add_argument("--recv-poll-period-ms", type=int, default=1,
                   help="with tensor parallelism: ms ranks sleep between polls for requests (0: busy loop)")
    p.add_argument("--max-inflight", type=int, help="override the scheduler's admission limit (docs/gpu.md)")
    p.add_argument("--kv-cache-tokens", type=int,
                   help="KV cache size in tokens as the server reports it; bounds max_inflight under guaranteed_no_evict")
    p.add_argument("--tokens-per-request", type=int, help="KV tokens one request reserves (default max_seq_len)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--publish-address", default="127.0.0.1", help="host address docker publishes the ports on")
    p.add_argument("--predictor-gpu", type=int, help="GPU of the predictor's one instance (default: the engine's last)")
    p.add_argument("--gpu-memory-gib", type=float, default=80.0,
                   help="memory of one GPU; with the engine's size it turns the predictor's budget into a KV fraction")
    p.add_argument("--predictor-cache-dir", default=str(DEFAULT_PREDICTOR_CACHE),
                   help="host folder for the predictor's TensorRT engine cache (mounted read-write)")
    p.add_argument("--ready-timeout", type=float, default=1800.0,
                   help="seconds to follow the container's log for readiness (engine loading takes minutes)")
    p.add_argument("--run", choices=["auto", "always", "never"], default="auto",
                   help="auto: start the container when docker and a GPU answer and nothing is missing; "
                        "always: the same, but fail (exit 1) when it cannot start (tools/gpu_smoke.sh)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = _settings_from_args(args)
    bundle = render_gpu_bundle(Path(args.out), settings)
    if problems := bundle_problems(bundle):
        print("The rendered GPU repository fails its static checks:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    build, run = docker_commands(settings, bundle)
    missing = missing_artifacts(bundle)
    print(f"Rendered the GPU bundle: {bundle}")
    print(f"  image      {TRITON_TRTLLM_IMAGE} (TensorRT-LLM {TENSORRT_LLM_VERSION}) + deploy/gpu/Dockerfile -> {settings.image}")
    print(f"  engine     {settings.engine_dir} -> {CONTAINER_ENGINE}  (max_batch_size {settings.limits.max_batch_size}, "
          f"max_input_len {settings.limits.max_input_len}, max_seq_len {settings.limits.max_seq_len}, "
          f"{settings.limits.world_size} GPU(s))")
    print(f"  tokenizer  {settings.checkpoint_dir} -> {CONTAINER_CHECKPOINT}")
    print(f"  scheduler  policy {settings.policy}, max_inflight {settings.inflight} ({settings.batch_scheduler_policy})")
    print(f"  predictor  {settings.predictor_variant} ({PREDICTOR_CONFIGS[settings.predictor_variant].relative_to(REPO_ROOT)})")
    print(f"  placement  {settings.placement.explain()}")
    if missing:
        print("\nStill to produce (on the GPU box, inside the serving image), then render again:")
        for path in missing:
            print(f"  - {path.relative_to(bundle)}: {path.read_text().splitlines()[2].strip()}")
    print("\nStart it (docs/gpu.md):")
    print(f"  {shlex.join(build)}\n  {shlex.join(run)}")
    print(f"  curl -s localhost:{settings.http_port}/v2/models/ensemble/generate_stream "
          "-d '{\"text_input\": \"Hello\", \"max_tokens\": 32, \"stream\": true}'")
    print(f"  stop: docker rm -f {CONTAINER_NAME}")
    if args.run != "never" and not missing and gpu_host_ready():
        print("\nDocker and a GPU are here: building and starting the container.")
        Path(settings.predictor_cache_dir).mkdir(parents=True, exist_ok=True)
        for cmd in (build, run):
            subprocess.run(cmd, check=True)
        return wait_until_ready(args.ready_timeout)
    if args.run != "never":
        print("\nNot started: " + ("artefacts missing." if missing else "no Docker engine with an NVIDIA GPU on this machine."),
              file=sys.stderr if args.run == "always" else sys.stdout)
    return 1 if args.run == "always" else 0


if __name__ == "__main__":
    sys.exit(main())
