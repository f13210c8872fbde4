"""The scheduler model's request life cycle, free of Triton: queue → slot → stream → respond.

`ltr_scheduler/1/model.py` supplies the two seams: an `LLMClient` (BLS calls into `tensorrt_llm`)
and a `ResponseSink` (the request's decoupled response sender). Tests supply fakes. Whatever way
a request ends — finished, failed, rejected, cancelled while queued or while generating — it
releases what it held and the client gets either its final response or an error. A generation the
relay abandons for any reason (cancelled, stopped, the engine's error, a stall, a failed send) is
first stopped in the engine (TensorRT-LLM's `stop`), so that the engine is not still generating it
when its slot goes to the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol

import numpy as np

from runtime.detokenize import CONTEXT_TOKENS
from runtime.engine_inputs import answer_tokens
from runtime.llm_stream import aligned_log_probs
from runtime.finish import FinishReason, finish_reason
from runtime.latency_histograms import QUEUE_WAIT, TTFT, Observe, Phase
from runtime.predicted_backlog import PredictedBacklog
from runtime.request_log import EndReason, RequestRecord
from scheduler import (
    AdmissionGate, ArrivalAwarePolicy, Guarded, QueuedRequest, QueueFull, QueueTimeout, RankingGuard, RequestCancelled,
)

log = logging.getLogger(__name__)

SHUTTING_DOWN = "server shutting down: request not served to the end; retry later or on another replica"


@dataclass
class LLMJob:
    """One scheduled LLM request: a generation request as the scheduler queues it and forwards it to the LLM."""

    request_id: str
    input_ids: np.ndarray  # int32 [tokens]
    max_tokens: int
    score: float
    streaming: bool
    llm_inputs: dict[str, np.ndarray] = field(default_factory=dict)  # optional engine inputs, passed through
    client_id: str = ""  # the caller's request id, by which a `stop` request can end this job
    expected_len: int | None = None  # experiments only: the true answer length, for the oracle policy
    predictor_version: str | None = None  # the length predictor version that gave `score` (request log)
    end_tokens: tuple[int, ...] = ()  # end tokens sent as stop words: they end the answer, not part of it
    expected_tokens: float | None = None  # the calibrated answer length of `score` (predicted backlog)
    return_log_probs: bool = False  # the client asked for each token's log-prob (the chunks carry them)
    include_prompt: bool = False  # non-streaming answer starts with the prompt (exclude_input_in_output false)


class LLMClient(Protocol):
    def stream(self, job: LLMJob) -> AsyncIterator[list[int]]:
        """Yield the generated token ids, chunk by chunk, until the engine finishes; a chunk may carry
        its tokens' log-probs as `log_probs` (runtime.llm_stream.TokenChunk)."""
        ...

    async def stop(self, job: LLMJob) -> None:
        """Ask the engine to stop generating for `job` (the client went away)."""
        ...


class ResponseSink(Protocol):
    def is_cancelled(self) -> bool: ...

    def send_tokens(
        self, token_ids: list[int], context_ids: list[int], final: bool, finish: FinishReason | None = None,
        log_probs: list[float] | None = None,
    ) -> None:
        """Send tokens; the final response carries why the generation ended. `log_probs`: those of
        the generated tokens sent here, when the client asked for them (None otherwise)."""
        ...

    def send_error(self, message: str, retryable: bool = False) -> None:
        """End the request with an error; `retryable` (overload, queue timeout, shutdown) tells
        the client to come back later (Triton: UNAVAILABLE, HTTP 503) rather than fix its request."""
        ...



@dataclass
class _Progress:
    """What the request log needs to know about a request's life (wall-clock times)."""

    arrival: float
    admission: float | None = None
    first_token: float | None = None
    tokens: int = 0


@dataclass
class RelayStats:
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    cancelled: int = 0
    timed_out: int = 0
    shut_down: int = 0  # refused or ended by a graceful stop


