"""`classify` on its own: every decision, for a client still there, one that has left (its
scheduler request is being stopped) and one whose stop was let go; the exact errors the client gets."""

from __future__ import annotations

import pytest

from runtime.entry_decision import Act, Decision, classify
from runtime.entry_seams import SchedulerReply, StepError
from runtime.scheduler_stream import Arrival, StreamEvent
from runtime.stub_watch import SCHEDULER, SchedulerWatch, StubDied
from tests.runtime.test_stub_watch import STUB_DEAD

SENT_AT, NOW, STALL_S, UNAVAILABLE = 100.0, 110.0, 5.0, "UNAVAILABLE"
TOKENS = SchedulerReply(token_ids=[1, 2], context_ids=[], final=False)
FINAL = SchedulerReply(token_ids=[], context_ids=[], final=True, finish_reason="length")
REFUSED = StepError("server overloaded: 10 requests waiting", UNAVAILABLE)
BUG = KeyError("output_ids")


class Watch(SchedulerWatch):
    """Never probes; records what it was told; dead since `dead_seen_at` when that is set."""

    def __init__(self, dead_seen_at: float | None = None) -> None:
        super().__init__(probe=lambda: None, clock=lambda: NOW)
        self.dead_seen_at = dead_seen_at
        self.told: list[float] = []

    def waiting(self, since: float) -> None:
        self.told.append(since)


def silence(quiet_since: float = NOW - 1, queued: bool = False) -> StreamEvent:
    return StreamEvent(Arrival.NOTHING, quiet_since=quiet_since, queued=queued)


EVENTS = {
    "reply": StreamEvent(Arrival.REPLY, reply=TOKENS),
    "final reply": StreamEvent(Arrival.REPLY, reply=FINAL),
    "empty": StreamEvent(Arrival.EMPTY),
    "refusal": StreamEvent(Arrival.REFUSAL, error=REFUSED),
    "dead stub's refusal": StreamEvent(Arrival.REFUSAL, error=StepError(STUB_DEAD, "INTERNAL")),
    "broken call": StreamEvent(Arrival.BROKEN, error=RuntimeError("boom")),
    "broken call on a dead stub": StreamEvent(Arrival.BROKEN, error=RuntimeError(STUB_DEAD)),
    "unreadable": StreamEvent(Arrival.UNREADABLE, error=BUG),
    "end after tokens": StreamEvent(Arrival.END, tokens=3),
    "bare end": StreamEvent(Arrival.END),
    "silence": silence(),
    "stalled silence": silence(quiet_since=NOW - STALL_S - 1),
    "stalled silence while queued": silence(quiet_since=NOW - STALL_S - 1, queued=True),
}


def decide(name: str, presence: str = "here", watch: Watch | None = None,
           stall_timeout_s: float | None = STALL_S) -> Decision:
    return classify(EVENTS[name], presence, watch or Watch(), NOW, sent_at=SENT_AT,
                    stall_timeout_s=stall_timeout_s, unavailable=UNAVAILABLE)


@pytest.mark.parametrize("name, here, stopping", [
    ("reply", Act.FORWARD, Act.SKIP),
    ("final reply", Act.DONE, Act.END_CANCELLED),
    ("empty", Act.SKIP, Act.SKIP),
    ("refusal", Act.RAISE, Act.END_CANCELLED),
    ("dead stub's refusal", Act.RAISE, Act.END_CANCELLED),
    ("broken call", Act.RAISE, Act.END_CANCELLED),
    ("broken call on a dead stub", Act.RAISE, Act.END_CANCELLED),
    ("unreadable", Act.RAISE, Act.RAISE),  # a bug fails the request even after the client left
    ("end after tokens", Act.RAISE, Act.END_CANCELLED),
    ("bare end", Act.RAISE, Act.END_CANCELLED),
    ("silence", Act.WAIT, Act.WAIT),
    ("stalled silence", Act.RAISE, Act.WAIT),  # a stopping request waits out stop_timeout_s instead
    ("stalled silence while queued", Act.WAIT, Act.WAIT),  # a queued request may wait long
])
def test_each_event_gets_one_decision_by_whether_the_client_is_there(name, here, stopping):
    assert decide(name, "here").act is here
    decision = decide(name, "stopping")
    assert decision.act is stopping and not decision.stop_timed_out


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_a_stop_let_go_ends_the_request_as_cancelled_whatever_came(name):
    watch = Watch()
    assert decide(name, "let go", watch) == Decision(Act.END_CANCELLED, stop_timed_out=True)
    assert watch.told == []  # nothing else is looked at


