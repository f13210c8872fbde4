"""The stub-death watch on its own: when it probes the scheduler (only for a request that has
waited long, at most once per interval), which requests a dead stub ends (only those sent before
the probe that found it dead), and how a dead stub's error is told apart from the scheduler's own."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.stub_watch import SchedulerWatch, died_error, stub_died

STUB_DEAD = "Stub process 'ltr_scheduler_0_0' is not healthy."  # what Triton 2.51 answers for a dead stub
DIED = "the scheduler's process died; the deployment is recovering: retry"


def test_only_a_probe_sent_after_a_request_can_end_it():
    """A stub found dead before a request was sent says nothing about it: the scheduler may have
    been reloaded since (such a request's own call fails at once if it was not)."""
    async def scenario():
        now = [10.0]
        watch = SchedulerWatch(lambda: asyncio.sleep(0, result=STUB_DEAD), lambda: now[0], after_s=1.0, every_s=1.0)
        watch.waiting(since=9.5)  # waited 0.5 s: no probe
        await asyncio.sleep(0.01)
        assert watch.probes == 0
        watch.waiting(since=8.0)  # waited 2 s: probe, which finds the stub dead
        await asyncio.sleep(0.01)
        assert watch.probes == 1 and watch.died_since(8.0) and not watch.died_since(10.5)
        now[0] = 10.5
        watch.waiting(since=1.0)  # within every_s of the last probe: none
        await asyncio.sleep(0.01)
        assert watch.probes == 1

    asyncio.run(scenario())


def test_a_probe_without_an_answer_says_nothing():
    async def scenario():
        watch = SchedulerWatch(lambda: asyncio.sleep(10), time.monotonic, after_s=0.0, timeout_s=0.05)
        watch.waiting(since=0.0)
        await asyncio.sleep(0.2)
        assert watch.probes == 1 and watch.dead_seen_at is None

    asyncio.run(scenario())


@pytest.mark.parametrize("message, dead", [
    (STUB_DEAD, True),
    ("Failed to process the request(s) for model 'ltr_scheduler_0_0', message: Stub process 'x' is not healthy.", True),
    ("no live request with id 'abc' to stop", False),
    ("server overloaded: 8 requests waiting", False),
])
def test_the_stub_error_is_told_apart_from_the_schedulers_own(message, dead):
    assert stub_died(message) is dead


def test_a_probe_that_raises_is_read_like_an_error_answer_and_a_live_answer_clears_the_death():
    answers = iter([RuntimeError(STUB_DEAD), "no live request with id 'probe' to stop"])

    async def probe():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario():
        now = [10.0]
        watch = SchedulerWatch(probe, lambda: now[0], after_s=0.0, every_s=1.0)
        watch.waiting(since=0.0)
        await asyncio.sleep(0.01)
        assert watch.dead_seen_at == 10.0 and watch.died_since(9.0)
        now[0] = 11.0
        watch.waiting(since=0.0)
        await asyncio.sleep(0.01)
        assert watch.probes == 2 and watch.dead_seen_at is None and not watch.died_since(9.0)

    asyncio.run(scenario())


def test_the_died_error_names_the_step_and_carries_the_retryable_code():
    error = died_error("the scheduler", "UNAVAILABLE")
    assert (error.message, error.code) == (DIED, "UNAVAILABLE")


def test_a_stub_death_names_its_step_as_its_message():
    from runtime.stub_watch import StubDied

    died = StubDied("preprocessing")
    assert died.step == "preprocessing" and str(died) == "preprocessing" and died.args == ("preprocessing",)


def test_only_a_message_naming_an_unhealthy_stub_means_death():
    assert stub_died("Stub process 'ltr_scheduler_0_0' is not healthy.")
    assert not stub_died("stub process started") and not stub_died("the GPU is not healthy")


def test_the_watchs_defaults():
    async def probe() -> str | None:
        return None

    watch = SchedulerWatch(probe, time.monotonic)
    assert (watch.after_s, watch.every_s, watch.timeout_s) == (1.0, 1.0, 5.0)  # runtime/bls_entry.py relies on them
