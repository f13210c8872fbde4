"""Runs the batching core on the wall clock in a background thread (the Triton stand-in's engine loop).

`timing` mode sleeps each iteration's modelled duration, so tokens leave at Llama-3-8B's pace on the
modelled GPU. Iterations are chained to absolute deadlines, so the time spent sending responses does
not add up across steps. `hf` mode does not sleep: the real forward passes are the time.

Callbacks run on the engine thread: `on_tokens(req, new_ids, final)` once per iteration per request
with the ids emitted in it, and `on_finish(req)` after the final tokens. `is_cancelled(req)` is polled
every `cancellation_check_period_s` (TensorRT-LLM's `cancellation_check_period_ms`, 100 ms by
default; each poll is an IPC round trip in Triton's python backend, too slow for every iteration);
a cancelled request leaves the batch and gets `on_finish` with `finish_reason == "cancelled"`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from engine.batching import BatchingEngine
from engine.request import EngineRequest

log = logging.getLogger(__name__)

TokensCallback = Callable[[EngineRequest, list[int], bool], None]
FinishCallback = Callable[[EngineRequest], None]


class RealtimeEngine:
    """Thread-safe front of a `BatchingEngine`: submit from any thread, the loop steps it."""

    def __init__(
        self,
        core: BatchingEngine,
        on_tokens: TokensCallback,
        on_finish: FinishCallback,
        is_cancelled: Callable[[EngineRequest], bool] = lambda r: False,
        sleep_modelled_time: bool = True,
        cancellation_check_period_s: float = 0.1,
    ) -> None:
        self.core = core
        self.on_tokens = on_tokens
        self.on_finish = on_finish
        self.is_cancelled = is_cancelled
        self.sleep_modelled_time = sleep_modelled_time
        self.cancellation_check_period_s = cancellation_check_period_s
        self.max_catch_up_s = 0.05
        self._last_cancel_check = 0.0
        self._lock = threading.Condition()
        self._incoming: list[EngineRequest] = []
        self._stop = False
        self.steps = 0
        self._thread = threading.Thread(target=self._loop, name="engine-loop", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join(timeout)

    def submit(self, req: EngineRequest) -> None:
        """Validate now (raises ValueError on bad requests, `BatchingEngine.validate`) and hand to
        the loop; a duplicate id is found only there and fails that request alone."""
        self.core.validate(req)
        with self._lock:
            self._incoming.append(req)
            self._lock.notify_all()

    def _drain_incoming(self) -> None:
        with self._lock:
            while not self._incoming and self.core.idle and not self._stop:
                self._lock.wait(timeout=0.5)
            incoming, self._incoming = self._incoming, []
        for req in incoming:
            try:
                self.core.submit(req)
            except ValueError as exc:  # e.g. duplicate id: fail this request alone
                log.warning("rejected %s: %s", req.request_id, exc)
                req.finish_reason = "cancelled"
                self.on_finish(req)

    def _cancel_requested(self) -> None:
        now = time.monotonic()
        if now - self._last_cancel_check < self.cancellation_check_period_s:
            return
        self._last_cancel_check = now
        for req in list(self.core.running) + list(self.core.waiting):
            try:
                cancelled = self.is_cancelled(req)
            except Exception:  # a broken client connection counts as cancelled
                cancelled = True
            if cancelled and self.core.cancel(req.request_id) is not None:
                self.on_finish(req)

    def _loop(self) -> None:
        deadline = time.monotonic()
        while True:
            self._drain_incoming()
            if self._stop:
                break
            self._cancel_requested()
            now = time.monotonic()
            # Chain iterations to the previous deadline so that sending responses (after each
            # sleep) does not stretch every step; if far behind (idle, or the host is too slow),
            # restart the chain from now instead of bursting to catch up.
            start = deadline if self.steps and now - deadline < self.max_catch_up_s else now
            try:
                result = self.core.step()
            except Exception:  # keep serving other requests; fail the running ones
                log.exception("engine step failed")
                for req in list(self.core.running):
                    self.core.cancel(req.request_id)
                    self.on_finish(req)
                continue
            if result.batch_size == 0:
                deadline = time.monotonic()
                continue
            self.steps += 1
            deadline = start + result.duration_s
            if self.sleep_modelled_time:
                delay = deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            else:
                deadline = time.monotonic()
            finished = {id(r) for r in result.finished}
            for req, tok in result.emitted:
                try:
                    self.on_tokens(req, [tok], id(req) in finished)
                except Exception:
                    log.exception("sending tokens of %s failed", req.request_id)
            for req in result.finished:
                try:
                    self.on_finish(req)
                except Exception:
                    log.exception("finishing %s failed", req.request_id)
