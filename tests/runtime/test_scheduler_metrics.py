"""Event counts for `ltr_scheduler_requests_total`: running totals become increments, published
once each, including request outcomes the admission gate never sees change."""

from __future__ import annotations

import asyncio
from collections import Counter

from runtime.relay import LLMJob, Relay, RelayStats
from runtime.scheduler_metrics import EVENTS, CounterDeltas, event_totals
from scheduler import AdmissionGate, RequestQueue, make_policy
from tests.runtime.test_relay import FakeSink, job


class ScriptedLLM:
    """Two tokens 50 ms apart; the job named "fails" fails between them."""

    async def stream(self, job: LLMJob):
        yield [1]
        await asyncio.sleep(0.05)
        if job.request_id == "fails":
            raise RuntimeError("engine fell over")
        yield [2]

    async def stop(self, job: LLMJob) -> None:
        pass


def test_deltas_are_what_came_since_the_last_publication():
    deltas = CounterDeltas(["a", "b"])
    assert deltas({"a": 0, "b": 2}) == {"b": 2}
    assert deltas({"a": 1, "b": 2}) == {"a": 1}
    assert deltas({"a": 1, "b": 2}) == {}
    assert deltas({"a": 4, "b": 3}) == {"a": 3, "b": 1}


def test_publishing_on_gate_changes_and_after_each_request_counts_every_outcome():
    """As ltr_scheduler does: failures and cancellations are counted after the slot is given back,
    so only the publication after the request sees them."""
    published: Counter[str] = Counter()
    deltas = CounterDeltas(EVENTS)

    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr"), max_size=1), 1)
        relay = Relay(gate, ScriptedLLM(), cancel_poll_s=0.001)

        def publish(_=None) -> None:
            published.update(deltas(event_totals(gate, relay.stats)))

        gate.on_change = publish

        async def serve(name: str, sink: FakeSink, after_s: float = 0.0) -> None:
            await asyncio.sleep(after_s)
            try:
                await relay.serve(job(name, 2), sink)
            finally:
                publish()

        # One slot, room for one waiting: "completes" takes the slot, "cancelled" waits and leaves,
        # "rejected" finds the queue full, "fails" waits for the slot and fails last, after the
        # gate's last change.
        await asyncio.gather(
            serve("completes", FakeSink()), serve("cancelled", FakeSink(cancel_after=0)),
            serve("rejected", FakeSink()), serve("fails", FakeSink(), after_s=0.02),
        )
        return event_totals(gate, relay.stats)

    totals = asyncio.run(scenario())
    assert set(totals) == set(EVENTS)
    assert {name: published[name] for name in EVENTS} == totals
    assert totals == {"admitted": 2, "promoted": 0, "rejected": 1, "timed_out": 0, "shut_down": 0, "removed": 1,
                      "oldest_first": 0, "ranking_fallback": 0, "ranking_recovered": 0,
                      "completed": 1, "failed": 1, "cancelled": 1}


def test_the_ranking_tau_is_published_under_every_policy_and_trust_under_the_guarded_one():
    from runtime.scheduler_metrics import RANKING_TAU, RANKING_TAU_SAMPLES, RANKING_TAU_WINDOW, RANKING_TRUSTED, ranking_gauges
    from scheduler import AdmissionGate, Guarded, QueuedRequest, RankingGuard, RequestQueue, make_policy

    measured = RankingGuard()
    for i in range(60):
        measured.observe(float(i), 60 - i, "stop")  # a predictor that ranks backwards
    ltr = ranking_gauges(AdmissionGate(RequestQueue(make_policy("ltr")), 1), measured)
    assert ltr == {RANKING_TAU: -1.0, RANKING_TAU_SAMPLES: 60.0, RANKING_TAU_WINDOW: 200.0}
    policy = Guarded()
    gate = AdmissionGate(RequestQueue(policy), 1)
    for i in range(60):
        policy.finished(QueuedRequest(str(i), score=float(i)), i + 1, "stop")
    gauges = ranking_gauges(gate, policy.guard)
    assert gauges[RANKING_TAU] == 1.0 and gauges[RANKING_TAU_SAMPLES] == 60.0
    assert gauges[RANKING_TAU_WINDOW] == 200.0 and gauges[RANKING_TRUSTED] == 1.0
    assert event_totals(gate, RelayStats())["ranking_recovered"] == 1
