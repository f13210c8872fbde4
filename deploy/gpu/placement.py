"""Where the length predictor runs on the GPU box, and what it leaves the LLM's KV cache.

The predictor gets one instance on one stated GPU (`gpus: [N]`): a `KIND_GPU` group without `gpus`
makes Triton start one instance per visible GPU (eight on the 70B box), each taking memory the
LLM's KV cache counts on. TensorRT-LLM sizes its KV cache as `kv_cache_free_gpu_mem_fraction` of the
memory free after its engine loads, on every GPU alike (one value for all ranks). Triton loads
models in parallel, so the predictor may start after that measurement: its budget is subtracted
from the fraction, as a share of the free memory of its GPU. docs/gpu.md, "Placing the predictor",
walks through the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
# An estimate until the GPU smoke test (tools/gpu_smoke.sh) measures it: CUDA context (~0.5 GiB),
# ONNX Runtime's CUDA arena and TensorRT workspace for the largest profile shape (64 x 128 tokens),
# the FP16 engine (~45 MB for MiniLM-L6) and I/O buffers.
PREDICTOR_BUDGET_GIB = 2.0
DEFAULT_GPU_MEMORY_GIB = 80.0  # H100 / A100 80 GB; --gpu-memory-gib for others (H200: 141)
# Llama-3 weights in bf16 when no engine is built yet to measure (parameters x 2 bytes).
LLAMA3_WEIGHTS_GIB = {1: 8.03e9 * 2 / GIB, 8: 70.6e9 * 2 / GIB}  # by world size: 8B on 1 GPU, 70B on 8


def choose_predictor_gpu(world_size: int) -> int:
    """The last GPU of the engine: every GPU holds one equal LLM shard, and GPU 0 also carries rank
    0's server-wide allocations (Triton's CUDA memory pool, the python models' process)."""
    return max(0, world_size - 1)


def engine_weights_gib_per_gpu(engine_dir: Path, world_size: int) -> float:
    """rank0.engine's size when built (weights dominate it), else the Llama-3 estimate."""
    engine = Path(engine_dir) / "rank0.engine"
    if engine.is_file():
        return engine.stat().st_size / GIB
    return LLAMA3_WEIGHTS_GIB[8 if world_size > 1 else 1] / world_size


@dataclass(frozen=True)
class Placement:
    predictor_gpu: int
    requested_kv_fraction: float  # what the user asked TensorRT-LLM for (--kv-cache-free-gpu-mem-fraction)
    gpu_memory_gib: float
    weights_gib_per_gpu: float
    predictor_budget_gib: float = PREDICTOR_BUDGET_GIB

    @property
    def free_after_engine_gib(self) -> float:
        """What the fraction applies to, at most (TensorRT-LLM's activations come off it too)."""
        return self.gpu_memory_gib - self.weights_gib_per_gpu

    @property
    def kv_fraction(self) -> float:
        """The requested fraction less the predictor's share of the free memory, rounded down to 0.01."""
        if self.free_after_engine_gib <= self.predictor_budget_gib:
            raise ValueError(f"{self.gpu_memory_gib} GiB GPUs with {self.weights_gib_per_gpu:.1f} GiB of weights each "
                             f"leave no room for the predictor's {self.predictor_budget_gib} GiB")
        share = self.predictor_budget_gib / self.free_after_engine_gib
        fraction = math.floor((self.requested_kv_fraction - share) * 100 + 1e-9) / 100
        if fraction <= 0:
            raise ValueError(f"kv_cache_free_gpu_mem_fraction {self.requested_kv_fraction} is less than the "
                             f"predictor's share {share:.3f}")
        return fraction

    def explain(self) -> str:
        return (f"predictor on GPU {self.predictor_gpu}; KV fraction {self.requested_kv_fraction} - "
                f"{self.predictor_budget_gib:g} GiB / ({self.gpu_memory_gib:g} GiB - {self.weights_gib_per_gpu:.1f} GiB "
                f"weights) = {self.kv_fraction:.2f}")
