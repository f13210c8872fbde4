"""AdmissionControl (the rule) and AdmissionGate (asyncio): slot limit, priority order of admission,
cancellation, no leaked slots."""

from __future__ import annotations

import asyncio

import pytest

from scheduler import (
    AdmissionControl,
    AdmissionGate,
    QueuedRequest,
    QueueFull,
    QueueTimeout,
    RequestCancelled,
    RequestQueue,
    make_policy,
)


def test_control_admits_at_once_only_with_a_free_slot_and_nobody_waiting():
    control = AdmissionControl(RequestQueue(make_policy("ltr")), max_inflight=2)
    assert control.admit_now() and control.inflight == 1
    control.queue.push(QueuedRequest("waiting"))
    assert not control.admit_now()  # a free slot, but taking it would overtake "waiting"
    assert [r.request_id for r in control.admit_waiting()] == ["waiting"]
    assert not control.admit_now()  # no slot left
    assert (control.inflight, control.admitted_total) == (2, 2)


def test_control_admits_waiting_requests_in_policy_order_while_slots_are_free():
    control = AdmissionControl(RequestQueue(make_policy("ltr")), max_inflight=2)
    for rid, score in [("long", 9.0), ("mid", 5.0), ("short", 1.0)]:
        control.queue.push(QueuedRequest(rid, score=score))
    assert [r.request_id for r in control.admit_waiting()] == ["short", "mid"]
    assert control.admit_waiting() == []
    control.release()  # frees the slot; admission is the caller's next move
    assert control.inflight == 1 and len(control.queue) == 1
    assert [r.request_id for r in control.admit_waiting()] == ["long"]
    assert (control.inflight, control.admitted_total, len(control.queue)) == (2, 3, 0)


def test_control_refuses_a_release_without_a_held_slot_and_a_zero_slot_limit():
    control = AdmissionControl(RequestQueue(make_policy("fcfs")), max_inflight=1)
    with pytest.raises(RuntimeError):
        control.release()
    with pytest.raises(ValueError):
        AdmissionControl(RequestQueue(make_policy("fcfs")), max_inflight=0)


def gate(policy: str = "ltr", max_inflight: int = 1, max_size: int | None = None) -> AdmissionGate:
    return AdmissionGate(RequestQueue(make_policy(policy), max_size=max_size), max_inflight)


def test_waiting_requests_are_admitted_in_policy_order():
    async def scenario() -> list[str]:
        g = gate("ltr", max_inflight=1)
        order: list[str] = []
        blocker = asyncio.Event()

        async def run(rid: str, score: float, hold: asyncio.Event | None = None) -> None:
            async with g.slot(QueuedRequest(rid, score=score)):
                order.append(rid)
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(run("busy", 0.0, blocker))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(run(rid, s)) for rid, s in [("long", 9.0), ("mid", 5.0), ("short", 1.0)]]
        await asyncio.sleep(0.01)
        assert g.inflight == 1 and len(g.queue) == 3
        blocker.set()
        await asyncio.gather(first, *tasks)
        assert g.inflight == 0
        return order

    assert asyncio.run(scenario()) == ["busy", "short", "mid", "long"]


def test_cancelled_waiter_leaves_the_queue_without_taking_a_slot():
    async def scenario() -> None:
        g = gate(max_inflight=1)
        release = asyncio.Event()
        cancelled = {"flag": False}

        async def hold() -> None:
            async with g.slot(QueuedRequest("busy")):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(g.acquire(QueuedRequest("w", score=1.0), lambda: cancelled["flag"], 0.01))
        await asyncio.sleep(0.02)
        assert len(g.queue) == 1
        cancelled["flag"] = True
        with pytest.raises(RequestCancelled):
            await waiter
        assert len(g.queue) == 0 and g.inflight == 1
        release.set()
        await holder
        assert g.inflight == 0

    asyncio.run(scenario())


def test_task_cancellation_while_waiting_also_cleans_up():
    async def scenario() -> None:
        g = gate(max_inflight=1)
        await g.acquire(QueuedRequest("busy"))
        waiter = asyncio.create_task(g.acquire(QueuedRequest("w")))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert len(g.queue) == 0
        g.release()
        assert g.inflight == 0

    asyncio.run(scenario())


def test_full_queue_rejects_without_holding_anything():
    async def scenario() -> None:
        g = gate(max_inflight=1, max_size=1)
        await g.acquire(QueuedRequest("busy"))
        waiting = asyncio.create_task(g.acquire(QueuedRequest("w1")))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await g.acquire(QueuedRequest("w2"))
        assert g.inflight == 1 and len(g.queue) == 1
        g.release()
        await waiting
        g.release()
        assert g.inflight == 0

    asyncio.run(scenario())


