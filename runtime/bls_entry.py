"""The `ltr_bls` entry model's request life, free of Triton: preprocess → schedule → text.

Why an entry model beside the ensemble (as TensorRT-LLM ships `tensorrt_llm_bls` beside its own):
Triton 2.51 passes a client's cancellation only to ensemble steps it has not yet started, and it
never releases a cancelled ensemble stream (docs/faults.md: "phantom in-flight"). A python model at
the entry sees `request.is_cancelled()` itself. On a cancel it stops its scheduler request by the
unguessable id it gave it (TensorRT-LLM's `stop` convention, which `ltr_scheduler` implements),
reads the scheduler's stream to its end (the slot is free then) and ends the client's stream with a
final response, which is what makes Triton release the request. A dead scheduler stub ends the
requests on it with a retryable error (runtime.stub_watch). When the entry itself gives up on a
request whose scheduler stream has not ended (a stall, an unreadable response, a failed send), it
stops that scheduler request too, after the client has its error: else the scheduler would keep
its slot, and the engine would keep generating, for nobody.

The request takes the ensemble's route exactly: the ensemble's first step (`preprocessing`) by BLS,
then `ltr_scheduler` by streaming BLS (runtime.scheduler_stream), and each scheduler response
becomes one client response as the ensemble's last step makes it (`runtime.detokenize.response_text`,
shared with `postprocessing`); what each event of that stream does is runtime.entry_decision's.
It routes tensors with runtime.contracts' hop maps, which config_checks holds to the ensemble's step maps.

`ltr_bls/1/model.py` supplies the seams (runtime.entry_seams); tests supply fakes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, get_args

import numpy as np

from runtime.contracts import ENTRY_TO_PREPROCESSING, ENTRY_TO_SCHEDULER, PREPROCESSING_TO_SCHEDULER
from runtime.entry_decision import Act, Presence, classify
from runtime.entry_seams import ClientSink, SchedulerReply, StepError, Steps, TextOf
from runtime.llm_stream import DeferredRelease
from runtime.scheduler_stream import SchedulerStream
from runtime.stub_watch import SCHEDULER, SchedulerWatch, StubDied, died_error, stub_died

log = logging.getLogger(__name__)

Outcome = Literal["completed", "cancelled", "error", "failed"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
# The model's Prometheus families: name -> (kind, description)
LIVE_REQUESTS, REQUESTS = "ltr_bls_live_requests", "ltr_bls_requests_total"
METRIC_FAMILIES = {
    LIVE_REQUESTS: ("gauge", "Requests ltr_bls is serving"),
    REQUESTS: ("counter", "ltr_bls requests by outcome: " + ", ".join(OUTCOMES)),
}
CANCELLED = "cancelled"


@dataclass
class EntryStats:
    completed: int = 0
    cancelled: int = 0
    error: int = 0  # a step answered with an error (bad request, overload, engine failure), passed on
    failed: int = 0  # this model failed (a bug, a broken BLS call)
    live: int = 0
    stop_timeouts: int = 0  # cancelled, but the scheduler's stream did not end within stop_timeout_s
    stub_deaths: int = 0  # requests ended because a step's process died (included in `error`)
    abandoned_stops: int = 0  # scheduler requests stopped after the entry gave up on them (stall, bug)


def split_inputs(inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The client's tensors (ensemble names) as preprocessing's inputs and the scheduler's pass-through ones."""
    unknown = set(inputs) - set(ENTRY_TO_PREPROCESSING) - set(ENTRY_TO_SCHEDULER)
    if unknown:
        raise ValueError(f"not inputs of the entry interface: {sorted(unknown)}")
    pre = {ENTRY_TO_PREPROCESSING[k]: v for k, v in inputs.items() if k in ENTRY_TO_PREPROCESSING}
    passed = {ENTRY_TO_SCHEDULER[k]: v for k, v in inputs.items() if k in ENTRY_TO_SCHEDULER}
    return pre, passed


