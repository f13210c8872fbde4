"""The scheduler's stream as events: whatever a poll finds (a reply, an empty response, the
scheduler's error, a failed call, a bug in reading, the end, nothing) is one typed event, with when
the stream last showed life and how many tokens came."""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from runtime.entry_seams import SchedulerReply, StepError
from runtime.scheduler_stream import Arrival, SchedulerStream, StreamEvent

REFUSED = StepError("server overloaded", "UNAVAILABLE")


def reply(tokens: list[int], final: bool = False) -> SchedulerReply:
    return SchedulerReply(token_ids=tokens, context_ids=[], final=final)


def read(item):
    """A raw response as Steps.read reads it: "empty" has nothing, "refused" is an error answer,
    "garbled" breaks the reader (a bug)."""
    if item == "empty":
        return None
    if item == "refused":
        raise REFUSED
    if item == "garbled":
        raise KeyError("output_ids")
    return item


def events(responses, n: int, queued_s: float = 0.0, fail: Exception | None = None,
           poll_s: float = 1.0) -> list[StreamEvent]:
    """The first `n` events of a stream whose call returns after `queued_s` with `responses`."""
    ticks = itertools.count()

    async def call():
        await asyncio.sleep(queued_s)
        if fail is not None:
            raise fail
        return responses

    async def scenario():
        with ThreadPoolExecutor(1) as readers:
            stream = SchedulerStream(call(), read, readers, poll_s, clock=lambda: float(next(ticks)))
            return [await stream.next() for _ in range(n)]

    return asyncio.run(scenario())


def test_each_response_becomes_one_event_and_the_end_counts_the_tokens():
    got = events([reply([1, 2]), "empty", reply([3]), "refused", "garbled", reply([], final=True)], 7)
    assert [e.kind for e in got] == [Arrival.REPLY, Arrival.EMPTY, Arrival.REPLY, Arrival.REFUSAL, Arrival.UNREADABLE,
                                     Arrival.REPLY, Arrival.END]
    assert got[0].reply == reply([1, 2]) and got[5].reply == reply([], final=True)
    assert got[3].error is REFUSED and isinstance(got[4].error, KeyError)
    assert got[6].tokens == 3


def test_an_iterator_that_raises_is_a_broken_call():
    def responses():
        yield reply([1])
        raise RuntimeError("Stub process 'ltr_scheduler_0_0' is not healthy.")

    first, broken = events(responses(), 2)
    assert first.kind is Arrival.REPLY
    assert broken.kind is Arrival.BROKEN and "not healthy" in str(broken.error)


def test_a_queued_call_is_a_queued_silence_since_it_was_sent():
    got = events([reply([1], final=True)], 12, queued_s=0.5, poll_s=0.05)
    waited = list(itertools.takewhile(lambda e: e.kind is Arrival.NOTHING, got))
    assert len(waited) >= 2 and set(waited) == {StreamEvent(Arrival.NOTHING, quiet_since=0.0, queued=True)}  # 0: sent
    assert got[len(waited)].kind is Arrival.REPLY


def test_a_silence_after_the_first_response_counts_from_the_last_sign_of_life():
    done = threading.Event()

    def responses():
        yield reply([1])
        done.wait(5)  # nothing more comes until the test is over

    async def scenario():
        ticks = itertools.count()  # 0: sent, 1: the call returned, 2: the reply came
        with ThreadPoolExecutor(1) as readers:
            stream = SchedulerStream(asyncio.sleep(0, result=responses()), read, readers, poll_s=0.02,
                                     clock=lambda: float(next(ticks)))
            got = [await stream.next() for _ in range(3)]
            done.set()
        return stream, got

    stream, (first, *silences) = asyncio.run(scenario())
    assert first.kind is Arrival.REPLY and stream.sent_at == 0.0
    assert silences == [StreamEvent(Arrival.NOTHING, quiet_since=2.0)] * 2


def test_a_call_that_fails_raises_from_next():
    with pytest.raises(RuntimeError, match="not healthy"):
        events([], 1, fail=RuntimeError("Stub process 'ltr_scheduler_0_0' is not healthy."))
