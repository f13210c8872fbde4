"""The scheduler's view of one request: only what policies may order by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class QueuedRequest:
    """A request waiting for admission into the engine.

    `score` is the ranking predictor's output (larger = longer predicted response; only its order
    matters). `max_tokens` is the client's cap on the output. `expected_len` is the true answer
    length where an experiment knows it (benchmarks send it): the oracle policy's key, which no
    other policy reads.
    `arrival` is a timestamp on any monotonic clock (wall or simulated). `attained` counts tokens
    already generated for a request that was preempted and queued again. `promoted_for` is set
by the queue when starvation prevention admits the request: the quantum of engine steps it keeps
its promotion for. `ttft_target_s` is a client's own time-to-first-token target. `overtook` is set
by the queue at admission. `payload` is opaque here:
    the Triton model keeps its request context there, the simulator its own record.
    """

    request_id: str
    score: float = 0.0
    max_tokens: int = 0
    expected_len: int | None = None
    arrival: float = 0.0
    attained: int = 0
    promoted_for: int = 0
    ttft_target_s: float | None = None  # the client's own TTFT target (None: the deployment's)
    overtook: bool = False  # set at admission: it went ahead of an older waiting request
    payload: Any = field(default=None, repr=False)
