"""Rendering the GPU bundle: deterministic, complete (every model has its version folder and the
files its platform needs, or a placeholder naming the command), shared models unchanged but for
parameters, limits from the engine's config.json, and the serve/docker commands consistent with the
configs. No server, no Docker."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.capacity import EngineLimits
from deploy.config_checks import load_repository
from deploy.gpu.bundle import (
    CONTAINER_BUNDLE,
    CONTAINER_CHECKPOINT,
    CONTAINER_ENGINE,
    DOCKERFILE,
    MISSING_PREFIX,
    SHARED_MODELS,
    TRITON_TRTLLM_IMAGE,
    GpuSettings,
    bundle_problems,
    docker_commands,
    render_gpu_bundle,
)
from deploy.gpu.predictor_profile import CONTAINER_TRT_CACHE
from deploy.repository import read_config
from repo_paths import SOURCE_REPOSITORY
from tests.deploy.gpu.helpers import write_engine
from tests.import_graph import TOP_LEVEL, import_graph

# What each platform needs in its version folder besides config.pbtxt.
PLATFORM_FILES = {"python": ["model.py"], "onnxruntime_onnx": ["model.onnx"], "tensorrt_plan": ["model.plan"],
                  "ensemble": [], "tensorrtllm": []}


def local_settings(tmp_path: Path, **changes) -> GpuSettings:
    """Settings that see nothing of this checkout's build/ (no engine, no built predictor files)."""
    defaults = {"engine_dir": tmp_path / "engine", "checkpoint_dir": tmp_path / "hf",
                "predictor_artifacts": tmp_path / "no_artifacts", "predictor_cache_dir": tmp_path / "trt_cache"}
    return GpuSettings(**{**defaults, **changes})


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip
    }


def params(repo: Path, model: str) -> dict[str, str]:
    return {k: v.string_value for k, v in read_config(repo / model / "config.pbtxt").parameters.items()}


@pytest.mark.parametrize("variant", ["onnx", "plan"])
def test_render_is_deterministic(tmp_path, variant):
    settings = local_settings(tmp_path, predictor_variant=variant)
    first = tree_digest(render_gpu_bundle(tmp_path / "a", settings))
    assert first == tree_digest(render_gpu_bundle(tmp_path / "a", settings))
    # Elsewhere only docker_run.sh differs (it names the bundle's own path).
    assert {k: v for k, v in first.items() if k != "docker_run.sh"} == tree_digest(
        render_gpu_bundle(tmp_path / "b", settings), skip=("docker_run.sh",))


@pytest.mark.parametrize("variant", ["onnx", "plan"])
def test_rendered_repository_is_complete(tmp_path, variant):
    bundle = render_gpu_bundle(tmp_path / "b", local_settings(tmp_path, predictor_variant=variant))
    repo = bundle / "model_repository"
    configs, problems = load_repository(repo)
    assert problems == [] and len(configs) == 7
    for name, config in configs.items():
        version = repo / name / "1"
        assert version.is_dir(), f"{name} has no version folder"
        assert not any(p.is_symlink() for p in (repo / name).rglob("*")), "the bundle is mounted elsewhere: no links"
        for needed in PLATFORM_FILES[config.backend or config.platform]:
            placeholder = version / f"{MISSING_PREFIX}{needed}.txt"
            assert (version / needed).is_file() or "export/" in placeholder.read_text(), f"{name}: {needed}"
    # preprocessing reads the predictor tokenizer from the sibling length_predictor version folder
    for needed in ("tokenizer.json", "predictor.json"):
        assert (repo / "length_predictor" / "1" / needed).is_file() or (
            repo / "length_predictor" / "1" / f"{MISSING_PREFIX}{needed}.txt").is_file()
    # no engine here: a placeholder names the build command
    assert "export/build_llm_engine.sh" in (repo / "tensorrt_llm" / f"{MISSING_PREFIX}engine.txt").read_text()
    assert not list(bundle.rglob("__pycache__"))
    assert_python_models_import_from(bundle / "python")
    assert bundle_problems(bundle) == []


def test_shared_models_are_the_cpu_files_with_gpu_parameters(tmp_path):
    settings = local_settings(tmp_path, policy="fcfs")
    repo = render_gpu_bundle(tmp_path / "b", settings) / "model_repository"
    for name in SHARED_MODELS:
        gpu, cpu = read_config(repo / name / "config.pbtxt"), read_config(SOURCE_REPOSITORY / name / "config.pbtxt")
        assert set(gpu.parameters) == set(cpu.parameters)
        gpu.ClearField("parameters")
        cpu.ClearField("parameters")
        assert gpu == cpu, name
        for src in (SOURCE_REPOSITORY / name).rglob("*.py"):
            assert (repo / name / src.relative_to(SOURCE_REPOSITORY / name)).read_bytes() == src.read_bytes()
    assert params(repo, "preprocessing")["tokenizer_path"] == CONTAINER_CHECKPOINT
    assert params(repo, "postprocessing")["tokenizer_path"] == CONTAINER_CHECKPOINT
    assert params(repo, "ltr_bls")["tokenizer_path"] == CONTAINER_CHECKPOINT
    assert params(repo, "ltr_scheduler")["policy"] == "fcfs"
    assert params(repo, "tensorrt_llm")["gpt_model_path"] == CONTAINER_ENGINE


