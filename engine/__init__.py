"""The LLM engine stand-in: a cost model of Llama-3-8B on one GPU, an iteration-level batching core
shared by the Triton `tensorrt_llm` stand-in and the simulator, and token sources."""

from engine.batching import BatchingEngine, EngineRequest, KvPolicy, StepResult
from engine.cost_model import A100_80GB, GPUS, H100_SXM, LLAMA3_8B, CostModel, GpuSpec, ModelSpec
from engine.tokens import ConstantTokenSource, TokenSource, WordTokenSource

__all__ = [
    "A100_80GB", "GPUS", "H100_SXM", "LLAMA3_8B", "BatchingEngine", "ConstantTokenSource",
    "CostModel", "EngineRequest", "GpuSpec", "KvPolicy", "ModelSpec", "StepResult",
    "TokenSource", "WordTokenSource",
]