def test_queue_deadline_ends_a_waiting_request_and_spares_one_admitted_in_time():
    async def scenario() -> None:
        g = gate(max_inflight=1)
        await g.acquire(QueuedRequest("busy"))
        with pytest.raises(QueueTimeout, match="queue timeout: waited 0.05 s"):
            await g.acquire(QueuedRequest("late"), poll_interval_s=1.0, max_wait_s=0.05)
        assert g.inflight == 1 and len(g.queue) == 0  # it left the queue, held nothing
        admitted = asyncio.create_task(g.acquire(QueuedRequest("on-time"), max_wait_s=5.0))
        await asyncio.sleep(0.01)
        g.release()
        await admitted  # admitted before its deadline: no timeout
        assert g.inflight == 1
        g.release()

    asyncio.run(scenario())


def test_failure_inside_the_slot_releases_it():
    async def scenario() -> None:
        g = gate(max_inflight=2)
        with pytest.raises(RuntimeError):
            async with g.slot(QueuedRequest("x")):
                raise RuntimeError("engine failed")
        assert g.inflight == 0

    asyncio.run(scenario())


def test_never_more_than_max_inflight():
    async def scenario() -> int:
        g = gate("fcfs", max_inflight=3)
        peak = 0

        async def run(i: int) -> None:
            nonlocal peak
            async with g.slot(QueuedRequest(f"r{i}")):
                peak = max(peak, g.inflight)
                await asyncio.sleep(0.001 * (i % 4))

        await asyncio.gather(*(run(i) for i in range(50)))
        assert g.inflight == 0 and len(g.queue) == 0
        return peak

    assert asyncio.run(scenario()) == 3


def test_refusals_say_why_and_the_observer_sees_the_gate():
    with pytest.raises(ValueError, match=r"^max_inflight must be positive$"):
        AdmissionControl(RequestQueue(make_policy("fcfs")), max_inflight=0)
    with pytest.raises(RuntimeError, match=r"^release\(\) without a held slot$"):
        AdmissionControl(RequestQueue(make_policy("fcfs")), max_inflight=1).release()
    seen: list[AdmissionGate] = []

    async def scenario() -> AdmissionGate:
        g = AdmissionGate(RequestQueue(make_policy("fcfs")), 1, on_change=seen.append)
        async with g.slot(QueuedRequest("r")):
            assert seen == [g]
        return g

    g = asyncio.run(scenario())
    assert seen == [g, g]



def _elapsed_until_raised(awaitable, exc: type[BaseException], limit_s: float = 3.0) -> tuple[float, BaseException]:
    """Seconds until `awaitable` raised `exc` (it must, within `limit_s`), and the exception."""
    async def scenario() -> tuple[float, BaseException]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(exc) as raised:
            await asyncio.wait_for(awaitable(), limit_s)
        return loop.time() - started, raised.value

    return asyncio.run(scenario())


def test_the_queue_deadline_cuts_a_poll_interval_longer_than_it_short():
    # the wait ends at the deadline (0.05 s), not at the next poll (30 s) nor a second later
    async def late() -> None:
        g = gate(max_inflight=1)
        await g.acquire(QueuedRequest("busy"))
        try:
            await g.acquire(QueuedRequest("late"), poll_interval_s=30.0, max_wait_s=0.05)
        finally:
            assert g._waiters == {} and len(g.queue) == 0

    elapsed, _ = _elapsed_until_raised(late, QueueTimeout)
    assert 0.05 <= elapsed < 0.8


@pytest.mark.parametrize("use_slot", [False, True])
def test_by_default_a_cancelled_waiter_is_noticed_within_a_tenth_of_a_second(use_slot):
    async def cancelled_while_waiting() -> None:
        g = gate(max_inflight=1)
        await g.acquire(QueuedRequest("busy"))
        flag = {"cancelled": False}
        asyncio.get_running_loop().call_later(0.01, flag.update, {"cancelled": True})
        request = QueuedRequest("w")
        try:
            if use_slot:
                async with g.slot(request, lambda: flag["cancelled"]):
                    pass
            else:
                await g.acquire(request, lambda: flag["cancelled"])  # the default poll interval: 0.1 s
        finally:
            assert g._waiters == {} and len(g.queue) == 0 and g.inflight == 1  # nothing left behind

    elapsed, raised = _elapsed_until_raised(cancelled_while_waiting, RequestCancelled)
    assert elapsed < 0.8 and raised.args == ("w",)  # the exception names the request


def test_a_waiter_cancelled_in_the_instant_it_is_admitted_says_which_request():
    async def scenario() -> None:
        g = gate(max_inflight=1)
        await g.acquire(QueuedRequest("busy"))
        flag = {"cancelled": False}
        waiter = asyncio.create_task(g.acquire(QueuedRequest("w"), lambda: flag["cancelled"], 30.0))
        await asyncio.sleep(0.01)
        flag["cancelled"] = True
        g.release()  # admits "w", which then sees its cancellation and gives the slot back
        with pytest.raises(RequestCancelled) as raised:
            await waiter
        assert raised.value.args == ("w",) and g.inflight == 0 and g._waiters == {}

    asyncio.run(scenario())
