"""The CPU stand-in for the LLM engine (TensorRT-LLM running Llama-3-8B): an iteration-level batching
core with a KV-cache budget (`batching`), advanced on a virtual clock by the simulator and on the wall
clock by the Triton `tensorrt_llm` stand-in (`realtime`); the request it runs (`request`); a roofline
cost model of one GPU that says how long each iteration takes (`cost_model`); the token sources that
fill the output (`tokens`, `vocab`, `hf_llama`); and the parsing of the Triton model's parameters and
tensors into these objects (`settings`). Layering: it may import `repo_paths`, `scheduler` and
`runtime` (the packages below it); only `settings` does, for the tensor reader the Triton models
share. Nothing here imports Triton.
"""

from engine.batching import BatchingEngine, KvPolicy, StepResult
from engine.cost_model import A100_80GB, GPUS, H100_SXM, LLAMA3_8B, CostModel, GpuSpec, ModelSpec
from engine.request import EngineFinish, EngineRequest
from engine.tokens import ConstantTokenSource, TokenSource, WordTokenSource

__all__ = [
    "A100_80GB", "GPUS", "H100_SXM", "LLAMA3_8B", "BatchingEngine", "ConstantTokenSource",
    "CostModel", "EngineFinish", "EngineRequest", "GpuSpec", "KvPolicy", "ModelSpec", "StepResult",
    "TokenSource", "WordTokenSource",
]
