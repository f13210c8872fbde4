"""What the scheduler model publishes on Triton's metrics port, free of Triton: its metric families
(named here, once: the manifests' autoscaler and router read the same names) and the increments of
`ltr_scheduler_requests_total{event}`.

The gate, the queue and the relay keep running totals; a Prometheus counter takes increments.
`event_totals` gathers the totals by event and `CounterDeltas` turns them into the increments not
yet published, so the model can publish after any change (gate or request outcome) without
counting anything twice.
"""

from __future__ import annotations

from typing import Iterable, Literal, Mapping

from runtime.latency_histograms import BUCKETS, QUEUE_WAIT as QUEUE_WAIT_PHASE, TTFT as TTFT_PHASE, Phase
from runtime.relay import RelayStats
from scheduler import AdmissionGate, Guarded, RankingGuard

EVENTS = {
    "admitted": "given an LLM slot",
    "promoted": "moved ahead by starvation prevention",
    "rejected": "queue full",
    "timed_out": "waited past the queue deadline",
    "shut_down": "refused or ended by a graceful stop",
    "removed": "cancelled while waiting",
    "oldest_first": "admitted in arrival order by the guarded policy (aged, budget spent, or ranking distrusted)",
    "ranking_fallback": "ranking guard fell back to arrival order",
    "ranking_recovered": "ranking guard trusts the ranking again",
    "completed": "generation finished",
    "failed": "generation failed",
    "cancelled": "cancelled or stopped, waiting or generating",
}


WAITING = "ltr_scheduler_waiting_requests"
INFLIGHT = "ltr_scheduler_inflight_requests"
REQUESTS = "ltr_scheduler_requests_total"
REQUEST_LOG_FAILURES = "ltr_scheduler_request_log_failures_total"
PREDICTOR_VERSION = "ltr_scheduler_predictor_version"
QUEUE_WAIT = "ltr_scheduler_queue_wait_seconds"
TTFT = "ltr_scheduler_time_to_first_token_seconds"
PREDICTED_BACKLOG = "ltr_scheduler_predicted_backlog_tokens"
RANKING_TAU = "ltr_scheduler_ranking_tau"
RANKING_TAU_SAMPLES = "ltr_scheduler_ranking_tau_samples"
RANKING_TAU_WINDOW = "ltr_scheduler_ranking_tau_window"
RANKING_TRUSTED = "ltr_scheduler_ranking_trusted"

Kind = Literal["gauge", "counter", "histogram"]
FAMILIES: dict[str, tuple[Kind, str]] = {  # name -> (kind, description); every family has a `policy` label
    WAITING: ("gauge", "Requests waiting for admission"),
    INFLIGHT: ("gauge", "Requests admitted into the LLM"),
    REQUESTS: ("counter", "Scheduler events: " + ", ".join(f"{name} ({what})" for name, what in EVENTS.items())),
    REQUEST_LOG_FAILURES: (
        "counter", "Request-log rows lost: unwritable path, full disk, or writer queue full (requests unaffected)"),
    PREDICTOR_VERSION: ("gauge", "The length-predictor version now scoring requests (request log: predictor_version)"),
    QUEUE_WAIT: ("histogram", "Seconds from arrival at the scheduler to admission into the LLM (admitted requests)"),
    TTFT: ("histogram", "Seconds from arrival at the scheduler to the first generated token"),
    RANKING_TAU: ("gauge", "Kendall's tau of recent finished requests' scores against their generated lengths "
                           "(pairs of known order only; every policy; NaN before any known pair)"),
    RANKING_TAU_SAMPLES: ("gauge", "Finished requests the ranking tau is measured over (at most the window)"),
    RANKING_TAU_WINDOW: ("gauge", "Window of the ranking tau, in finished requests (guard_window)"),
    RANKING_TRUSTED: ("gauge", "1 while the ranking guard trusts the ranking, 0 while it orders by arrival"),
    PREDICTED_BACKLOG: ("gauge", "Output tokens expected from the requests waiting and the rest of those generating "
                                 "(the predictor's score through the version's length calibration)"),
}
# The histograms' phases (runtime.latency_histograms) and bucket bounds, by family.
HISTOGRAMS: dict[str, tuple[Phase, tuple[float, ...]]] = {
    QUEUE_WAIT: (QUEUE_WAIT_PHASE, BUCKETS[QUEUE_WAIT_PHASE]),
    TTFT: (TTFT_PHASE, BUCKETS[TTFT_PHASE]),
}


def ranking_gauges(gate: AdmissionGate, ranking: RankingGuard) -> dict[str, float]:
    """The live ranking quality (runtime.relay.Relay.ranking), under every policy; whether the guard
    trusts it only where a policy acts on that (the guarded one)."""
    g = ranking.stats()
    gauges = {RANKING_TAU: g.tau, RANKING_TAU_SAMPLES: float(g.samples), RANKING_TAU_WINDOW: float(g.window)}
    if isinstance(gate.queue.policy, Guarded):
        gauges[RANKING_TRUSTED] = float(g.trusted)
    return gauges


def event_totals(gate: AdmissionGate, relay: RelayStats) -> dict[str, int]:
    """Every event's count so far."""
    queue = gate.queue.stats()
    policy = gate.queue.policy
    return {
        "admitted": gate.admitted_total,
        "promoted": queue.promoted_total,
        "rejected": queue.rejected_total,
        "timed_out": relay.timed_out,
        "shut_down": relay.shut_down,
        "removed": queue.removed_total,
        "oldest_first": queue.oldest_picks_total,
        "ranking_fallback": policy.guard.fallbacks_total if isinstance(policy, Guarded) else 0,
        "ranking_recovered": policy.guard.recoveries_total if isinstance(policy, Guarded) else 0,
        "completed": relay.completed,
        "failed": relay.failed,
        "cancelled": relay.cancelled,
    }


class CounterDeltas:
    """Remembers the totals already published, to publish only what came since."""

    def __init__(self, names: Iterable[str]) -> None:
        self.published = dict.fromkeys(names, 0)

    def __call__(self, totals: Mapping[str, int]) -> dict[str, int]:
        """The positive increments since the last call, by name; they count as published now."""
        increments = {}
        for name, value in totals.items():
            if value > self.published[name]:
                increments[name] = value - self.published[name]
                self.published[name] = value
        return increments
