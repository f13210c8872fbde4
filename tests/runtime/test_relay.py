"""The request life cycle behind the admission gate, with a fake LLM client and a fake sink."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from runtime.detokenize import CONTEXT_TOKENS
from runtime.relay import LLMJob, Relay
from scheduler import AdmissionGate, RequestQueue, make_policy


class FakeLLM:
    """Yields one token at a time until the answer's natural end (`answer_len`, default: none) or
    `max_tokens`, `delay_s` apart; records stop calls."""

    def __init__(self, fail: bool = False, answer_len: int | None = None, delay_s: float = 0.0) -> None:
        self.fail = fail
        self.answer_len = answer_len
        self.delay_s = delay_s
        self.stopped: list[str] = []

    async def stream(self, job: LLMJob):
        for i in range(min(job.max_tokens, self.answer_len or job.max_tokens)):
            await asyncio.sleep(self.delay_s)
            if self.fail and i == 2:
                raise RuntimeError("engine fell over")
            yield [1000 + i]

    async def stop(self, job: LLMJob) -> None:
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

    def send_tokens(self, token_ids, context_ids, final, finish=None, log_probs=None):
        assert isinstance(token_ids, list) and isinstance(context_ids, list)  # the Triton sink packs lists
        assert context_ids == self.tokens[-CONTEXT_TOKENS:] or not token_ids
        assert (finish is not None) == final, "the final response, and only it, says why it ended"
        self.tokens.extend(token_ids)
        self.finals += final
        self.finish = finish

    def send_error(self, message, retryable=False):
        self.errors.append(message)
        self.retryable = retryable

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


def job(rid: str, n: int, streaming: bool = True) -> LLMJob:
    return LLMJob(rid, np.array([1, 2, 3], np.int32), n, score=float(n), streaming=streaming)


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


def test_overload_and_queue_deadline_are_retryable_errors_that_hold_nothing():
    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr"), max_size=1), 1)
        # the long answer holds the only slot for >= 0.1 s (50 tokens 2 ms apart), past the 0.02 s queue timeout
        relay = Relay(gate, FakeLLM(delay_s=0.002), cancel_poll_s=0.001, queue_timeout_s=0.02)
        long, waiting, rejected = FakeSink(), FakeSink(), FakeSink()
        await asyncio.gather(
            relay.serve(job("long", 50), long), relay.serve(job("w", 5), waiting), relay.serve(job("r", 5), rejected)
        )
        assert gate.inflight == 0 and len(gate.queue) == 0
        return relay.stats, long, waiting, rejected

    stats, long, waiting, rejected = asyncio.run(scenario())
    assert len(long.tokens) == 50 and not long.errors
    assert waiting.errors == ["queue timeout: waited 0.02 s without a free slot; retry later"] and waiting.retryable
    assert "overloaded" in rejected.errors[0] and rejected.retryable
    assert (stats.timed_out, stats.rejected, stats.completed) == (1, 1, 1)


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


def test_a_stop_is_forgotten_once_its_request_ends_so_the_id_can_be_reused():
    """Client ids repeat (TensorRT-LLM clients reuse them): a `stop` ends the live request with that
    id, and a later request with the same id runs to the end as if nothing had happened."""

    async def scenario():
        llm = FakeLLM()
        gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
        relay = Relay(gate, llm, cancel_poll_s=0.001)
        first, second = FakeSink(), FakeSink()
        stopped = job("first", 10_000)
        stopped.client_id = "reused"
        task = asyncio.create_task(relay.serve(stopped, first))
        while not first.tokens:
            await asyncio.sleep(0)
        assert relay.request_stop("reused")
        await task
        assert first.closed and relay.stats.cancelled == 1
        again = job("second", 5)
        again.client_id = "reused"
        await relay.serve(again, second)
        assert (len(second.tokens), second.finish) == (5, "length") and relay.stats.completed == 1
        assert not relay.request_stop("reused")

    asyncio.run(scenario())


def test_two_live_requests_with_one_id_are_both_stopped_and_then_forgotten():
    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
        relay = Relay(gate, FakeLLM(), cancel_poll_s=0.001)
        sinks = [FakeSink(), FakeSink()]
        jobs = [job("a", 10_000), job("b", 10_000)]
        for j in jobs:
            j.client_id = "same"
        tasks = [asyncio.create_task(relay.serve(j, s)) for j, s in zip(jobs, sinks)]
        while not sinks[0].tokens:
            await asyncio.sleep(0)
        assert len(gate.queue) == 1  # one generating, one waiting
        assert relay.request_stop("same")
        await asyncio.gather(*tasks)
        assert all(s.closed for s in sinks) and relay.stats.cancelled == 2
        later = FakeSink()
        relay_job = job("c", 3)
        relay_job.client_id = "same"
        await relay.serve(relay_job, later)
        assert len(later.tokens) == 3 and later.finish == "length"

    asyncio.run(scenario())


def test_a_job_without_a_client_id_cannot_be_stopped_by_the_empty_id():
    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
        relay = Relay(gate, FakeLLM(), cancel_poll_s=0.001)
        sink = FakeSink()
        task = asyncio.create_task(relay.serve(job("anon", 50), sink))
        while not sink.tokens:
            await asyncio.sleep(0)
        assert not relay.request_stop("")
        await task
        assert len(sink.tokens) == 50 and sink.finish == "length"

    asyncio.run(scenario())


def served_order(policy: str, waiting: list[LLMJob]) -> list[str]:
    """Jobs queued behind a running one on a one-slot gate, returned in the order they finished."""

    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy(policy)), 1)
        relay = Relay(gate, FakeLLM(), cancel_poll_s=0.001)
        finished: list[str] = []

        async def serve(j: LLMJob) -> None:
            await relay.serve(j, FakeSink())
            finished.append(j.request_id)

        running = asyncio.create_task(serve(job("running", 20)))
        await asyncio.sleep(0)
        tasks = []
        for j in waiting:
            tasks.append(asyncio.create_task(serve(j)))
            await asyncio.sleep(0)
        assert len(gate.queue) == len(waiting)
        await asyncio.gather(running, *tasks)
        return finished[1:]

    return asyncio.run(scenario())


def test_the_relay_queues_by_the_jobs_score_and_expected_length():
    """What reaches the queue is the job's own score (ltr) and expected length (oracle), not its cap."""
    first = LLMJob("first-sent", np.array([1], np.int32), 5, score=3.0, streaming=True, expected_len=1)
    second = LLMJob("second-sent", np.array([1], np.int32), 5, score=1.0, streaming=True, expected_len=50)
    assert served_order("ltr", [first, second]) == ["second-sent", "first-sent"]
    assert served_order("oracle", [second, first]) == ["first-sent", "second-sent"]
    assert served_order("fcfs", [first, second]) == ["first-sent", "second-sent"]
    big_cap = LLMJob("big-cap", np.array([1], np.int32), 9, score=0.0, streaming=True)
    small_cap = LLMJob("small-cap", np.array([1], np.int32), 3, score=5.0, streaming=True)
    assert served_order("oracle", [big_cap, small_cap]) == ["small-cap", "big-cap"]  # no hint: by the cap



