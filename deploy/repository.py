"""Render a deployable model repository from `model_repository/` with parameter overrides.

The source repository is the one source of truth; a deployment (a policy, an LLM mode, test
settings) is a rendered copy whose `config.pbtxt` files differ only in the overridden
`parameters` and whose version folders are symlinks to the source ones (no large copies).
Configs are parsed as Triton `ModelConfig` protobufs, so a typo'd model or parameter name fails
here, before the server starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repo_paths import SOURCE_REPOSITORY


Overrides = Mapping[str, Mapping[str, str]]  # model name -> parameter key -> value


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


def model_dirs(repository: Path) -> list[Path]:
    return sorted(p for p in Path(repository).iterdir() if (p / "config.pbtxt").is_file())


def render_repository(dest: Path, overrides: Overrides | None = None, source: Path = SOURCE_REPOSITORY) -> Path:
    """Write `dest` (replacing it) from `source` with `overrides` applied; returns `dest`."""
    overrides = dict(overrides or {})
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    known = {p.name for p in model_dirs(source)}
    unknown = set(overrides) - known
    if unknown:
        raise KeyError(f"overrides name unknown models {sorted(unknown)}; models: {sorted(known)}")
    for model_dir in model_dirs(source):
        out = dest / model_dir.name
        out.mkdir()
        config = read_config(model_dir / "config.pbtxt")
        set_parameters(config, overrides.get(model_dir.name, {}))
        write_config(config, out / "config.pbtxt")
        for child in model_dir.iterdir():
            if child.name != "config.pbtxt":
                (out / child.name).symlink_to(child.resolve())
    return dest
