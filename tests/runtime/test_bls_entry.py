"""The `ltr_bls` entry model's request life with fake steps: the ensemble's route and tensors, its
answers, its errors, what a client's cancellation frees (the scheduler request is stopped by its
own unguessable id, the client's stream ends with one final response), and what a dead scheduler
stub does to the requests on it (they end with a retryable error within seconds)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from runtime.bls_entry import EntryFlow, split_inputs
from runtime.contracts import PREPROCESSING_TO_SCHEDULER
from runtime.entry_seams import SchedulerReply, StepError
from tests.runtime.test_stub_watch import DIED, STUB_DEAD

INVALID, UNAVAILABLE = "INVALID_ARG", "UNAVAILABLE"  # opaque codes: the flow passes them on as they came


def reply(tokens: list[int], final: bool = False, finish: str = "") -> SchedulerReply:
    return SchedulerReply(token_ids=tokens, context_ids=[], final=final, finish_reason=finish)


ANSWER = [reply([1, 2]), reply([3]), reply([4, 5]), reply([], final=True, finish="length")]


class FakeSteps:
    """Preprocessing answers at once; the scheduler streams `replies` from a blocking generator (read
    on the flow's reader thread, as a BLS iterator is), `pace_s` apart, and ends a stopped request
    with a "cancelled" final response, as ltr_scheduler does."""

    def __init__(self, replies=ANSWER, pace_s: float = 0.0, pre_error: StepError | None = None,
                 refused_stops: int = 0, never_end: bool = False, queued_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.pace_s = pace_s
        self.pre_error = pre_error
        self.refused_stops = refused_stops  # `stop` finds no live request this often first (not there yet)
        self.never_end = never_end  # a dead scheduler stub: the stream neither answers nor ends
        self.queued_s = queued_s  # waits this long in the queue (no response at all) unless stopped
        self.preprocessed: list[dict] = []
        self.scheduled: list[tuple[dict, str]] = []
        self.stops: list[str] = []
        self.stopped = threading.Event()
        self.release = threading.Event()
        self.dead = threading.Event()  # the scheduler's stub died: no more responses, streams never end
        self.probes = 0

    async def preprocess(self, inputs):
        self.preprocessed.append(dict(inputs))
        if self.pre_error is not None:
            raise self.pre_error
        return {name: np.array([[i]]) for i, name in enumerate(PREPROCESSING_TO_SCHEDULER)}

    async def schedule(self, inputs, request_id):
        """Returns with the first response, as the python backend's `async_exec` does."""
        self.scheduled.append((dict(inputs), request_id))
        if self.dead.is_set():  # a call to a dead stub is answered at once, with an error
            return iter([("error", StepError(STUB_DEAD, "INTERNAL"))])
        responses = self._stream()
        first = await asyncio.to_thread(next, responses, None)
        return itertools.chain([] if first is None else [first], responses)

    def _stream(self):
        queued_until = time.monotonic() + self.queued_s
        while time.monotonic() < queued_until and not (self.stopped.is_set() or self.release.is_set()):
            time.sleep(0.005)
        if self.dead.is_set():
            self.release.wait(10)
            return
        for item in self.replies:
            if self.stopped.is_set():
                break
            time.sleep(self.pace_s)
            if self.dead.is_set():
                self.release.wait(10)
                return
            yield ("error", item) if isinstance(item, StepError) else item  # an error response, not a failed call
        if self.never_end:
            self.release.wait(10)
            return
        if self.stopped.is_set():
            yield reply([], final=True, finish="cancelled")

    def read(self, item):
        if isinstance(item, tuple):
            raise item[1]
        return item

    async def stop(self, request_id: str) -> bool:
        self.stops.append(request_id)
        if len(self.stops) <= self.refused_stops or self.dead.is_set():
            return False
        self.stopped.set()
        return True

    async def probe(self):
        self.probes += 1
        return STUB_DEAD if self.dead.is_set() else "no live request with id 'probe' to stop"


class FakeSink:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.sent: list[tuple[str, int, str, bool]] = []
        self.engine_outputs: list[dict] = []
        self.errors: list[StepError] = []
        self.cancel_after = cancel_after  # the client leaves after this many responses

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.sent) >= self.cancel_after

    def send(self, text, tokens, finish, final, engine_outputs=None):
        assert not self.finished, "nothing after the final response"
        self.sent.append((text, tokens, finish, final))
        self.engine_outputs.append(dict(engine_outputs or {}))

    def send_error(self, error):
        assert not self.finished
        self.errors.append(error)

    @property
    def finished(self) -> bool:
        return bool(self.errors) or any(final for *_, final in self.sent)


