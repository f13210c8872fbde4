"""Render the GPU deployment bundle from the one source repository (`python -m deploy.gpu` is its CLI).

The GPU target is the CPU repository with two models swapped:
- `tensorrt_llm`: TensorRT-LLM's own backend (deploy/gpu/tensorrt_llm/config.pbtxt) instead of the
  CPU stand-in, its batch size and parameters taken from the engine's config.json and CLI flags;
- `length_predictor`: the ONNX Runtime backend with the TensorRT accelerator
  (deploy/gpu/length_predictor/onnxruntime_trt.pbtxt, `--predictor-variant onnx`) or a TensorRT plan
  (deploy/gpu/length_predictor/tensorrt_plan.pbtxt, `plan`) instead of the python model.
  Its batch size and TensorRT profile come from predictor_profile, its GPU from placement.
`preprocessing`, `ltr_scheduler`, `postprocessing`, `ensemble` and `ltr_bls` (the BLS entry point)
keep their files; only config parameters change (tokenizer = the mounted checkpoint, max_inflight =
the engine's batch capacity, prompt limits = the engine's).

Output (`--out`, default build/gpu/), self-contained so it can be copied to a GPU box:
  model_repository/   what tritonserver serves inside the container (files copied, no symlinks)
  python/             the project packages the python models import (scheduler, runtime)
  serve.sh            runs tritonserver inside the container (mpirun with one rank per GPU when TP > 1)
  docker_run.sh       the `docker build` + `docker run` commands for this bundle (bundle, engine and checkpoint
                      mounted read-only; the predictor's TensorRT engine cache read-write)
Missing GPU-built artefacts (engine, fp32 ONNX, plan) become MISSING_*.txt files naming the command
that produces them. Nothing here needs a GPU; nothing has been run on one (see docs/gpu.md).
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deploy.capacity import EngineLimits, choose_max_inflight
from deploy.config_checks import llm_interface_problems, repository_problems
from deploy.gpu.placement import (
    DEFAULT_GPU_MEMORY_GIB,
    Placement,
    choose_predictor_gpu,
    engine_weights_gib_per_gpu,
)
from deploy.gpu.predictor_profile import CONTAINER_TRT_CACHE, PredictorProfile
from deploy.gpu.trtllm_parameters import config_parameters, load_template_parameters
from deploy.repository import (
    IGNORED,
    model_dirs,
    read_config,
    render_repository,
    set_parameters,
    write_config,
)
from repo_paths import BUILD_DIR, REPO_ROOT, SOURCE_REPOSITORY

# One coherent pair (Triton compatibility matrix): 25.10-trtllm-python-py3 ships TensorRT-LLM 1.0.0,
# TensorRT 10.11.0.33, CUDA 12.9.1, Python 3.12.3. Engines must be built with the same TensorRT-LLM.
TRITON_TRTLLM_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-trtllm-python-py3"
TENSORRT_LLM_VERSION = "1.0.0"
SERVING_IMAGE = "ltr-serving-gpu:25.10"  # built from deploy/gpu/Dockerfile on top of TRITON_TRTLLM_IMAGE
CONTAINER_NAME = "ltr-serving-gpu"

GPU_SOURCES = Path(__file__).resolve().parent  # the GPU-only configs and the Dockerfile live beside this code
DOCKERFILE = GPU_SOURCES / "Dockerfile"
TENSORRT_LLM_CONFIG = GPU_SOURCES / "tensorrt_llm" / "config.pbtxt"
PredictorVariant = Literal["onnx", "plan"]
PREDICTOR_CONFIGS: dict[str, Path] = {
    "onnx": GPU_SOURCES / "length_predictor" / "onnxruntime_trt.pbtxt",
    "plan": GPU_SOURCES / "length_predictor" / "tensorrt_plan.pbtxt",
}
PREDICTOR_MODEL_FILES = {"onnx": "model.onnx", "plan": "model.plan"}
PREDICTOR_SIDE_FILES = ("tokenizer.json", "predictor.json")  # read by preprocessing from the sibling model
DEFAULT_PREDICTOR_ARTIFACTS = BUILD_DIR / "gpu_artifacts" / "length_predictor" / "1"
DEFAULT_PREDICTOR_CACHE = BUILD_DIR / "gpu_cache" / "length_predictor_trt"  # host side of CONTAINER_TRT_CACHE
SHARED_MODELS = ("ensemble", "ltr_bls", "ltr_scheduler", "postprocessing", "preprocessing")
GPU_MODELS = ("length_predictor", "tensorrt_llm")
RUNTIME_PACKAGES = ("scheduler", "runtime")  # the python models import nothing else (tests/test_layout.py)
RUNTIME_MODULES = ("repo_paths.py",)  # imported by runtime for its CPU defaults

# Paths inside the container (docker_run.sh mounts the host folders there, read-only).
CONTAINER_BUNDLE = "/opt/ltr"
CONTAINER_ENGINE = "/engines/llm"
CONTAINER_CHECKPOINT = "/models/hf"

BatchSchedulerPolicy = Literal["guaranteed_no_evict", "max_utilization"]
MISSING_PREFIX = "MISSING_"


@dataclass(frozen=True)
class GpuSettings:
    engine_dir: Path  # host folder of the engine (rank*.engine + config.json)
    checkpoint_dir: Path  # host folder of the Hugging Face checkpoint (tokenizer.json)
    limits: EngineLimits = field(default_factory=EngineLimits)
    policy: str = "ltr"
    predictor_variant: PredictorVariant = "onnx"
    predictor_artifacts: Path = DEFAULT_PREDICTOR_ARTIFACTS
    batch_scheduler_policy: BatchSchedulerPolicy = "guaranteed_no_evict"
    kv_cache_free_gpu_mem_fraction: float = 0.9
    enable_chunked_context: bool = True
    max_inflight: int | None = None  # None: choose_max_inflight
    kv_cache_tokens: int | None = None
    tokens_per_request: int | None = None
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    publish_address: str = "127.0.0.1"
    image: str = SERVING_IMAGE
    predictor_gpu: int | None = None  # None: choose_predictor_gpu
    gpu_memory_gib: float = DEFAULT_GPU_MEMORY_GIB
    predictor_cache_dir: Path = DEFAULT_PREDICTOR_CACHE  # TensorRT engine + timing caches, kept across restarts
    enable_kv_cache_reuse: bool = True  # chat prompts share the template's prefix (docs/gpu.md, engine settings)
    cuda_graphs: bool = True  # cuda_graph_mode, one graph cached per batch size
    recv_poll_period_ms: int = 1  # world size > 1 only: ranks sleep between polls instead of busy-looping

    @property
    def placement(self) -> Placement:
        gpu = self.predictor_gpu if self.predictor_gpu is not None else choose_predictor_gpu(self.limits.world_size)
        if not 0 <= gpu < self.limits.world_size:
            raise ValueError(f"predictor GPU {gpu} is not one of the engine's {self.limits.world_size} GPU(s)")
        return Placement(gpu, self.kv_cache_free_gpu_mem_fraction, self.gpu_memory_gib,
                         engine_weights_gib_per_gpu(self.engine_dir, self.limits.world_size))

    @property
    def inflight(self) -> int:
        if self.max_inflight is not None:
            return self.max_inflight
        return choose_max_inflight(self.limits, self.batch_scheduler_policy, self.kv_cache_tokens, self.tokens_per_request)

    def overrides(self) -> dict[str, dict[str, str]]:
        """Parameters of the shared models on GPU (everything else is the CPU file)."""
        return {
            "preprocessing": {
                "tokenizer_path": CONTAINER_CHECKPOINT,
                "max_input_len": str(self.limits.max_input_len),
                "max_output_len": str(self.limits.max_output_len),
            },
            "postprocessing": {"tokenizer_path": CONTAINER_CHECKPOINT},
            "ltr_bls": {"tokenizer_path": CONTAINER_CHECKPOINT},  # its text is postprocessing's
            # tokenizer_path: the request log's prompt text (without it, the log cannot start on GPU)
            "ltr_scheduler": {"policy": self.policy, "max_inflight": str(self.inflight),
                              "tokenizer_path": CONTAINER_CHECKPOINT},
            "tensorrt_llm": {
                "gpt_model_path": CONTAINER_ENGINE,
                "batch_scheduler_policy": self.batch_scheduler_policy,
                "kv_cache_free_gpu_mem_fraction": f"{self.placement.kv_fraction:.2f}",
                "enable_chunked_context": str(self.enable_chunked_context).lower(),
                "enable_kv_cache_reuse": str(self.enable_kv_cache_reuse).lower(),
                "cuda_graph_mode": str(self.cuda_graphs).lower(),
                "cuda_graph_cache_size": str(self.limits.max_batch_size if self.cuda_graphs else 0),
                "recv_poll_period_ms": str(self.recv_poll_period_ms if self.limits.world_size > 1 else 0),
            },
        }


def engine_build_command(settings: GpuSettings) -> str:
    limits = settings.limits
    model = "70b" if limits.world_size > 1 else "8b"
    return (
        f"export/build_llm_engine.sh --model {model} --tp {limits.world_size} --checkpoint {settings.checkpoint_dir} "
        f"--out {settings.engine_dir} --max-batch-size {limits.max_batch_size} "
        f"--max-input-len {limits.max_input_len} --max-seq-len {limits.max_seq_len}"
    )


def predictor_build_command(artifacts: Path) -> str:
    return f"export/build_predictor_plan.sh model_repository/length_predictor/1 {_rel(artifacts)}"


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _placeholder(path: Path, what: str, command: str) -> None:
    path.write_text(f"{what} is not here yet. Produce it with:\n\n    {command}\n\nthen render again (make deploy TARGET=gpu).\n")


def _render_tensorrt_llm(dest: Path, settings: GpuSettings) -> None:
    out = dest / "tensorrt_llm"
    (out / "1").mkdir(parents=True)  # the backend needs a version folder; the engine is mounted
    config = read_config(TENSORRT_LLM_CONFIG)
    config.max_batch_size = settings.limits.max_batch_size
    set_parameters(config, settings.overrides()["tensorrt_llm"])
    write_config(config, out / "config.pbtxt")
    if not (Path(settings.engine_dir) / "config.json").is_file():
        _placeholder(out / f"{MISSING_PREFIX}engine.txt", f"The TensorRT-LLM engine ({settings.engine_dir})",
                     engine_build_command(settings))


def predictor_config(settings: GpuSettings, source: Path = SOURCE_REPOSITORY):
    """The variant's config with the numbers that must agree elsewhere filled in: batch size and
    TensorRT profile from PredictorProfile (what preprocessing sends), the pinned GPU."""
    profile = PredictorProfile.from_repository(source)
    config = read_config(PREDICTOR_CONFIGS[settings.predictor_variant])
    config.max_batch_size = profile.max_batch
    for group in config.instance_group:
        del group.gpus[:]
        group.gpus.append(settings.placement.predictor_gpu)
    if settings.predictor_variant == "onnx":
        (tensorrt,) = [a for a in config.optimization.execution_accelerators.gpu_execution_accelerator if a.name == "tensorrt"]
        tensorrt.parameters.update(profile.ort_tensorrt_parameters())
    return config


def _render_length_predictor(dest: Path, source: Path, settings: GpuSettings) -> None:
    variant = settings.predictor_variant
    out = dest / "length_predictor"
    version = out / "1"
    version.mkdir(parents=True)
    write_config(predictor_config(settings, source), out / "config.pbtxt")
    cpu_version = source / "length_predictor" / "1"
    for name in PREDICTOR_SIDE_FILES:
        if (cpu_version / name).is_file():
            shutil.copy2(cpu_version / name, version / name)
        else:
            _placeholder(version / f"{MISSING_PREFIX}{name}.txt", f"The predictor's {name}",
                         "python -m predictor.export --checkpoint build/predictor/checkpoint --version 1")
    model_file = PREDICTOR_MODEL_FILES[variant]
    built = Path(settings.predictor_artifacts) / model_file
    if built.is_file():
        shutil.copy2(built, version / model_file)
    else:
        what = "The fp32 predictor ONNX" if variant == "onnx" else "The predictor's TensorRT plan (build it on the serving GPU)"
        _placeholder(version / f"{MISSING_PREFIX}{model_file}.txt", what, predictor_build_command(settings.predictor_artifacts))


def serve_script(settings: GpuSettings) -> str:
    """tritonserver inside the container; with TP > 1 one MPI rank per GPU, as TensorRT-LLM's
    launch_triton_server.py does (ranks > 0 load only tensorrt_llm)."""
    ports = f"--http-port={settings.http_port} --grpc-port={settings.grpc_port} --metrics-port={settings.metrics_port}"
    return f"""#!/usr/bin/env bash