def test_graceful_stop_refuses_new_ends_waiting_at_once_and_generating_at_the_deadline():
    async def scenario():
        grace = {"left": None}
        gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
        llm = FakeLLM()
        relay = Relay(gate, llm, cancel_poll_s=0.001, grace_left=lambda: grace["left"])
        running, waiting, late = FakeSink(), FakeSink(), FakeSink()
        tasks = [asyncio.create_task(relay.serve(job("run", 10**7), running)),
                 asyncio.create_task(relay.serve(job("wait", 5), waiting))]
        await asyncio.sleep(0.01)
        grace["left"] = 0.5  # `make stop` began draining: half a second left
        await asyncio.sleep(0.02)
        assert waiting.errors and waiting.retryable and "shutting down" in waiting.errors[0]
        assert not running.errors and not tasks[0].done()  # still within the grace period
        await relay.serve(job("late", 5), late)
        assert late.errors == [waiting.errors[0]] and late.retryable and not late.tokens
        grace["left"] = 0.0  # the grace period is over
        await asyncio.gather(*tasks)
        assert running.errors and running.retryable and running.finals == 0 and llm.stopped == ["run"]
        assert gate.inflight == 0 and len(gate.queue) == 0
        return relay.stats

    stats = asyncio.run(scenario())
    assert (stats.shut_down, stats.cancelled, stats.completed) == (3, 0, 0)


