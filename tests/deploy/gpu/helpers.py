"""What the GPU tests share: an engine folder as trtllm-build leaves it."""

from __future__ import annotations

import json
from pathlib import Path


def write_engine(engine_dir: Path, max_batch_size: int = 32, max_input_len: int = 2048, max_seq_len: int = 4096,
                 tp: int = 2) -> Path:
    """A config.json shaped as trtllm-build writes it (the fields read here)."""
    engine_dir.mkdir(parents=True, exist_ok=True)
    (engine_dir / "config.json").write_text(json.dumps({
        "version": "1.0.0",
        "pretrained_config": {"architecture": "LlamaForCausalLM",
                              "mapping": {"world_size": tp, "tp_size": tp, "pp_size": 1}},
        "build_config": {"max_batch_size": max_batch_size, "max_input_len": max_input_len,
                         "max_seq_len": max_seq_len, "max_num_tokens": 8192},
    }))
    return engine_dir