def text_of(context, new, final):
    return ",".join(map(str, new)) + ("." if final else "")


def serve(steps: FakeSteps, sink: FakeSink, inputs=None, **flow_args):
    inputs = inputs if inputs is not None else {"text_input": np.array([[b"hi"]], dtype=object),
                                                "max_tokens": np.array([[5]], dtype=np.int32)}

    async def scenario():
        with ThreadPoolExecutor(4) as readers:
            flow = EntryFlow(steps, text_of, readers, **{"cancel_poll_s": 0.01, **flow_args})
            outcome = await flow.serve(inputs, sink)
            steps.release.set()
            return outcome, flow.stats

    return asyncio.run(scenario())


def test_each_scheduler_response_becomes_one_client_response_with_the_ensembles_outputs():
    steps, sink = FakeSteps(), FakeSink()
    outcome, stats = serve(steps, sink)
    assert outcome == "completed" and stats.completed == 1 and stats.live == 0
    assert sink.sent == [("1,2", 2, "", False), ("3", 1, "", False), ("4,5", 2, "", False), (".", 0, "length", True)]
    assert sink.errors == [] and steps.stops == []


def test_the_request_takes_the_ensembles_route_with_its_tensors_renamed():
    steps = FakeSteps()
    inputs = {"text_input": np.array([[b"hi"]], dtype=object), "max_tokens": np.array([[5]], dtype=np.int32),
              "stream": np.array([[True]]), "top_k": np.array([[3]], dtype=np.int32)}
    serve(steps, FakeSink(), inputs)
    assert set(steps.preprocessed[0]) == {"QUERY", "REQUEST_OUTPUT_LEN"}
    (scheduled, request_id), = steps.scheduled
    assert set(scheduled) == set(PREPROCESSING_TO_SCHEDULER.values()) | {"streaming", "runtime_top_k"}
    assert scheduled["runtime_top_k"][0, 0] == 3 and scheduled["streaming"][0, 0]


def test_every_scheduler_request_gets_an_unguessable_id_of_its_own():
    steps = FakeSteps()
    for _ in range(3):
        serve(steps, FakeSink())
    ids = [request_id for _, request_id in steps.scheduled]
    assert len(set(ids)) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_unknown_inputs_are_refused():
    with pytest.raises(ValueError, match="not inputs of the entry interface"):
        split_inputs({"text_input": np.zeros(1), "stop": np.ones(1)})


def test_a_preprocessing_error_reaches_the_client_with_its_code_and_nothing_is_scheduled():
    steps, sink = FakeSteps(pre_error=StepError("text_input is empty", INVALID)), FakeSink()
    outcome, stats = serve(steps, sink)
    assert outcome == "error" and stats.error == 1
    assert [(e.message, e.code) for e in sink.errors] == [("text_input is empty", INVALID)]
    assert steps.scheduled == [] and sink.sent == []


def test_a_scheduler_error_ends_the_stream_with_that_error_and_code():
    overloaded = StepError("server overloaded: 10 requests waiting", UNAVAILABLE)
    steps, sink = FakeSteps(replies=[overloaded]), FakeSink()
    outcome, _ = serve(steps, sink)
    assert outcome == "error" and sink.errors == [overloaded] and sink.sent == []


def test_a_stream_that_ends_without_a_final_response_is_an_error_not_a_hang():
    steps, sink = FakeSteps(replies=[reply([1])]), FakeSink()
    outcome, _ = serve(steps, sink)
    assert outcome == "error" and "without a final response" in sink.errors[0].message


