"""Request scheduling for LLM serving: policies, a bounded priority queue with starvation
prevention, and an asyncio admission gate that limits how many requests run in the engine.

Plain Python with no Triton import: the Triton `ltr_scheduler` model, the simulator and the tests
all drive this same code.
"""

from scheduler.admission import AdmissionGate, RequestCancelled
from scheduler.policies import POLICY_NAMES, Policy, PolicyName, make_policy
from scheduler.queue import QueueFull, QueueStats, RequestQueue, StarvationConfig
from scheduler.request import QueuedRequest

__all__ = [
    "AdmissionGate",
    "POLICY_NAMES",
    "Policy",
    "PolicyName",
    "QueueFull",
    "QueueStats",
    "QueuedRequest",
    "RequestCancelled",
    "RequestQueue",
    "StarvationConfig",
    "make_policy",
]
