"""One scheduler request's answer as events: whatever the entry's next poll finds becomes one typed
`StreamEvent`, so the entry decides on kinds, never on raw responses, exceptions or timeouts.

The BLS call returns only with the first response (a queued request waits long for it); then a
reader thread puts the responses on a queue (`runtime.llm_stream.read_into`). Either wait is cut at
`poll_s`, so that the entry can watch its client meanwhile.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Awaitable, Callable, Iterable

from runtime.entry_seams import SchedulerReply, StepError
from runtime.llm_stream import DeferredRelease, read_into


class Arrival(Enum):
    REPLY = "reply"  # a response with tokens or the final flag
    EMPTY = "empty"  # a response with nothing for the client (a bare final flag)
    REFUSAL = "refusal"  # the scheduler answered with an error (a StepError)
    BROKEN = "broken"  # the BLS call's iterator raised
    UNREADABLE = "unreadable"  # reading a response raised something other than a StepError (a bug)
    END = "end"  # the stream ended
    NOTHING = "nothing"  # nothing within the poll interval


@dataclass(frozen=True)
class StreamEvent:
    kind: Arrival
    reply: SchedulerReply | None = None  # REPLY
    error: Exception | None = None  # REFUSAL, BROKEN, UNREADABLE
    tokens: int = 0  # END: how many tokens came before it
    quiet_since: float = 0.0  # NOTHING: when the stream last showed life (sent, first response, last response)
    queued: bool = False  # NOTHING: the call has not returned yet (no first response)


class SchedulerStream:
    """Sends the scheduler request at once (`call`); `next` waits at most `poll_s` for what comes."""

    def __init__(self, call: Awaitable[Iterable[Any]], read: Callable[[Any], SchedulerReply | None],
                 readers: Executor, poll_s: float, clock: Callable[[], float],
                 release: DeferredRelease | None = None) -> None:
        self.read = read  # a raw response as a reply (Steps.read)
        self.readers = readers  # one blocked thread per live stream
        self.poll_s = poll_s
        self.clock = clock
        self.release = release  # finished BLS iterators are let go on the event loop (its docstring)
        self.sent_at = clock()  # only a probe that started after this can end the request
        self.quiet_since = self.sent_at
        self.tokens = 0
        self.ended = False  # the scheduler's stream ended (its end or its error response, which is final)
        self._call = asyncio.ensure_future(call)
        self._arrived: asyncio.Queue | None = None  # once the call returned

    async def next(self) -> StreamEvent:
        """The next event; raises what the call itself raised (it never returned a stream)."""
        if self._arrived is None:
            await asyncio.wait({self._call}, timeout=self.poll_s)
            if not self._call.done():  # queued; the call stays behind, blocked, if the request ends
                return StreamEvent(Arrival.NOTHING, quiet_since=self.quiet_since, queued=True)
            responses = self._call.result()
            self._arrived = asyncio.Queue()
            self.readers.submit(read_into, responses, asyncio.get_running_loop(), self._arrived, self.release)
            self.quiet_since = self.clock()
        try:
            item = await asyncio.wait_for(self._arrived.get(), self.poll_s)
        except asyncio.TimeoutError:  # the reader thread stays behind, blocked, if the request ends
            return StreamEvent(Arrival.NOTHING, quiet_since=self.quiet_since)
        self.quiet_since = self.clock()
        if item is None:
            self.ended = True
            return StreamEvent(Arrival.END, tokens=self.tokens)
        if isinstance(item, Exception):
            return StreamEvent(Arrival.BROKEN, error=item)
        try:
            reply = self.read(item)
        except StepError as exc:
            self.ended = True
            return StreamEvent(Arrival.REFUSAL, error=exc)
        except Exception as exc:  # noqa: BLE001  (the entry fails the request with it, as a bug)
            return StreamEvent(Arrival.UNREADABLE, error=exc)
        if reply is None:
            return StreamEvent(Arrival.EMPTY)
        self.tokens += len(reply.token_ids)
        return StreamEvent(Arrival.REPLY, reply=reply)