def test_a_stream_that_ends_with_nothing_at_all_is_a_retryable_error():
    """Triton 2.51 at times drops a refusal (server overloaded) and hands the caller only the end."""
    steps, sink = FakeSteps(replies=[]), FakeSink()
    outcome, _ = serve(steps, sink)
    assert outcome == "error" and sink.errors[0].code == UNAVAILABLE and "without an answer" in sink.errors[0].message


def test_empty_responses_are_skipped():
    class WithEmpty(FakeSteps):
        def read(self, item):
            return None if item == "empty" else super().read(item)

    steps, sink = WithEmpty(replies=["empty", reply([7]), "empty", reply([], final=True, finish="stop")]), FakeSink()
    serve(steps, sink)
    assert sink.sent == [("7", 1, "", False), (".", 0, "stop", True)]


def test_a_client_that_leaves_mid_answer_is_stopped_in_the_scheduler_and_its_stream_ends():
    steps = FakeSteps(replies=[reply([i]) for i in range(100)] + [reply([], final=True, finish="length")], pace_s=0.05)
    sink = FakeSink(cancel_after=2)
    started = time.monotonic()
    outcome, stats = serve(steps, sink)
    assert outcome == "cancelled" and stats.cancelled == 1 and stats.live == 0
    assert time.monotonic() - started < 2.5  # not the 5 s the whole answer takes (slack for a loaded machine)
    assert steps.stops == [steps.scheduled[0][1]]  # the scheduler request's own id
    assert sink.sent[:2] == [("0", 1, "", False), ("1", 1, "", False)]
    assert sink.sent[-1] == ("", 0, "cancelled", True) and len(sink.sent) == 3  # nothing between: the client is gone


def test_a_stop_that_arrives_before_the_scheduler_knows_the_id_is_sent_again():
    steps = FakeSteps(replies=[reply([i]) for i in range(100)], pace_s=0.01, refused_stops=2)
    outcome, _ = serve(steps, FakeSink(cancel_after=1))
    assert outcome == "cancelled" and len(steps.stops) == 3 and len(set(steps.stops)) == 1


def test_a_client_that_leaves_while_its_request_waits_in_the_queue_is_stopped_there():
    """A queued request has no response yet (the BLS call is still blocked on its reader thread):
    the client's leaving is seen anyway, and the stop takes it out of the queue."""
    steps = FakeSteps(queued_s=5.0)
    leave_after_schedule = FakeSink()
    leave_after_schedule.is_cancelled = lambda: bool(steps.scheduled)  # leaves once it is queued
    started = time.monotonic()
    outcome, _ = serve(steps, leave_after_schedule)
    assert outcome == "cancelled" and time.monotonic() - started < 1.0
    assert steps.stops == [steps.scheduled[0][1]] and leave_after_schedule.sent == [("", 0, "cancelled", True)]


def test_a_client_that_left_during_preprocessing_is_never_scheduled():
    steps, sink = FakeSteps(), FakeSink(cancel_after=0)
    outcome, _ = serve(steps, sink)
    assert outcome == "cancelled" and steps.scheduled == [] and sink.sent == [("", 0, "cancelled", True)]


def test_a_scheduler_that_never_ends_a_stopped_request_is_let_go_after_the_stop_timeout():
    steps = FakeSteps(replies=[reply([1])], never_end=True)
    sink = FakeSink(cancel_after=1)
    started = time.monotonic()
    outcome, stats = serve(steps, sink, stop_timeout_s=0.2)
    assert outcome == "cancelled" and stats.stop_timeouts == 1
    assert 0.2 <= time.monotonic() - started < 2 and sink.sent[-1] == ("", 0, "cancelled", True)


LONG = [reply([i]) for i in range(300)] + [reply([], final=True, finish="length")]
QUICK_PROBES = {"probe_after_s": 0.2, "probe_every_s": 0.2}


