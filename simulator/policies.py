"""The simulator's policies: the served ones (`scheduler.make_policy`) plus simulator-only ones.

FastServe-style multi-level feedback queue (Wu et al. 2023): a request's priority level rises with
the tokens it has already received (`attained`), with quanta doubling per level, so short jobs
finish in the first levels without knowing lengths. It is a `PreemptivePolicy`: it needs an engine
that preempts at quantum boundaries, which the served path (TensorRT-LLM behind an admission gate)
cannot do; the simulator's engine does it (`simulator.sim`), swapping the KV cache to host memory
and back as FastServe does. FastServe's skip-join (initial level from prefill time) is not modelled.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

from scheduler import Policy
from scheduler import make_policy as make_served_policy
from scheduler.request import QueuedRequest


class MultiLevelFeedbackQueue:
    """Level k holds requests with attained tokens in [q*(2^k - 1), q*(2^(k+1) - 1)) (levels capped)."""

    name = "mlfq"

    def __init__(self, base_quantum: int = 32, levels: int = 8) -> None:
        self.base_quantum = base_quantum
        self.levels = levels

    def level(self, attained: int) -> int:
        return min(int(math.log2(attained / self.base_quantum + 1)), self.levels - 1)

    def key(self, request: QueuedRequest) -> float:
        return float(self.level(request.attained))

    def at_boundary(self, attained: int) -> bool:
        """True when `attained` tokens just completed a level's quantum."""
        if attained <= 0:
            return False
        return self.level(attained) > self.level(attained - 1)


SIMULATOR_ONLY: dict[str, Callable[[], Policy]] = {"mlfq": MultiLevelFeedbackQueue}


def make_policy(name: str, params: Mapping[str, str] | None = None) -> Policy:
    """A served or simulator-only policy by name (`params`: config.pbtxt-style settings of the
    `guarded` policy); an unknown name fails listing all of them."""
    return make_served_policy(name, extra=SIMULATOR_ONLY, params=params)