class EntryFlow:
    """Serves one client request through the steps, and frees everything when the client leaves."""

    def __init__(
        self,
        steps: Steps,
        text_of: TextOf,
        readers: Executor,
        cancel_poll_s: float = 0.1,
        stop_timeout_s: float = 10.0,
        new_id: Callable[[], str] = lambda: secrets.token_hex(16),
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[EntryStats], None] = lambda stats: None,
        release: DeferredRelease | None = None,
        unavailable: Any = "UNAVAILABLE",
        probe_after_s: float = 1.0,
        probe_every_s: float = 1.0,
        stall_timeout_s: float | None = None,
    ) -> None:
        self.steps = steps
        # A generating request with no response for this long ends with a retryable error. Set it
        # above the scheduler's llm_stall_timeout_s: the scheduler's own error for a stalled LLM,
        # sent after tokens were streamed, never reached a BLS caller on Triton 2.51 (`make faults`,
        # a killed tensorrt_llm stub: its clients hung); this ends them instead.
        self.stall_timeout_s = stall_timeout_s
        self.unavailable = unavailable  # the error code of a retryable error (Triton's UNAVAILABLE)
        self.watch = SchedulerWatch(steps.probe, clock, probe_after_s, probe_every_s)
        self.release = release  # finished BLS iterators are let go on the event loop (its docstring)
        self.on_change = on_change  # after a request arrives and after it ends (the model's metrics)
        self.text_of = text_of
        self.readers = readers  # one blocked thread per live scheduler stream (runtime.llm_stream.read_into)
        self.cancel_poll_s = cancel_poll_s
        self.stop_timeout_s = stop_timeout_s  # a stopped request whose stream never ends is let go then
        self.new_id = new_id  # unguessable: only this request's own entry can `stop` it
        self.clock = clock
        self.stats = EntryStats()

    async def serve(self, inputs: Mapping[str, np.ndarray], sink: ClientSink) -> Outcome:
        self.stats.live += 1
        self.on_change(self.stats)
        abandoned: list[asyncio.Task] = []  # stops of scheduler requests this request gave up on
        try:
            try:
                outcome = await self._serve(inputs, sink, abandoned)
            except Exception as exc:
                if not isinstance(exc, StepError) and stub_died(str(exc)):  # a BLS call to a dead stub may raise
                    raise StubDied(SCHEDULER) from exc
                raise
        except StubDied as exc:
            outcome = "error"
            self.stats.stub_deaths += 1
            sink.send_error(died_error(exc.step, self.unavailable))
        except StepError as exc:
            outcome = "error"
            sink.send_error(exc)
        except Exception as exc:  # a bug or a broken step fails this request only
            log.exception("ltr_bls request failed")
            outcome = "failed"
            sink.send_error(StepError(f"ltr_bls failed: {exc}"))
        finally:
            self.stats.live -= 1
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        self.on_change(self.stats)
        if abandoned:  # the client has its answer; the scheduler request is stopped before this request ends
            await asyncio.wait(abandoned)
        return outcome

    async def _serve(self, inputs: Mapping[str, np.ndarray], sink: ClientSink,
                     abandoned: list[asyncio.Task]) -> Outcome:
        pre_inputs, passed = split_inputs(inputs)
        try:
            prepared = await self.steps.preprocess(pre_inputs)
        except Exception as exc:
            if stub_died(getattr(exc, "message", None) or str(exc)):
                raise StubDied("preprocessing") from exc
            raise
        if sink.is_cancelled():  # left during preprocessing: nothing was scheduled
            sink.send("", 0, CANCELLED, final=True)
            return "cancelled"
        scheduled = {PREPROCESSING_TO_SCHEDULER[k]: v for k, v in prepared.items() if k in PREPROCESSING_TO_SCHEDULER}
        request_id = self.new_id()
        leaving = _Leaving(self, request_id, sink)
        stream = SchedulerStream(self.steps.schedule({**scheduled, **passed}, request_id), self.steps.read,
                                 self.readers, self.cancel_poll_s, self.clock, self.release)
        try:
            outcome = await self._relay(stream, leaving, sink)
        except Exception as exc:
            if not stream.ended and leaving.stopper is None and not _scheduler_died(exc):
                abandoned.append(asyncio.get_running_loop().create_task(self._stop_abandoned(request_id)))
            raise
        finally:
            leaving.cancel()
        if outcome == "cancelled":
            sink.send("", 0, CANCELLED, final=True)  # what lets Triton release the client's request
        return outcome

    async def _relay(self, stream: SchedulerStream, leaving: _Leaving, sink: ClientSink) -> Outcome:
        """Acts on each event of the scheduler's stream as `classify` decides, until one ends the request."""
        while True:
            event = await stream.next()
            decision = classify(event, leaving.check(), self.watch, self.clock(), sent_at=stream.sent_at,
                                stall_timeout_s=self.stall_timeout_s, unavailable=self.unavailable)
            if decision.act is Act.FORWARD or decision.act is Act.DONE:
                self._send(sink, decision.reply)
            if decision.act is Act.DONE:
                return "completed"
            if decision.act is Act.END_CANCELLED:
                if decision.stop_timed_out:
                    self.stats.stop_timeouts += 1
                return "cancelled"
            if decision.act is Act.RAISE:
                raise decision.error

    def _send(self, sink: ClientSink, reply: SchedulerReply) -> None:
        text = self.text_of(reply.context_ids, reply.token_ids, reply.final)
        sink.send(text, len(reply.token_ids), reply.finish_reason if reply.final else "", reply.final,
                  reply.engine_outputs)

    async def _stop_abandoned(self, request_id: str) -> None:
        """`stop` a scheduler request the entry gave up on, for at most `stop_timeout_s` (it may
        have ended meanwhile, and then the scheduler never knows the id)."""
        try:
            await asyncio.wait_for(self._stop(request_id), self.stop_timeout_s)
            self.stats.abandoned_stops += 1
        except asyncio.TimeoutError:
            log.warning("ltr_bls: gave up on %s, and the scheduler did not take its stop in %.0f s", request_id,
                        self.stop_timeout_s)

    async def _stop(self, request_id: str) -> None:
        """`stop` until the scheduler knows the id (the BLS request may not have reached it yet)."""
        retry_s = 0.02
        while True:
            try:
                if await self.steps.stop(request_id):
                    return
            except Exception:  # noqa: BLE001  (a background task: log and try again)
                log.exception("ltr_bls: stop of %s failed", request_id)
            await asyncio.sleep(retry_s)
            retry_s = min(2 * retry_s, 0.5)