def test_replies_are_forwarded_as_they_came():
    assert decide("reply") == Decision(Act.FORWARD, reply=TOKENS)
    assert decide("final reply") == Decision(Act.DONE, reply=FINAL)


def test_the_schedulers_own_error_is_passed_on_as_it_came():
    assert decide("refusal").error is REFUSED


@pytest.mark.parametrize("name", ["dead stub's refusal", "broken call on a dead stub"])
def test_a_dead_stubs_error_becomes_the_stub_death_of_the_scheduler(name):
    error = decide(name).error
    assert isinstance(error, StubDied) and error.step == SCHEDULER and error.__cause__ is EVENTS[name].error


def test_a_broken_call_is_a_step_error_naming_it():
    error = decide("broken call").error
    assert isinstance(error, StepError) and (error.message, error.code) == ("scheduler call failed: boom", None)


def test_a_bug_in_reading_is_raised_as_it_came():
    assert decide("unreadable").error is BUG


def test_the_end_without_a_final_response_is_an_error_and_without_any_answer_a_retryable_one():
    after_tokens, bare = decide("end after tokens").error, decide("bare end").error
    assert isinstance(after_tokens, StepError) and after_tokens.code is None
    assert after_tokens.message == "the scheduler's stream ended without a final response"
    assert isinstance(bare, StepError) and bare.code == UNAVAILABLE
    assert bare.message == ("the scheduler ended the request without an answer (its refusal was lost on the way); "
                            "retry later")


def test_a_silence_past_the_stall_timeout_is_a_retryable_error():
    error = decide("stalled silence").error
    assert isinstance(error, StepError) and error.code == UNAVAILABLE
    assert error.message == ("generation failed: no response for 6 s (the LLM's model may have died; the deployment "
                             "is recovering): retry")
    assert decide("stalled silence", stall_timeout_s=None).act is Act.WAIT
    assert classify(silence(quiet_since=NOW - STALL_S), "here", Watch(), NOW, sent_at=SENT_AT,
                    stall_timeout_s=STALL_S, unavailable=UNAVAILABLE).act is Act.WAIT  # only past it


@pytest.mark.parametrize("queued", [False, True])
def test_a_silence_after_a_probe_found_the_stub_dead_ends_the_request(queued):
    """Raised while the client is there, the cancelled end once it has left; a death seen before the
    request was sent says nothing about it."""
    event = silence(queued=queued)
    died = classify(event, "here", Watch(dead_seen_at=SENT_AT + 1), NOW, sent_at=SENT_AT, stall_timeout_s=STALL_S,
                    unavailable=UNAVAILABLE)
    assert died.act is Act.RAISE and isinstance(died.error, StubDied) and died.error.__cause__ is None
    assert classify(event, "stopping", Watch(dead_seen_at=SENT_AT), NOW, sent_at=SENT_AT, stall_timeout_s=STALL_S,
                    unavailable=UNAVAILABLE) == Decision(Act.END_CANCELLED)
    assert classify(event, "here", Watch(dead_seen_at=SENT_AT - 1), NOW, sent_at=SENT_AT, stall_timeout_s=STALL_S,
                    unavailable=UNAVAILABLE).act is Act.WAIT


@pytest.mark.parametrize("presence", ["here", "stopping"])
def test_the_watch_is_told_of_every_silence_and_nothing_else(presence):
    watch = Watch()
    for name in EVENTS:
        decide(name, presence, watch)
    silences = [e.quiet_since for e in EVENTS.values() if e.kind is Arrival.NOTHING]
    assert watch.told == silences
