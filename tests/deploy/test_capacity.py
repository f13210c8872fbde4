"""How many requests the scheduler admits into a TensorRT-LLM engine."""

from __future__ import annotations

from pathlib import Path

from deploy.capacity import EngineLimits, choose_max_inflight
from deploy.gpu.bundle import GpuSettings


def test_choose_max_inflight():
    limits = EngineLimits(max_batch_size=64, max_input_len=4096, max_seq_len=8192)
    assert choose_max_inflight(limits, "max_utilization") == 64
    assert choose_max_inflight(limits, "guaranteed_no_evict") == 64  # KV size unknown: batch slots
    assert choose_max_inflight(limits, "guaranteed_no_evict", kv_cache_tokens=200_000) == 24  # 200000 // 8192
    assert choose_max_inflight(limits, "guaranteed_no_evict", kv_cache_tokens=200_000, tokens_per_request=2048) == 64
    assert choose_max_inflight(limits, "max_utilization", kv_cache_tokens=200_000) == 64
    assert choose_max_inflight(limits, "guaranteed_no_evict", kv_cache_tokens=100) == 1
    assert GpuSettings(Path("e"), Path("c"), limits=limits, max_inflight=5).inflight == 5