# Runs inside {settings.image} (see docker_run.sh). Rendered by deploy/gpu/bundle.py; do not edit.
set -euo pipefail
WORLD_SIZE={settings.limits.world_size}
REPO={CONTAINER_BUNDLE}/model_repository
export PYTHONPATH={CONTAINER_BUNDLE}/python${{PYTHONPATH:+:$PYTHONPATH}}
python3 -c "import repo_paths, scheduler, runtime, tokenizers" || {{ echo "project packages not importable from {CONTAINER_BUNDLE}/python" >&2; exit 1; }}
COMMON="--model-repository=$REPO --disable-auto-complete-config {ports}"
if [ "$WORLD_SIZE" -eq 1 ]; then
  exec tritonserver $COMMON --backend-config=python,shm-region-prefix-name=prefix0_
fi
ARGS=(mpirun --allow-run-as-root)
for ((rank = 0; rank < WORLD_SIZE; rank++)); do
  if [ "$rank" -gt 0 ]; then ARGS+=(:); fi
  ARGS+=(-n 1 tritonserver $COMMON --backend-config=python,shm-region-prefix-name=prefix${{rank}}_)
  if [ "$rank" -gt 0 ]; then ARGS+=(--model-control-mode=explicit --load-model=tensorrt_llm); fi
