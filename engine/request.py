"""One generation request as the engine sees it, and why it ended.

Its own module so that everything that handles requests (`engine.batching`, the token sources, the
real-time loop, the Triton model, the simulator) can name the type without importing the batching core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

# Why the engine ended a request, finer than the client's `runtime.finish.FinishReason`:
# end_id and stop_words reach the client as `stop`, length as `length`, cancelled as `cancelled`.
EngineFinish = Literal["length", "end_id", "stop_words", "cancelled"]


@dataclass(eq=False)
class EngineRequest:
    """One generation request as the engine sees it. `generated` survives preemption.

    `answer_len` is where the model's answer ends (`engine.lengths`): after that many tokens the
    next one is `end_id`. None: no natural end, the request runs to its `max_tokens` cap.
    """

    request_id: str
    prompt_len: int
    max_tokens: int
    answer_len: int | None = None
    prompt_ids: Sequence[int] | None = None
    end_id: int | None = None
    stop_words: tuple[tuple[int, ...], ...] = ()
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    # TensorRT-LLM's other sampling inputs (engine.hf_llama applies them; `timing` mode only min_tokens)
    min_tokens: int = 0  # no end_id before this many tokens
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    embedding_bias: Any = field(default=None, repr=False)  # [vocab] floats added to the logits, or None
    return_log_probs: bool = False
    log_probs: list[float] = field(default_factory=list, repr=False)  # per generated token, when asked
    payload: Any = field(default=None, repr=False)
    generated: int = 0
    output_ids: list[int] = field(default_factory=list, repr=False)
    finish_reason: EngineFinish | None = None
    keep_output_ids: bool = True
    swapped: bool = False  # KV parked in host memory by `preempt(swap=True)`: resume by swap-in
    admit_seq: int = -1  # admission order, for the default preemption victim
    kv_tokens: int = 0  # KV tokens currently held (or reserved) in the cache

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def output_tokens(self) -> int:
        """Tokens the client receives: the end token is not part of the answer (as in TensorRT-LLM)."""
        return self.generated - (self.finish_reason == "end_id")