class Relay:
    """Serves jobs through an admission gate and an LLM client."""

    def __init__(
        self,
        gate: AdmissionGate,
        llm: LLMClient,
        cancel_poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        request_log: Callable[[RequestRecord], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        queue_timeout_s: float | None = None,
        grace_left: Callable[[], float | None] = lambda: None,
        stop_timeout_s: float = 5.0,
        observe: Observe | None = None,
    ) -> None:
        self.gate = gate
        # How long the engine's answer to a `stop` is awaited before the slot is let go anyway (a
        # dead LLM stub never answers; TensorRT-LLM and the stand-in answer at once).
        self.stop_timeout_s = stop_timeout_s
        self.llm = llm
        self.cancel_poll_s = cancel_poll_s
        self.clock = clock
        self.request_log = request_log  # called once per request as it ends (runtime.request_log)
        self.wall_clock = wall_clock
        self.queue_timeout_s = queue_timeout_s  # the queue deadline (None: wait as long as it takes)
        self.grace_left = grace_left  # graceful stop: None, or seconds left to finish (runtime.drain)
        self.stats = RelayStats()
        self.observe = observe  # queue wait and TTFT, in seconds (runtime.latency_histograms)
        self.backlog = PredictedBacklog()  # expected tokens still to come (runtime.predicted_backlog)
        # the guarded policy learns from finished requests (its ranking guard, its work budget)
        policy = gate.queue.policy
        self._learner: ArrivalAwarePolicy | None = policy if isinstance(policy, ArrivalAwarePolicy) else None
        # The ranking's live quality, measured under every policy (the guarded one acts on it; for the
        # others it is what an operator reads before switching): the guarded policy's own guard, or one
        # that only measures.
        self.ranking: RankingGuard = policy.guard if isinstance(policy, Guarded) else RankingGuard()
        self._live: dict[str, int] = {}  # client id -> live jobs with that id
        self._stop_requested: set[str] = set()

    def request_stop(self, client_id: str) -> bool:
        """End the live job(s) with this caller id, waiting or generating (TensorRT-LLM's `stop`
        convention). Returns False when none is live."""
        if client_id not in self._live:
            return False
        self._stop_requested.add(client_id)
        return True

    async def serve(self, job: LLMJob, sink: ResponseSink) -> None:
        queued = QueuedRequest(
            job.request_id, score=job.score, max_tokens=job.max_tokens, expected_len=job.expected_len,
            arrival=self.clock(),
        )

        def ended_by_caller() -> bool:
            return job.client_id in self._stop_requested or sink.is_cancelled()

        def cancelled() -> bool:
            return ended_by_caller() or self._shutdown_due(admitted=progress.admission is not None)

        if self.grace_left() is not None:  # stopping: admit nothing new
            self.stats.shut_down += 1
            sink.send_error(SHUTTING_DOWN, retryable=True)
            return
        if job.client_id:
            self._live[job.client_id] = self._live.get(job.client_id, 0) + 1
        progress = _Progress(arrival=self.wall_clock())
        expected = job.expected_tokens if job.expected_tokens is not None else job.max_tokens  # no calibration
        self.backlog.arrived(job.request_id, expected, job.max_tokens)
        ended: EndReason = "error"
        try:
            async with self.gate.slot(queued, cancelled, self.cancel_poll_s, self.queue_timeout_s):
                progress.admission = self.wall_clock()
                self.backlog.admitted(job.request_id)
                self._observe(QUEUE_WAIT, progress.admission - progress.arrival)
                ended = await self._generate(job, sink, cancelled, progress)
        except QueueFull as exc:
            ended = "rejected"
            self.stats.rejected += 1
            sink.send_error(str(exc), retryable=True)
        except QueueTimeout as exc:
            ended = "rejected"
            self.stats.timed_out += 1
            sink.send_error(str(exc), retryable=True)
        except RequestCancelled:
            ended = "cancelled"
            if not ended_by_caller() and self._shutdown_due(admitted=progress.admission is not None):
                self.stats.shut_down += 1
                sink.send_error(SHUTTING_DOWN, retryable=True)
            else:
                self.stats.cancelled += 1
                sink.send_tokens([], [], final=True, finish="cancelled")
        except Exception as exc:  # an engine failure fails this request only
            self.stats.failed += 1
            log.exception("request %s failed", job.request_id)
            sink.send_error(f"generation failed: {exc}")
        finally:
            self.backlog.ended(job.request_id)
            self._forget(job.client_id)
            self._log(job, ended, progress)
            self._teach(queued, ended, progress)

    def _teach(self, queued: QueuedRequest, ended: EndReason, progress: "_Progress") -> None:
        """Tell the policy (or, for one that does not learn, the ranking measurement) how an admitted
        request ended: its tokens are its length (a lower bound when cut by the cap or cancelled).
        Requests that never ran teach nothing."""
        if progress.admission is None or ended not in ("stop", "length", "cancelled"):
            return
        try:
            if self._learner is not None:
                self._learner.finished(queued, progress.tokens, ended)  # feeds its guard, self.ranking
            else:
                self.ranking.observe(queued.score, progress.tokens, ended)
        except Exception:
            log.exception("policy: finished request %s not recorded", queued.request_id)

    def _observe(self, phase: Phase, seconds: float) -> None:
        if self.observe is not None:
            self.observe(phase, max(0.0, seconds))

    def _log(self, job: LLMJob, ended: EndReason, progress: _Progress) -> None:
        """One request-log row; the log only queues it, and its failures never reach the request."""
        if self.request_log is None:
            return
        try:
            self.request_log(RequestRecord(
                request_id=job.client_id or job.request_id, finish_reason=ended, output_tokens=progress.tokens,
                max_tokens=job.max_tokens, score=job.score, predictor_version=job.predictor_version,
                prompt_ids=job.input_ids.tolist(), arrival_time=progress.arrival, admission_time=progress.admission,
                first_token_time=progress.first_token, end_time=self.wall_clock(),
            ))
        except Exception:
            log.exception("request log: row of %s not queued", job.request_id)

    def _shutdown_due(self, admitted: bool) -> bool:
        """While stopping, a waiting request ends at once, a generating one at the grace deadline."""
        left = self.grace_left()
        return left is not None and (not admitted or left <= 0)

    def _forget(self, client_id: str) -> None:
        if not client_id:
            return
        self._live[client_id] -= 1
        if not self._live[client_id]:
            del self._live[client_id]
            self._stop_requested.discard(client_id)

    async def _generate(
        self, job: LLMJob, sink: ResponseSink, cancelled: Callable[[], bool], progress: _Progress
    ) -> FinishReason:
        sent: list[int] = []  # streaming: what the client has; otherwise: everything so far
        sent_log_probs: list[float] = []
        ended = False  # the engine's stream ran to its end: nothing left to stop
        try:
            async for chunk in self.llm.stream(job):
                if cancelled():
                    raise RequestCancelled(job.request_id)
                log_probs = getattr(chunk, "log_probs", None)
                chunk = answer_tokens(list(chunk), job.end_tokens)
                log_probs = aligned_log_probs(chunk, log_probs)
                if chunk and progress.first_token is None:
                    progress.first_token = self.wall_clock()
                    self._observe(TTFT, progress.first_token - progress.arrival)
                if job.streaming and chunk:
                    sink.send_tokens(chunk, sent[-CONTEXT_TOKENS:], final=False,
                                     log_probs=log_probs if job.return_log_probs else None)
                sent.extend(chunk)
                sent_log_probs.extend(log_probs)
                progress.tokens = len(sent)
                self.backlog.generated(job.request_id, len(sent))
            ended = True
        finally:
            if not ended:  # cancelled, stopped, failed, stalled, or the send failed: stop the engine's side
                await self._stop_engine(job)
        finish = finish_reason(len(sent), job.max_tokens)
        wanted = job.return_log_probs
        if job.streaming:
            sink.send_tokens([], sent[-CONTEXT_TOKENS:], final=True, finish=finish, log_probs=[] if wanted else None)
        else:
            answer = [*job.input_ids.tolist(), *sent] if job.include_prompt else sent
            sink.send_tokens(answer, [], final=True, finish=finish, log_probs=sent_log_probs if wanted else None)
        self.stats.completed += 1
        return finish

    async def _stop_engine(self, job: LLMJob) -> None:
        """`stop` the job in the engine before its slot is given back; bounded by `stop_timeout_s`,
        and its own failure never replaces the request's outcome (it is logged)."""
        try:
            await asyncio.wait_for(self.llm.stop(job), self.stop_timeout_s)
        except asyncio.TimeoutError:
            log.warning("request %s: the engine did not answer `stop` within %.1f s", job.request_id,
                        self.stop_timeout_s)
        except Exception:
            log.exception("request %s: `stop` to the engine failed", job.request_id)