class StallingLLM(FakeLLM):
    """Streams two tokens, then fails as `runtime.llm_stream` does when the LLM goes silent."""

    async def stream(self, job: LLMJob):
        from runtime.llm_stream import LLMStalled

        yield [1000]
        yield [1001]
        raise LLMStalled("no response from the LLM for 30 s; its model may have died")


class BrokenSink(FakeSink):
    """The client's response sender fails on the second token (the stream broke underneath)."""

    def send_tokens(self, token_ids, context_ids, final, finish=None, log_probs=None):
        if len(self.tokens) >= 1 and token_ids:
            raise RuntimeError("response sender closed")
        super().send_tokens(token_ids, context_ids, final, finish, log_probs)


def test_every_abandoned_generation_is_stopped_in_the_engine_before_its_slot_is_reused():
    """Engine error, stall, a failed send: the engine would otherwise go on generating while the
    slot is given to the next request. A generation that ends by itself is not stopped."""
    cases = [(FakeLLM(fail=True), FakeSink(), "engine fell over"), (StallingLLM(), FakeSink(), "no response"),
             (FakeLLM(), BrokenSink(), "response sender closed")]
    for llm, sink, message in cases:
        stats = run_relay([(job("abandoned", 50), sink)], llm, max_inflight=1)
        assert llm.stopped == ["abandoned"], message
        assert stats.failed == 1 and message in sink.errors[0]
    finished = FakeLLM(answer_len=3)
    run_relay([(job("finished", 50), FakeSink())], finished)
    assert finished.stopped == []


def test_a_stop_the_engine_never_answers_or_refuses_still_frees_the_slot():
    class HangingStop(FakeLLM):
        async def stop(self, job):
            self.stopped.append(job.request_id)
            await asyncio.sleep(3600)  # a dead LLM stub

    class RefusingStop(FakeLLM):
        async def stop(self, job):
            self.stopped.append(job.request_id)
            raise RuntimeError("stub not healthy")

    for llm in (HangingStop(fail=True), RefusingStop(fail=True)):
        async def scenario():
            gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
            relay = Relay(gate, llm, cancel_poll_s=0.001, stop_timeout_s=0.05)
            first, second = FakeSink(), FakeSink()
            await asyncio.wait_for(asyncio.gather(relay.serve(job("a", 50), first), relay.serve(job("b", 50), second)), 5)
            assert gate.inflight == 0 and len(gate.queue) == 0
            return first, second

        first, second = asyncio.run(scenario())
        assert "engine fell over" in first.errors[0] and "engine fell over" in second.errors[0]
        assert llm.stopped == ["a", "b"]


def test_a_cancelled_generation_is_stopped_once():
    llm = FakeLLM()
    run_relay([(job("c", 50), FakeSink(cancel_after=2))], llm)
    assert llm.stopped == ["c"]


def test_an_end_token_sent_as_a_stop_word_ends_the_answer_and_is_not_part_of_it():
    """The engine keeps a matched stop word in its output (TensorRT-LLM does); the relay cuts the
    end tokens the scheduler added (runtime.engine_inputs), streamed or not."""

    class EndsWithEndOfText(FakeLLM):
        async def stream(self, job):
            yield [1000, 1001]
            yield [1002, 128001]

    for streaming in (True, False):
        sink, llm = FakeSink(), EndsWithEndOfText()
        j = job("eot", 50, streaming=streaming)
        j.end_tokens = (128001,)
        stats = run_relay([(j, sink)], llm)
        assert sink.tokens == [1000, 1001, 1002] and sink.finish == "stop" and stats.completed == 1
        assert llm.stopped == []