def serve_many(steps: FakeSteps, sinks: list[FakeSink], die_after_s: float | None = None, **flow_args):
    """Several requests at once; the scheduler's stub dies `die_after_s` after they start."""
    inputs = {"text_input": np.array([[b"hi"]], dtype=object), "max_tokens": np.array([[5]], dtype=np.int32)}

    async def scenario():
        with ThreadPoolExecutor(8) as readers:
            flow = EntryFlow(steps, text_of, readers, **{"cancel_poll_s": 0.01, **QUICK_PROBES, **flow_args})
            if die_after_s is not None:
                asyncio.get_running_loop().call_later(die_after_s, steps.dead.set)
            outcomes = await asyncio.gather(*(flow.serve(inputs, sink) for sink in sinks))
            steps.release.set()
            return outcomes, flow

    return asyncio.run(scenario())


def test_requests_generating_on_a_dead_scheduler_end_with_a_retryable_error_within_seconds():
    steps = FakeSteps(replies=LONG, pace_s=0.01)  # 3 s per answer if it lived
    sinks = [FakeSink() for _ in range(3)]
    started = time.monotonic()
    outcomes, flow = serve_many(steps, sinks, die_after_s=0.3)
    assert time.monotonic() - started < 0.3 + 0.2 + 0.5  # probe_after_s, then one probe
    assert outcomes == ["error"] * 3 and flow.stats.stub_deaths == 3 and flow.stats.live == 0
    for sink in sinks:
        assert sink.sent and [(e.message, e.code) for e in sink.errors] == [(DIED, UNAVAILABLE)]
    assert steps.probes == 1  # one probe told all three


def test_requests_waiting_in_the_queue_of_a_dead_scheduler_end_with_the_same_error():
    steps = FakeSteps(queued_s=10.0)  # admitted only after 10 s if the scheduler lived
    sinks = [FakeSink() for _ in range(3)]
    started = time.monotonic()
    outcomes, flow = serve_many(steps, sinks, die_after_s=0.1)
    assert time.monotonic() - started < 1.0
    assert outcomes == ["error"] * 3
    assert all(sink.sent == [] and [e.message for e in sink.errors] == [DIED] for sink in sinks)


def test_a_request_that_arrives_while_the_scheduler_is_dead_gets_the_same_error_at_once():
    steps = FakeSteps()
    steps.dead.set()
    sink = FakeSink()
    started = time.monotonic()
    outcome, stats = serve(steps, sink)
    assert outcome == "error" and stats.stub_deaths == 1 and time.monotonic() - started < 0.5
    assert [(e.message, e.code) for e in sink.errors] == [(DIED, UNAVAILABLE)]


def test_a_bls_call_that_raises_the_stub_error_gets_the_same_error():
    class Raising(FakeSteps):
        async def schedule(self, inputs, request_id):
            raise RuntimeError(STUB_DEAD)

    sink = FakeSink()
    outcome, _ = serve(Raising(), sink)
    assert outcome == "error" and [(e.message, e.code) for e in sink.errors] == [(DIED, UNAVAILABLE)]


def test_a_dead_preprocessing_stub_is_named_in_the_retryable_error():
    steps = FakeSteps(pre_error=StepError("Stub process 'preprocessing_0_0' is not healthy.", "INTERNAL"))
    sink = FakeSink()
    serve(steps, sink)
    assert [(e.message, e.code) for e in sink.errors] == [
        ("preprocessing's process died; the deployment is recovering: retry", UNAVAILABLE)]


def test_a_healthy_scheduler_is_not_probed_while_answers_keep_coming():
    steps = FakeSteps(replies=[reply([i]) for i in range(40)] + [reply([], final=True, finish="length")], pace_s=0.01)
    outcomes, _ = serve_many(steps, [FakeSink() for _ in range(3)])
    assert outcomes == ["completed"] * 3 and steps.probes == 0


def test_long_waits_on_a_healthy_scheduler_probe_it_at_most_once_per_interval_and_end_nothing():
    steps = FakeSteps(queued_s=1.0)  # five requests queued for 1 s: each wants a probe after 0.2 s
    sinks = [FakeSink() for _ in range(5)]
    outcomes, flow = serve_many(steps, sinks)
    assert outcomes == ["completed"] * 5 and all(s.errors == [] for s in sinks)
    assert 1 <= steps.probes <= 5  # ~4 (0.2 s after the start, then every 0.2 s), not one per request per poll
    assert flow.watch.dead_seen_at is None


