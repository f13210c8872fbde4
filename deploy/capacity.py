"""How many requests the scheduler may admit into an engine: pure arithmetic on the engine's
build-time limits, kept apart from rendering so that it is read and tested on its own. At deploy/
level, below gpu/, because both renderings use the rule: the GPU bundle for TensorRT-LLM
(`deploy.gpu.bundle`) and `max_inflight=auto` for the CPU stand-in (`deploy.repository`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineLimits:
    """The build-time limits of a TensorRT-LLM engine; defaults = export/build_llm_engine.sh defaults."""

    max_batch_size: int = 64
    max_input_len: int = 4096
    max_seq_len: int = 8192
    world_size: int = 1  # tp_size * pp_size: GPUs (MPI ranks) the engine runs on

    @classmethod
    def from_engine_dir(cls, engine_dir: Path) -> "EngineLimits | None":
        """Read `config.json` as trtllm-build writes it; None when the engine is not built yet."""
        path = Path(engine_dir) / "config.json"
        if not path.is_file():
            return None
        config = json.loads(path.read_text())
        build = config["build_config"]
        mapping = config.get("pretrained_config", {}).get("mapping", {})
        world = mapping.get("world_size") or mapping.get("tp_size", 1) * mapping.get("pp_size", 1)
        return cls(int(build["max_batch_size"]), int(build["max_input_len"]), int(build["max_seq_len"]), int(world))

    @property
    def max_output_len(self) -> int:
        """Largest max_tokens preprocessing accepts: a longest prompt plus it still fits max_seq_len."""
        return self.max_seq_len - self.max_input_len


def choose_max_inflight(
    limits: EngineLimits,
    batch_scheduler_policy: str,
    kv_cache_tokens: int | None = None,
    tokens_per_request: int | None = None,
) -> int:
    """How many requests the scheduler admits into TensorRT-LLM at once.

    More than the engine runs at once would queue the surplus in TensorRT-LLM's own FCFS queue (the
    ranking is lost there); fewer leaves batch slots idle. The engine runs at most max_batch_size
    sequences; with guaranteed_no_evict it also only starts a request whose whole KV cache
    (prompt + max_tokens) is free, so the KV cache bounds it too when its size is known.
    """
    capacity = limits.max_batch_size
    if batch_scheduler_policy == "guaranteed_no_evict" and kv_cache_tokens:
        per_request = tokens_per_request or limits.max_seq_len
        capacity = min(capacity, kv_cache_tokens // per_request)
    return max(1, capacity)