def test_every_model_that_loads_the_tokenizer_gets_the_mounted_checkpoint(tmp_path):
    """The container has no build/tokenizer/tokenizer.model: a model whose code loads the Llama-3
    tokenizer (the scheduler does for its request log) must be told the checkpoint's folder."""
    repo = render_gpu_bundle(tmp_path / "b", local_settings(tmp_path)) / "model_repository"
    loading = {name for name in SHARED_MODELS
               if any("load_tokenizer" in src.read_text() for src in (SOURCE_REPOSITORY / name).rglob("*.py"))}
    assert {"preprocessing", "postprocessing", "ltr_bls", "ltr_scheduler"} <= loading
    for name in loading:
        assert params(repo, name).get("tokenizer_path") == CONTAINER_CHECKPOINT, name


def test_limits_follow_the_engine(tmp_path):
    engine = write_engine(tmp_path / "engine", max_batch_size=32, max_input_len=2048, max_seq_len=4096, tp=2)
    limits = EngineLimits.from_engine_dir(engine)
    assert limits == EngineLimits(32, 2048, 4096, 2)
    settings = local_settings(tmp_path, engine_dir=engine, limits=limits, batch_scheduler_policy="max_utilization",
                              kv_cache_free_gpu_mem_fraction=0.85)
    bundle = render_gpu_bundle(tmp_path / "b", settings)
    repo = bundle / "model_repository"
    assert params(repo, "ltr_scheduler")["max_inflight"] == "32"
    assert read_config(repo / "tensorrt_llm" / "config.pbtxt").max_batch_size == 32
    assert params(repo, "tensorrt_llm")["batch_scheduler_policy"] == "max_utilization"
    # 0.85 less the predictor's share of the free memory (deploy/gpu/placement.py, tests/deploy/gpu/test_placement.py)
    assert params(repo, "tensorrt_llm")["kv_cache_free_gpu_mem_fraction"] == f"{settings.placement.kv_fraction:.2f}"
    assert settings.placement.kv_fraction < 0.85
    assert params(repo, "preprocessing")["max_input_len"] == "2048"
    assert params(repo, "preprocessing")["max_output_len"] == "2048"  # 4096 - 2048: any prompt + max_tokens fits
    assert not (repo / "tensorrt_llm" / f"{MISSING_PREFIX}engine.txt").exists()
    assert "WORLD_SIZE=2" in (bundle / "serve.sh").read_text()


def test_built_predictor_artifacts_are_copied_in(tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "model.onnx").write_bytes(b"onnx")
    (artifacts / "model.plan").write_bytes(b"plan")
    for variant, name in (("onnx", "model.onnx"), ("plan", "model.plan")):
        settings = local_settings(tmp_path, predictor_variant=variant, predictor_artifacts=artifacts)
        version = render_gpu_bundle(tmp_path / variant, settings) / "model_repository" / "length_predictor" / "1"
        assert (version / name).read_bytes() == name.split(".")[1].encode()
        assert not (version / f"{MISSING_PREFIX}{name}.txt").exists()