def test_a_client_that_left_before_the_scheduler_died_gets_its_cancelled_end():
    steps = FakeSteps(replies=LONG, pace_s=0.01, refused_stops=10**6)  # the stop never lands: the stub is dying
    sink = FakeSink(cancel_after=2)
    outcomes, flow = serve_many(steps, [sink], die_after_s=0.1)
    assert outcomes == ["cancelled"] and sink.sent[-1] == ("", 0, "cancelled", True) and sink.errors == []


def test_a_generating_request_whose_responses_stop_ends_with_a_retryable_error_after_the_stall_timeout():
    """The scheduler's own error for a stalled LLM does not reach a BLS caller on Triton 2.51."""
    steps, sink = FakeSteps(replies=[reply([1, 2])], never_end=True), FakeSink()
    outcome, stats = serve(steps, sink, stall_timeout_s=0.2, probe_after_s=60)
    assert outcome == "error" and sink.sent == [("1,2", 2, "", False)]
    assert sink.errors[0].code == UNAVAILABLE and "no response for" in sink.errors[0].message
    # the entry gave up, so it stops the scheduler request it left (else its slot stays taken)
    assert steps.stops == [steps.scheduled[0][1]] and stats.abandoned_stops == 1


def test_a_request_the_entry_fails_on_a_bug_is_stopped_in_the_scheduler():
    class Unreadable(FakeSteps):
        def read(self, item):
            raise KeyError("output_ids")  # a bug, not the scheduler's error

    steps, sink = Unreadable(replies=LONG, pace_s=0.01), FakeSink()
    outcome, stats = serve(steps, sink)
    assert outcome == "failed" and "ltr_bls failed" in sink.errors[0].message
    assert steps.stops == [steps.scheduled[0][1]] and stats.abandoned_stops == 1


def test_a_scheduler_stream_that_ended_is_not_stopped():
    """Its error response or its end ended the scheduler's request: nothing is left to stop."""
    for replies in ([StepError("server overloaded", UNAVAILABLE)], [reply([1])]):
        steps, sink = FakeSteps(replies=replies), FakeSink()
        outcome, stats = serve(steps, sink)
        assert outcome == "error" and steps.stops == [] and stats.abandoned_stops == 0


def test_without_a_stall_timeout_slow_answers_are_waited_for():
    steps, sink = FakeSteps(replies=ANSWER, pace_s=0.05), FakeSink()
    outcome, _ = serve(steps, sink, stall_timeout_s=1.0)
    assert outcome == "completed" and sink.sent[-1][3]


def test_two_requests_failed_on_a_bug_are_both_stopped_and_counted():
    class Unreadable(FakeSteps):
        def read(self, item):
            raise KeyError("output_ids")

    steps = Unreadable(replies=LONG, pace_s=0.01)
    outcomes, flow = serve_many(steps, [FakeSink(), FakeSink()])
    assert outcomes == ["failed", "failed"] and flow.stats.abandoned_stops == 2 and len(steps.stops) == 2


def test_a_stop_the_scheduler_never_takes_is_given_up_after_stop_timeout_s():
    class Unreadable(FakeSteps):
        def read(self, item):
            raise KeyError("output_ids")

    steps = Unreadable(replies=ANSWER, refused_stops=10**6)  # "no live request" forever

    async def scenario():
        with ThreadPoolExecutor(4) as readers:
            flow = EntryFlow(steps, text_of, readers, cancel_poll_s=0.01, stop_timeout_s=0.1)
            started = time.monotonic()
            outcome = await asyncio.wait_for(flow.serve({"text_input": np.array([[b"hi"]], dtype=object),
                                                         "max_tokens": np.array([[5]], dtype=np.int32)},
                                                        FakeSink()), 3.0)
            took = time.monotonic() - started
            steps.release.set()
            return outcome, flow.stats, took

    outcome, stats, took = asyncio.run(scenario())
    assert outcome == "failed" and stats.abandoned_stops == 0  # never taken, so not counted
    assert took < 1.5  # the request's end waited about the stop timeout, not for a stop that never lands


