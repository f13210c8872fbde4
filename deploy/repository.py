"""Render a deployable model repository from `model_repository/` with parameter overrides.

The source repository is the one source of truth; a deployment (a policy, an LLM mode, test
settings) is a rendered copy whose `config.pbtxt` files differ only in the overridden
`parameters` and whose version folders are symlinks to the source ones (no large copies).
Configs are parsed as Triton `ModelConfig` protobufs, so a typo'd model or parameter name fails
here, before the server starts. `ltr_scheduler.max_inflight=auto` is resolved here, from the engine's
capacity (`engine_max_inflight`), the same number the simulator uses by default.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Mapping

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from deploy.capacity import EngineLimits, choose_max_inflight
from repo_paths import SOURCE_REPOSITORY

Overrides = Mapping[str, Mapping[str, str]]  # model name -> parameter key -> value
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")  # never rendered or bundled


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())


def write_config(config: model_config_pb2.ModelConfig, path: Path) -> None:
    Path(path).write_text(text_format.MessageToString(config))


def set_parameters(config: model_config_pb2.ModelConfig, params: Mapping[str, object]) -> None:
    """Set existing `parameters` only: a typo'd key fails here rather than being silently ignored."""
    for key, value in params.items():
        if key not in config.parameters:
            raise KeyError(f"model {config.name} has no parameter {key!r}")
        config.parameters[key].string_value = str(value)


def source_parameters(model: str, source: Path = SOURCE_REPOSITORY) -> dict[str, str]:
    """A model's `parameters` as served by default: benchmarks and the simulator take their
    settings from here, so that they and the server cannot drift apart."""
    config = read_config(Path(source) / model / "config.pbtxt")
    return {key: value.string_value for key, value in config.parameters.items()}


def engine_max_inflight(engine_params: Mapping[str, str]) -> int:
    """How many requests the stand-in engine runs at once: its batch slots, and under
    guaranteed_no_evict no more than its KV cache holds at prompt + max_tokens each, counted at the
    engine's output limit (the generic cap clients send; chat prompts are small beside it).
    The scheduler admits this many (`choose_max_inflight`, as for the TensorRT-LLM engine)."""
    from engine.settings import EngineSettings

    s = EngineSettings.from_parameters(engine_params, environ={})
    kv_tokens = s.kv_budget_tokens or s.cost_model.kv_budget_tokens()
    limits = EngineLimits(s.max_batch_slots, s.max_input_len, s.max_input_len + s.max_output_len)
    return choose_max_inflight(limits, s.kv_policy, kv_tokens, tokens_per_request=s.max_output_len)


def served_max_inflight(overrides: Overrides | None = None, source: Path = SOURCE_REPOSITORY) -> int:
    """`ltr_scheduler.max_inflight` as a deployment with `overrides` gets it ("auto" resolved)."""
    overrides = overrides or {}
    value = {**source_parameters("ltr_scheduler", source), **overrides.get("ltr_scheduler", {})}["max_inflight"]
    if str(value).strip().lower() != "auto":
        return int(value)
    return engine_max_inflight({**source_parameters("tensorrt_llm", source), **overrides.get("tensorrt_llm", {})})


def model_dirs(repository: Path) -> list[Path]:
    return sorted(p for p in Path(repository).iterdir() if (p / "config.pbtxt").is_file())


def render_repository(
    dest: Path,
    overrides: Overrides | None = None,
    source: Path = SOURCE_REPOSITORY,
    models: Iterable[str] | None = None,
    copy: bool = False,
) -> Path:
    """Write `dest` (replacing it) from `source` with `overrides` applied; returns `dest`.

    `models` picks a subset (default: all). Version folders and other files are symlinks to the
    source, or plain copies with `copy` (a bundle that travels to another machine)."""
    overrides = dict(overrides or {})
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    known = {p.name for p in model_dirs(source)}
    unknown = set(overrides) - known
    if unknown:
        raise KeyError(f"overrides name unknown models {sorted(unknown)}; models: {sorted(known)}")
    chosen = set(known if models is None else models)
    if "ltr_scheduler" in chosen and "tensorrt_llm" in known:
        scheduler = dict(overrides.get("ltr_scheduler", {}))
        scheduler["max_inflight"] = str(served_max_inflight(overrides, source))
        overrides["ltr_scheduler"] = scheduler
    for model_dir in model_dirs(source):
        if model_dir.name in chosen:
            _render_model(model_dir, dest / model_dir.name, overrides.get(model_dir.name, {}), copy)
    return dest


def _render_model(model_dir: Path, out: Path, params: Mapping[str, str], copy: bool) -> None:
    out.mkdir()
    config = read_config(model_dir / "config.pbtxt")
    set_parameters(config, params)
    write_config(config, out / "config.pbtxt")
    for child in sorted(model_dir.iterdir()):
        if child.name == "config.pbtxt" or child.name == "__pycache__":
            continue
        if not copy:
            (out / child.name).symlink_to(child.resolve())
        elif child.is_dir():
            shutil.copytree(child, out / child.name, ignore=IGNORED)
        else:
            shutil.copy2(child, out / child.name)
