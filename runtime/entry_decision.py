"""What the entry does with each event of its scheduler stream, decided in one place.

`classify` turns one `StreamEvent`, with whether the client is still there, into one `Decision`;
`EntryFlow` only acts on it. The client's leaving is asked about here alone: once it has left,
nothing more is sent to it, and whatever ends the scheduler's stream (its cancelled final
response, an error, a dead stub) ends the request as cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from runtime.entry_seams import SchedulerReply, StepError
from runtime.scheduler_stream import Arrival, StreamEvent
from runtime.stub_watch import SCHEDULER, SchedulerWatch, StubDied, stub_died

# here: the client waits; stopping: it left and the scheduler request is being stopped; let go: the
# scheduler did not end the stopped request within stop_timeout_s
Presence = Literal["here", "stopping", "let go"]


class Act(Enum):
    FORWARD = "forward"  # send the reply to the client, read on
    DONE = "done"  # send the final reply: the request completed
    SKIP = "skip"  # nothing for the client, read on
    WAIT = "wait"  # nothing came, read on
    END_CANCELLED = "end cancelled"  # end the client's stream with the cancelled final response
    RAISE = "raise"  # end the request with `error`


@dataclass(frozen=True)
class Decision:
    act: Act
    reply: SchedulerReply | None = None  # FORWARD, DONE
    error: BaseException | None = None  # RAISE
    stop_timed_out: bool = False  # END_CANCELLED: the scheduler never ended the stopped request


def classify(event: StreamEvent, presence: Presence, watch: SchedulerWatch, now: float, *, sent_at: float,
             stall_timeout_s: float | None, unavailable: Any) -> Decision:
    """The one decision for `event`, the one place that asks whether the client is there. Its one
    side effect: the watch hears of every silence (it may start a probe)."""
    if presence == "let go":
        return Decision(Act.END_CANCELLED, stop_timed_out=True)
    if event.kind is Arrival.UNREADABLE:  # a bug fails the request, whether the client is there or not
        return Decision(Act.RAISE, error=event.error)
    if event.kind is Arrival.NOTHING:
        watch.waiting(event.quiet_since)
    ending = _ending(event, watch, sent_at, unavailable)
    if presence == "stopping":  # nothing more goes to the client; no stall timeout (stop_timeout_s bounds it)
        if ending is not None:
            return Decision(Act.END_CANCELLED)
        return Decision(Act.WAIT if event.kind is Arrival.NOTHING else Act.SKIP)
    return ending if ending is not None else _going_on(event, now, stall_timeout_s, unavailable)


def _ending(event: StreamEvent, watch: SchedulerWatch, sent_at: float, unavailable: Any) -> Decision | None:
    """How `event` ends the scheduler's stream, for a client still there; None if the stream goes on."""
    kind, error = event.kind, event.error
    if kind is Arrival.REPLY and event.reply is not None and event.reply.final:
        return Decision(Act.DONE, reply=event.reply)
    if kind is Arrival.NOTHING and watch.died_since(sent_at):
        return Decision(Act.RAISE, error=StubDied(SCHEDULER))
    if kind is Arrival.END:
        if event.tokens:
            return Decision(Act.RAISE, error=StepError("the scheduler's stream ended without a final response"))
        # Nothing came but the end: under overload, Triton 2.51 at times hands a BLS caller the bare
        # final flag of a refusal first and drops the refusal itself (`make faults`, results/faults.json:
        # 13 of 30 refusals in the overload probe). The refusals the scheduler sends before a first token are
        # retryable ones, or bad requests, which preprocessing and the scheduler mostly refuse
        # before their queue.
        return Decision(Act.RAISE, error=StepError("the scheduler ended the request without an answer (its refusal "
                                                   "was lost on the way); retry later", unavailable))
    if kind is Arrival.BROKEN or kind is Arrival.REFUSAL:
        if stub_died(str(error)):  # the call failed on a dead stub, or was sent to one already dead
            return Decision(Act.RAISE, error=_died_from(error))
        if kind is Arrival.REFUSAL:  # the scheduler's own error, passed on
            return Decision(Act.RAISE, error=error)
        return Decision(Act.RAISE, error=StepError(f"scheduler call failed: {error}"))
    return None


def _going_on(event: StreamEvent, now: float, stall_timeout_s: float | None, unavailable: Any) -> Decision:
    """What a client still there gets from an event after which the stream goes on."""
    if event.kind is Arrival.REPLY:
        return Decision(Act.FORWARD, reply=event.reply)
    if event.kind is Arrival.NOTHING and not event.queued and stall_timeout_s is not None:
        silent_s = now - event.quiet_since
        if silent_s > stall_timeout_s:
            return Decision(Act.RAISE, error=StepError(
                f"generation failed: no response for {silent_s:.0f} s (the LLM's model may have died; the "
                "deployment is recovering): retry", unavailable))
    return Decision(Act.WAIT if event.kind is Arrival.NOTHING else Act.SKIP)


def _died_from(error: BaseException | None) -> StubDied:
    died = StubDied(SCHEDULER)
    died.__cause__ = error
    return died