def test_a_refused_stop_is_sent_again_after_doubling_waits_up_to_half_a_second(monkeypatch):
    """The BLS request may not have reached the scheduler yet: 0.02 s, 0.04 s, ... at most 0.5 s."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(delay: float, *args):
        waits.append(delay)
        await real_sleep(0)

    class Refusing(FakeSteps):
        async def stop(self, request_id: str) -> bool:
            self.stops.append(request_id)
            return len(self.stops) > 7

    steps = Refusing()
    flow = EntryFlow(steps, text_of, None, cancel_poll_s=0.01)
    monkeypatch.setattr("runtime.bls_entry.asyncio.sleep", recorded)
    asyncio.run(flow._stop("r1"))
    assert waits == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5]) and len(steps.stops) == 8


def test_only_a_dead_stubs_message_outside_a_step_error_means_the_scheduler_died():
    from runtime.bls_entry import _scheduler_died
    from runtime.stub_watch import StubDied

    assert _scheduler_died(StubDied("ltr_scheduler"))
    assert _scheduler_died(RuntimeError(STUB_DEAD))  # a BLS call to a dead stub raised
    assert not _scheduler_died(StepError(STUB_DEAD, "INTERNAL"))  # the step answered: it lives
    assert not _scheduler_died(RuntimeError("boom"))


def test_the_flows_defaults_and_what_its_observer_sees():
    seen: list[tuple[int, int]] = []
    flow = EntryFlow(FakeSteps(), text_of, None, on_change=lambda stats: seen.append((stats.live, stats.completed)))
    assert (flow.cancel_poll_s, flow.stop_timeout_s) == (0.1, 10.0)  # the documented defaults
    assert (flow.watch.after_s, flow.watch.every_s) == (1.0, 1.0)
    flow = EntryFlow(FakeSteps(), text_of, None, probe_after_s=0.3, probe_every_s=0.7)
    assert (flow.watch.after_s, flow.watch.every_s) == (0.3, 0.7)
    steps, sink = FakeSteps(), FakeSink()

    async def scenario():
        with ThreadPoolExecutor(2) as readers:
            observed = EntryFlow(steps, text_of, readers, cancel_poll_s=0.01,
                                 on_change=lambda stats: seen.append((stats.live, stats.completed)))
            await observed.serve({"text_input": np.array([[b"hi"]], dtype=object),
                                  "max_tokens": np.array([[5]], dtype=np.int32)}, sink)

    seen.clear()
    asyncio.run(scenario())
    assert seen == [(1, 0), (0, 1)]  # on arrival and at the end, the stats themselves


def test_preprocessing_that_raises_fails_the_request_or_reports_its_dead_stub():
    class Raising(FakeSteps):
        def __init__(self, error: Exception) -> None:
            super().__init__()
            self.error = error

        async def preprocess(self, inputs):
            raise self.error

    outcome, _ = serve(Raising(RuntimeError("boom")), sink := FakeSink())
    assert outcome == "failed" and sink.errors[0].message == "ltr_bls failed: boom"
    outcome, stats = serve(Raising(RuntimeError(STUB_DEAD)), sink := FakeSink())  # a BLS call to a dead stub
    assert outcome == "error" and stats.stub_deaths == 1 and "preprocessing" in sink.errors[0].message


def test_each_finished_scheduler_iterator_is_handed_to_the_deferred_release():
    from runtime.llm_stream import DeferredRelease

    release = DeferredRelease(hold_s=60.0)
    steps, sink = FakeSteps(), FakeSink()

    async def scenario():
        with ThreadPoolExecutor(2) as readers:
            flow = EntryFlow(steps, text_of, readers, cancel_poll_s=0.01, release=release)
            outcome = await flow.serve({"text_input": np.array([[b"hi"]], dtype=object),
                                        "max_tokens": np.array([[5]], dtype=np.int32)}, sink)
            for _ in range(100):  # the reader thread hands it over through the loop
                if len(release):
                    break
                await asyncio.sleep(0.01)
            return outcome

    assert asyncio.run(scenario()) == "completed" and len(release) == 1