def test_queue_wait_and_ttft_are_observed_and_the_backlog_empties():
    """Each admitted request's queue wait and first token are observed once, in seconds; the
    predicted backlog counts a job's expected tokens (max_tokens without a calibration) until it ends."""
    observed: list[tuple[str, float]] = []
    backlogs: list[float] = []

    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("fcfs")), 1)
        relay = Relay(gate, FakeLLM(), cancel_poll_s=0.001, observe=lambda phase, s: observed.append((phase, s)))
        gate.on_change = lambda _: backlogs.append(relay.backlog.total())
        first, second = job("a", 4), job("b", 3)
        second.expected_tokens = 2.0
        await asyncio.gather(relay.serve(first, FakeSink()), relay.serve(second, FakeSink()))
        return relay

    relay = asyncio.run(scenario())
    assert sorted(phase for phase, _ in observed) == ["queue_wait", "queue_wait", "ttft", "ttft"]
    assert all(seconds >= 0 for _, seconds in observed)
    assert max(backlogs) == 4 + 2.0 and relay.backlog.total() == 0


class LogProbLLM(FakeLLM):
    """Chunks of two tokens, each with its log-prob, the last one an added end token."""

    async def stream(self, job: LLMJob):
        from runtime.llm_stream import TokenChunk

        yield TokenChunk([1000, 1001], [-0.5, -1.0])
        yield TokenChunk([1002, 128001], [-0.25, -3.0])


class RecordingSink(FakeSink):
    def __init__(self) -> None:
        super().__init__()
        self.log_probs: list[list[float] | None] = []

    def send_tokens(self, token_ids, context_ids, final, finish=None, log_probs=None):
        self.log_probs.append(log_probs)
        self.sent = getattr(self, "sent", []) + [list(token_ids)]
        super().send_tokens(token_ids, context_ids, final, finish, log_probs)


def test_log_probs_follow_their_tokens_and_only_when_asked():
    def served(streaming: bool, wanted: bool) -> RecordingSink:
        j = job("j", 8, streaming=streaming)
        j.end_tokens, j.return_log_probs = (128001,), wanted
        sink = RecordingSink()
        run_relay([(j, sink)], LogProbLLM())
        return sink

    assert served(True, True).log_probs == [[-0.5, -1.0], [-0.25], []]  # the cut end token's is cut too
    assert served(False, True).log_probs == [[-0.5, -1.0, -0.25]]
    assert served(True, False).log_probs == [None, None, None]


def test_a_non_streaming_answer_starts_with_the_prompt_when_the_client_asked():
    j = job("j", 3, streaming=False)
    j.include_prompt = True
    sink = RecordingSink()
    run_relay([(j, sink)], FakeLLM())
    assert sink.sent == [[1, 2, 3, 1000, 1001, 1002]] and sink.finish == "length"  # the answer's 3 tokens


def test_the_relay_tells_an_arrival_aware_policy_how_each_admitted_request_ended():
    from scheduler import Guarded

    class Recording(Guarded):
        def __init__(self) -> None:
            super().__init__()
            self.ended: list[tuple[str, int, str]] = []

        def finished(self, request, generated, finish_reason):  # noqa: ANN001, ANN201
            super().finished(request, generated, finish_reason)
            self.ended.append((request.request_id, generated, finish_reason))

    policy = Recording()

    async def scenario():
        gate = AdmissionGate(RequestQueue(policy), 1, clock=lambda: 0.0)
        relay = Relay(gate, FakeLLM(answer_len=4), cancel_poll_s=0.001)
        await asyncio.gather(relay.serve(job("natural", 10), FakeSink()), relay.serve(job("cut", 3), FakeSink()),
                             relay.serve(job("left", 10), FakeSink(cancel_after=2)))

    asyncio.run(scenario())
    assert sorted(policy.ended) == [("cut", 3, "length"), ("left", 2, "cancelled"), ("natural", 4, "stop")]
    assert policy.guard.stats().samples == 3


