"""Admission into the engine: at most `max_inflight` requests run in it at once.

The engine (TensorRT-LLM) keeps its own FCFS queue and takes no priorities, so ordering has to
happen before it: requests wait in a `RequestQueue` and enter the engine only when one of
`max_inflight` slots (about the engine's batch capacity) is free. `AdmissionControl` is that rule,
synchronous and clock-free, so that the served path and the simulator admit by the same code:
`AdmissionGate` drives it from an asyncio event loop (waiting, cancellation), the simulator from its
virtual clock. Every path out of a slot — completion, failure, client cancellation, preemption —
goes through `release`, so no slot leaks.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from scheduler.queue import RequestQueue
from scheduler.request import QueuedRequest

log = logging.getLogger(__name__)


class AdmissionControl:
    """The queue and the slot counter: who may enter the engine, and when."""

    def __init__(self, queue: RequestQueue, max_inflight: int) -> None:
        if max_inflight <= 0:
            raise ValueError("max_inflight must be positive")
        self.queue = queue
        self.max_inflight = max_inflight
        self.inflight = 0
        self.admitted_total = 0

    def admit_now(self) -> bool:
        """Take a slot at once if one is free and nobody waits (so nobody is overtaken)."""
        if self.inflight < self.max_inflight and len(self.queue) == 0:
            self._take_slot()
            return True
        return False

    def admit_waiting(self, now: float | None = None) -> list[QueuedRequest]:
        """Admit waiting requests, in the queue's order, while slots are free (`now`: the clock of
        the requests' arrivals, for policies that age requests by their wait)."""
        admitted: list[QueuedRequest] = []
        while self.inflight < self.max_inflight:
            request = self.queue.pop(now)
            if request is None:
                break
            self._take_slot()
            admitted.append(request)
        return admitted

    def release(self) -> None:
        """Give a slot back. Admitting the waiting requests is the caller's next move: the
        simulator first queues the arrivals of the iteration that just ended."""
        if self.inflight <= 0:
            raise RuntimeError("release() without a held slot")
        self.inflight -= 1

    def _take_slot(self) -> None:
        self.inflight += 1
        self.admitted_total += 1


class RequestCancelled(Exception):
    """The client cancelled the request while it waited for admission."""


class QueueTimeout(Exception):
    """The request waited longer than the queue deadline (Triton's queue policy has one for the
    requests it queues; ours are queued here, so the deadline is ours too)."""


class AdmissionGate:
    """`AdmissionControl` driven from one asyncio event loop: a waiting request awaits a future
    that admission resolves."""

    def __init__(
        self,
        queue: RequestQueue,
        max_inflight: int,
        on_change: Callable[["AdmissionGate"], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.control = AdmissionControl(queue, max_inflight)
        self.on_change = on_change  # observers (metrics) see every change of queue or slots
        self.clock = clock  # the clock of the requests' `arrival` (policies that age requests by their wait)
        self._waiters: dict[str, asyncio.Future[None]] = {}

    @property
    def queue(self) -> RequestQueue:
        return self.control.queue

    @property
    def inflight(self) -> int:
        return self.control.inflight

    @property
    def admitted_total(self) -> int:
        return self.control.admitted_total

    async def acquire(
        self,
        request: QueuedRequest,
        is_cancelled: Callable[[], bool] | None = None,
        poll_interval_s: float = 0.1,
        max_wait_s: float | None = None,
    ) -> None:
        """Wait until `request` holds a slot.

        Raises QueueFull when the queue is at its bound, RequestCancelled when `is_cancelled()`
        turns true while waiting (checked every `poll_interval_s`), QueueTimeout when it waited
        `max_wait_s` (None: no deadline) without being admitted; in all cases no slot is held.
        """
        if self.control.admit_now():
            self._changed()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self.queue.push(request)  # may raise QueueFull before anything is held
        finally:
            self._changed()
        self._waiters[request.request_id] = future
        loop = asyncio.get_running_loop()
        deadline = None if max_wait_s is None else loop.time() + max_wait_s
        try:
            while True:
                wait_s = poll_interval_s if deadline is None else max(0.0, min(poll_interval_s, deadline - loop.time()))
                try:
                    await asyncio.wait_for(asyncio.shield(future), wait_s)
                except asyncio.TimeoutError:
                    if is_cancelled is not None and is_cancelled():
                        raise RequestCancelled(request.request_id) from None
                    if deadline is not None and loop.time() >= deadline:
                        raise QueueTimeout(
                            f"queue timeout: waited {max_wait_s:g} s without a free slot; retry later"
                        ) from None
                    continue
                if is_cancelled is not None and is_cancelled():
                    # admitted and cancelled in the same instant: _abandon gives the slot back
                    raise RequestCancelled(request.request_id)
                return
        except BaseException:
            self._abandon(request.request_id, future)
            raise

    def release(self) -> None:
        """Give a slot back and admit the next waiting requests."""
        self.control.release()
        for request in self.control.admit_waiting(None if self.clock is None else self.clock()):
            self._waiters.pop(request.request_id).set_result(None)
        self._changed()

    @asynccontextmanager
    async def slot(
        self,
        request: QueuedRequest,
        is_cancelled: Callable[[], bool] | None = None,
        poll_interval_s: float = 0.1,
        max_wait_s: float | None = None,
    ) -> AsyncIterator[None]:
        """`async with gate.slot(req):` holds a slot for the body and always gives it back."""
        await self.acquire(request, is_cancelled, poll_interval_s, max_wait_s)
        try:
            yield
        finally:
            self.release()

    def _abandon(self, request_id: str, future: asyncio.Future[None]) -> None:
        """Undo a wait that ended by cancellation: leave the queue, or hand back a slot that was
        granted in the same instant."""
        if self.queue.remove(request_id) is not None:
            self._waiters.pop(request_id, None)
            self._changed()
        elif future.done() and not future.cancelled():
            self.release()

    def _changed(self) -> None:
        """Tell the observer; its failure must never cost a request its slot or its place."""
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("admission observer failed")
