"""Request scheduling for LLM serving: policies, a bounded priority queue with starvation
prevention, and the admission that limits how many requests run in the engine (the rule itself, and
an asyncio gate around it).

Plain Python with no Triton import and no clock: the Triton `ltr_scheduler` model, the simulator
and the tests all drive this same code. It imports nothing of the project (only `repo_paths` would
be allowed below it), so every other package may build on it.
"""

from scheduler.admission import AdmissionControl, AdmissionGate, QueueTimeout, RequestCancelled
from scheduler.guard import GuardConfig, GuardStats, RankingGuard, censored_kendall_tau
from scheduler.policies import (
    POLICY_NAMES,
    ArrivalAwarePolicy,
    Guarded,
    GuardedConfig,
    Policy,
    PolicyName,
    PreemptivePolicy,
    make_policy,
)
from scheduler.queue import QueueFull, QueueStats, RequestQueue, StarvationConfig
from scheduler.request import QueuedRequest

__all__ = [
    "AdmissionControl",
    "AdmissionGate",
    "ArrivalAwarePolicy",
    "GuardConfig",
    "GuardStats",
    "Guarded",
    "GuardedConfig",
    "RankingGuard",
    "censored_kendall_tau",
    "POLICY_NAMES",
    "Policy",
    "PolicyName",
    "PreemptivePolicy",
    "QueueFull",
    "QueueStats",
    "QueueTimeout",
    "QueuedRequest",
    "RequestCancelled",
    "RequestQueue",
    "StarvationConfig",
    "make_policy",
]