def test_queue_wait_and_ttft_are_differences_and_the_backlog_follows_each_token():
    """The wall clock ticks 0.25 s per reading from 100: arrival 100, admission 100.25, first token 100.5."""
    observed: list[tuple[str, float]] = []
    backlog_seen: list[float] = []
    waiting: list[float] = []
    ticks = iter(range(100))

    class WatchingSink(FakeSink):
        def send_tokens(self, token_ids, context_ids, final, finish=None, log_probs=None):
            super().send_tokens(token_ids, context_ids, final, finish)
            backlog_seen.append(relay.backlog.total())

    async def scenario():
        nonlocal relay
        gate = AdmissionGate(RequestQueue(make_policy("fcfs")), 1)
        relay = Relay(gate, FakeLLM(answer_len=3), cancel_poll_s=0.001, wall_clock=lambda: 100 + 0.25 * next(ticks),
                      observe=lambda phase, s: observed.append((phase, s)))
        gate.on_change = lambda _: waiting.append(relay.backlog.waiting_total())
        await relay.serve(job("a", 10), WatchingSink())  # expects 10 tokens (no calibration), ends after 3

    relay = None
    asyncio.run(scenario())
    assert observed == [("queue_wait", 0.25), ("ttft", 0.5)]
    assert backlog_seen[:3] == [10.0, 9.0, 8.0]  # each token, once sent, counts off the expected ones
    assert waiting[-1] == 0.0 and relay.backlog.total() == 0 and relay.backlog._live == {}  # ended: forgotten


def test_the_final_response_carries_the_last_context_tokens():
    finals: list[list[int]] = []

    class FinalSink(FakeSink):
        def send_tokens(self, token_ids, context_ids, final, finish=None, log_probs=None):
            super().send_tokens(token_ids, context_ids, final, finish)
            if final:
                finals.append(list(context_ids))

    n = 2 * CONTEXT_TOKENS + 2
    run_relay([(job("a", 100), FinalSink())], FakeLLM(answer_len=n))
    assert finals == [[1000 + i for i in range(n - CONTEXT_TOKENS, n)]]


def test_queue_timeouts_are_counted_each_and_logged_as_rejected():
    rows = []

    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("fcfs")), 1)
        relay = Relay(gate, FakeLLM(delay_s=0.002), cancel_poll_s=0.001, queue_timeout_s=0.02,
                      request_log=rows.append)
        await asyncio.gather(relay.serve(job("long", 50), FakeSink()),
                             *(relay.serve(job(f"w{i}", 5), FakeSink()) for i in range(2)))
        assert gate.inflight == 0
        return relay.stats

    stats = asyncio.run(scenario())
    assert stats.timed_out == 2
    assert sorted(r.finish_reason for r in rows) == ["length", "rejected", "rejected"]


def test_a_waiting_request_its_client_cancels_while_stopping_ends_as_cancelled_not_shut_down():
    async def stopping():
        grace = {"left": None}
        gate = AdmissionGate(RequestQueue(make_policy("fcfs")), 1)
        relay = Relay(gate, FakeLLM(delay_s=0.002), cancel_poll_s=0.001, grace_left=lambda: grace["left"])
        running = FakeSink()
        task = asyncio.create_task(relay.serve(job("run", 20), running))
        await asyncio.sleep(0.005)
        leaving = FakeSink()
        leaving.is_cancelled = lambda: grace["left"] is not None  # type: ignore[method-assign]
        waiter = asyncio.create_task(relay.serve(job("wait", 5), leaving))
        await asyncio.sleep(0.005)
        grace["left"] = 60.0  # the stop begins as the client leaves: the client's end wins
        await waiter
        grace["left"] = None
        await task
        return relay.stats, leaving

    stats, leaving = asyncio.run(stopping())
    assert leaving.finish == "cancelled" and not leaving.errors
    assert (stats.cancelled, stats.shut_down) == (1, 0)


def test_by_default_a_cancelled_waiter_is_noticed_within_a_tenth_of_a_second_and_stops_wait_5_s():
    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("fcfs")), 1)
        relay = Relay(gate, FakeLLM(delay_s=0.01))
        assert relay.stop_timeout_s == 5.0  # how long an engine's answer to a stop is awaited
        leaving = FakeSink()
        flag = {"gone": False}
        leaving.is_cancelled = lambda: flag["gone"]  # type: ignore[method-assign]
        holder = asyncio.create_task(relay.serve(job("run", 300), FakeSink()))  # holds the slot ~3 s
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(relay.serve(job("wait", 5), leaving))
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        flag["gone"], started = True, loop.time()
        await waiter
        noticed = loop.time() - started
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        return noticed, leaving

    noticed, leaving = asyncio.run(scenario())
    assert leaving.finish == "cancelled" and noticed < 0.8