done
exec "${{ARGS[@]}}"
"""


def docker_commands(settings: GpuSettings, bundle: Path) -> list[list[str]]:
    """`docker build` of the serving image, then `docker run` with bundle, engine and checkpoint mounted."""
    publish = []
    for port in (settings.http_port, settings.grpc_port, settings.metrics_port):
        publish += ["-p", f"{settings.publish_address}:{port}:{port}"]
    build = ["docker", "build", "-t", settings.image, "-f", str(DOCKERFILE), str(GPU_SOURCES)]
    run = [
        "docker", "run", "-d", "--name", CONTAINER_NAME, "--gpus", "all", "--ipc=host",
        "--ulimit", "memlock=-1", "--ulimit", "stack=67108864", *publish,
        "-v", f"{Path(bundle).resolve()}:{CONTAINER_BUNDLE}:ro",
        "-v", f"{Path(settings.engine_dir).resolve()}:{CONTAINER_ENGINE}:ro",
        "-v", f"{Path(settings.checkpoint_dir).resolve()}:{CONTAINER_CHECKPOINT}:ro",
        "-v", f"{Path(settings.predictor_cache_dir).resolve()}:{CONTAINER_TRT_CACHE}",
        settings.image, "bash", f"{CONTAINER_BUNDLE}/serve.sh",
    ]
    return [build, run]


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def render_gpu_bundle(dest: Path, settings: GpuSettings, source: Path = SOURCE_REPOSITORY) -> Path:
    """Write the bundle to `dest` (replacing it); deterministic for the same inputs."""
    unplaced = {p.name for p in model_dirs(Path(source))} - set(SHARED_MODELS) - set(GPU_MODELS)
    if unplaced:  # a model added on CPU must be placed on GPU too, not silently dropped
        raise ValueError(f"models {sorted(unplaced)} are neither shared with nor replaced on the GPU target")
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    repo = render_repository(dest / "model_repository", settings.overrides(), Path(source), models=SHARED_MODELS, copy=True)
    _render_tensorrt_llm(repo, settings)
    _render_length_predictor(repo, Path(source), settings)
    for package in RUNTIME_PACKAGES:
        shutil.copytree(REPO_ROOT / package, dest / "python" / package, ignore=IGNORED)
    for module in RUNTIME_MODULES:
        shutil.copy2(REPO_ROOT / module, dest / "python" / module)
    _write_executable(dest / "serve.sh", serve_script(settings))
    commands = "\n".join(shlex.join(cmd) for cmd in docker_commands(settings, dest))
    _write_executable(dest / "docker_run.sh", f"#!/usr/bin/env bash\n# Rendered by deploy/gpu/bundle.py.\nset -euxo pipefail\n{commands}\n")
    return dest


def bundle_problems(bundle: Path, source: Path = SOURCE_REPOSITORY) -> list[str]:
    """Static checks of the rendered repository: configs, ensemble wiring, and the LLM interface the
    scheduler relies on (GPU tensorrt_llm against the CPU stand-in)."""
    repo = Path(bundle) / "model_repository"
    cpu_llm = read_config(source / "tensorrt_llm" / "config.pbtxt")
    gpu_llm = read_config(repo / "tensorrt_llm" / "config.pbtxt")
    template = load_template_parameters()
    return (repository_problems(repo) + llm_interface_problems(cpu_llm, gpu_llm)
            + template.problems(config_parameters(gpu_llm)) + predictor_placement_problems(repo))


def predictor_placement_problems(repo: Path) -> list[str]:
    """Every GPU instance of the predictor names its GPU (else Triton starts one per visible GPU)."""
    config = read_config(Path(repo) / "length_predictor" / "config.pbtxt")
    return [f"length_predictor instance group {i} is KIND_GPU without `gpus`" for i, group in
            enumerate(config.instance_group) if group.kind == group.KIND_GPU and not group.gpus]


def missing_artifacts(bundle: Path) -> list[Path]:
    return sorted(Path(bundle).rglob(f"{MISSING_PREFIX}*.txt"))