def test_docker_commands_match_the_configs(tmp_path):
    settings = local_settings(tmp_path)
    bundle = render_gpu_bundle(tmp_path / "b", settings)
    build, run = docker_commands(settings, bundle)
    assert build[:2] == ["docker", "build"] and str(DOCKERFILE) in build
    froms = re.findall(r"^ARG TRTLLM_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M)
    assert froms == [TRITON_TRTLLM_IMAGE] and not TRITON_TRTLLM_IMAGE.endswith(":latest")
    mounts = {run[i + 1].split(":")[1]: run[i + 1].split(":")[0] for i, arg in enumerate(run) if arg == "-v"}
    assert mounts == {CONTAINER_BUNDLE: str(bundle.resolve()), CONTAINER_ENGINE: str((tmp_path / "engine").resolve()),
                      CONTAINER_CHECKPOINT: str((tmp_path / "hf").resolve()),
                      CONTAINER_TRT_CACHE: str((tmp_path / "trt_cache").resolve())}
    writable = [run[i + 1] for i, arg in enumerate(run) if arg == "-v" and not run[i + 1].endswith(":ro")]
    assert writable == [f"{(tmp_path / 'trt_cache').resolve()}:{CONTAINER_TRT_CACHE}"]  # only the engine cache
    assert run[-2:] == ["bash", f"{CONTAINER_BUNDLE}/serve.sh"] and "--gpus" in run
    assert os.access(bundle / "docker_run.sh", os.X_OK) and (bundle / "serve.sh").stat().st_mode & stat.S_IXUSR


def _fake_bin(tmp_path: Path) -> dict[str, str]:
    """tritonserver / mpirun / python3 stand-ins that print their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("tritonserver", "mpirun"):
        (bin_dir / name).write_text(f'#!/usr/bin/env bash\necho {name} "$@"\n')
        (bin_dir / name).chmod(0o755)
    (bin_dir / "python3").write_text("#!/usr/bin/env bash\nexit 0\n")
    (bin_dir / "python3").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}


@pytest.mark.parametrize("tp", [1, 4])
def test_serve_script_launches_one_rank_per_gpu(tmp_path, tp):
    settings = local_settings(tmp_path, limits=EngineLimits(world_size=tp))
    bundle = render_gpu_bundle(tmp_path / "b", settings)
    out = subprocess.run(["bash", str(bundle / "serve.sh")], env=_fake_bin(tmp_path), capture_output=True, text=True,
                         check=True).stdout
    assert f"--model-repository={CONTAINER_BUNDLE}/model_repository" in out
    assert "--disable-auto-complete-config" in out and "--http-port=8000" in out
    if tp == 1:
        assert out.startswith("tritonserver ") and "mpirun" not in out
    else:
        ranks = out.split(" : ")
        assert out.startswith("mpirun --allow-run-as-root -n 1 tritonserver") and len(ranks) == tp
        assert "--load-model" not in ranks[0]  # rank 0 serves every model
        assert all("--model-control-mode=explicit --load-model=tensorrt_llm" in r for r in ranks[1:])
        assert all(f"shm-region-prefix-name=prefix{i}_" in r for i, r in enumerate(ranks))


def test_a_model_added_on_cpu_is_not_silently_dropped_on_gpu(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(SOURCE_REPOSITORY, source, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
    shutil.copytree(source / "postprocessing", source / "new_model")
    with pytest.raises(ValueError, match="new_model"):
        render_gpu_bundle(tmp_path / "b", local_settings(tmp_path), source=source)


def assert_python_models_import_from(python_dir: Path) -> None:
    """Every project module a shared python model imports loads from the bundle alone (PYTHONPATH
    comes before the checkout's editable install, so a module missing there would show up here)."""
    graph = import_graph()
    modules = sorted({target for module, targets in graph.items() if module.startswith("model_repository.")
                      for target in targets if not target.startswith("engine")})  # the stand-in stays on CPU
    assert "runtime.relay" in modules
    code = ("import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
            f"print(*[m.__file__ for n, m in sys.modules.items() if n.split('.')[0] in {sorted(TOP_LEVEL)}])")
    loaded = subprocess.run([sys.executable, "-c", code, *modules], cwd=python_dir, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(python_dir)}, check=True).stdout.split()
    assert len(loaded) >= len(modules)
    assert [f for f in loaded if not Path(f).is_relative_to(python_dir)] == []  # transitive imports too


def test_engine_settings_worth_having_on_a_gpu(tmp_path):
    """KV-cache block reuse and CUDA graphs on by default; with tensor parallelism the ranks poll for
    requests every recv_poll_period_ms instead of busy-looping; every one can be turned off; each
    rendering passes the template check (deploy/gpu/trtllm_parameters.py) both ways."""
    tp1 = local_settings(tmp_path)
    engine = write_engine(tmp_path / "engine8", max_batch_size=48, tp=8)
    tp8 = local_settings(tmp_path, engine_dir=engine, limits=EngineLimits.from_engine_dir(engine))
    off = local_settings(tmp_path, engine_dir=engine, limits=EngineLimits.from_engine_dir(engine),
                         enable_kv_cache_reuse=False, cuda_graphs=False, recv_poll_period_ms=0)
    rendered = {}
    for name, settings in (("tp1", tp1), ("tp8", tp8), ("off", off)):
        bundle = render_gpu_bundle(tmp_path / name, settings)
        assert bundle_problems(bundle) == [], name
        rendered[name] = params(bundle / "model_repository", "tensorrt_llm")
    keys = ("enable_kv_cache_reuse", "cuda_graph_mode", "cuda_graph_cache_size", "recv_poll_period_ms")
    assert [rendered["tp1"][k] for k in keys] == ["true", "true", str(tp1.limits.max_batch_size), "0"]
    assert [rendered["tp8"][k] for k in keys] == ["true", "true", "48", "1"]
    assert [rendered["off"][k] for k in keys] == ["false", "false", "0", "0"]
    assert rendered["tp1"]["enable_chunked_context"] == "true"  # reuse and chunking both need paged context FMHA