def _scheduler_died(exc: BaseException) -> bool:
    """A dead scheduler stub holds nothing to stop (and answers no `stop`)."""
    return isinstance(exc, StubDied) or (not isinstance(exc, StepError) and stub_died(str(exc)))


class _Leaving:
    """Watches one request's client (at most every `cancel_poll_s`) and, once it has left, stops the
    scheduler request in the background until the scheduler lets go or `stop_timeout_s` passes."""

    def __init__(self, flow: EntryFlow, request_id: str, sink: ClientSink) -> None:
        self.flow, self.request_id, self.sink = flow, request_id, sink
        self.stopper: asyncio.Task | None = None
        self.stopped_at = 0.0
        self.next_check = flow.clock()

    def check(self) -> Presence:
        now = self.flow.clock()
        if self.stopper is None and now >= self.next_check:
            self.next_check = now + self.flow.cancel_poll_s
            if self.sink.is_cancelled():
                self.stopper = asyncio.get_running_loop().create_task(self.flow._stop(self.request_id))
                self.stopped_at = now
        if self.stopper is None:
            return "here"
        if now - self.stopped_at > self.flow.stop_timeout_s:
            log.warning("ltr_bls: the scheduler did not end stopped request %s in %.0f s", self.request_id,
                        self.flow.stop_timeout_s)
            return "let go"
        return "stopping"

    def cancel(self) -> None:
        if self.stopper is not None:
            self.stopper.cancel()
