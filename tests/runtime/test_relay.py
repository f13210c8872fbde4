"""The request life cycle behind the admission gate, with a fake LLM client and a fake sink."""

from __future__ import annotations

import asyncio

import numpy as np

from runtime.detokenize import CONTEXT_TOKENS
from runtime.relay import Job, Relay
from scheduler import AdmissionGate, RequestQueue, make_policy


class FakeLLM:
    """Yields one token at a time until the answer's natural end (`answer_len`, default: none) or
    `max_tokens`; records stop calls."""

    def __init__(self, fail: bool = False, answer_len: int | None = None) -> None:
        self.fail = fail
        self.answer_len = answer_len
        self.stopped: list[str] = []

    async def stream(self, job: Job):
        for i in range(min(job.max_tokens, self.answer_len or job.max_tokens)):
            await asyncio.sleep(0)
            if self.fail and i == 2:
                raise RuntimeError("engine fell over")
            yield [1000 + i]

    async def stop(self, job: Job) -> None:
        self.stopped.append(job.request_id)


class FakeSink:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.tokens: list[int] = []
        self.finals = 0
        self.errors: list[str] = []
        self.finish: str | None = None
        self.cancel_after = cancel_after

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.tokens) >= self.cancel_after

    def send_tokens(self, token_ids, context_ids, final, finish=None):
        assert context_ids == self.tokens[-CONTEXT_TOKENS:] or not token_ids
        assert (finish is not None) == final, "the final response, and only it, says why it ended"
        self.tokens.extend(token_ids)
        self.finals += final
        self.finish = finish

    def send_error(self, message):
        self.errors.append(message)

    @property
    def closed(self) -> bool:
        return self.finish == "cancelled"


def run_relay(jobs_and_sinks, llm, max_inflight=2, max_size=None):
    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr"), max_size=max_size), max_inflight)
        relay = Relay(gate, llm, cancel_poll_s=0.001)
        await asyncio.gather(*(relay.serve(job, sink) for job, sink in jobs_and_sinks))
        assert gate.inflight == 0 and len(gate.queue) == 0
        return relay.stats

    return asyncio.run(scenario())


def job(rid: str, n: int, streaming: bool = True) -> Job:
    return Job(rid, np.array([1, 2, 3], np.int32), n, score=float(n), streaming=streaming)


def test_relay_streams_and_completes_every_job():
    pairs = [(job(f"j{i}", 5 + i, streaming=i % 2 == 0), FakeSink()) for i in range(6)]
    stats = run_relay(pairs, FakeLLM())
    for (j, sink) in pairs:
        assert len(sink.tokens) == j.max_tokens and sink.finals == 1 and not sink.errors
    assert stats.completed == 6


def test_relay_reports_why_each_answer_ended():
    natural, capped = FakeSink(), FakeSink()
    run_relay([(job("natural", 50), natural)], FakeLLM(answer_len=7))
    run_relay([(job("capped", 5), capped)], FakeLLM(answer_len=7))
    assert (len(natural.tokens), natural.finish) == (7, "stop")
    assert (len(capped.tokens), capped.finish) == (5, "length")


def test_relay_failure_errors_that_request_and_frees_the_slot():
    sinks = [FakeSink(), FakeSink()]
    stats = run_relay([(job("a", 5), sinks[0]), (job("b", 5), sinks[1])], FakeLLM(fail=True), max_inflight=1)
    assert all("engine fell over" in s.errors[0] for s in sinks)
    assert stats.failed == 2


def test_relay_cancellation_stops_the_engine_and_frees_the_slot():
    llm = FakeLLM()
    cancelled, normal = FakeSink(cancel_after=3), FakeSink()
    stats = run_relay([(job("c", 50), cancelled), (job("n", 4), normal)], llm, max_inflight=1)
    assert llm.stopped == ["c"] and cancelled.closed and len(normal.tokens) == 4
    assert stats.cancelled == 1


def test_relay_rejects_past_the_queue_bound_with_overloaded_error():
    sinks = [FakeSink() for _ in range(4)]
    stats = run_relay([(job(f"q{i}", 3), s) for i, s in enumerate(sinks)], FakeLLM(), max_inflight=1, max_size=1)
    assert stats.rejected == 2
    assert sum("overloaded" in e for s in sinks for e in s.errors) == 2


def test_stop_by_client_id_ends_a_waiting_and_a_generating_job():
    async def scenario():
        llm = FakeLLM()
        gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
        relay = Relay(gate, llm, cancel_poll_s=0.001)
        running, waiting = FakeSink(), FakeSink()
        slow = job("run", 10_000)
        slow.client_id = "client-a"
        queued = job("wait", 5)
        queued.client_id = "client-b"
        tasks = [asyncio.create_task(relay.serve(slow, running)), asyncio.create_task(relay.serve(queued, waiting))]
        await asyncio.sleep(0.01)
        assert len(gate.queue) == 1
        assert relay.request_stop("client-b") and relay.request_stop("client-a")
        assert not relay.request_stop("nobody")
        await asyncio.gather(*tasks)
        assert waiting.closed and not waiting.tokens
        assert running.closed and llm.stopped == ["run"] and len(running.tokens) < 10_000
        assert gate.inflight == 0 and len(gate.queue) == 0
        assert not relay.request_stop("client-a")  # forgotten once ended

    asyncio.run(scenario())
