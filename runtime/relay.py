"""The scheduler model's request life cycle, free of Triton: queue → slot → stream → respond.

`ltr_scheduler/1/model.py` supplies the two seams: an `LLMClient` (BLS calls into `tensorrt_llm`)
and a `ResponseSink` (the request's decoupled response sender). Tests supply fakes. Whatever way
a request ends — finished, failed, rejected, cancelled while queued or while generating — it
releases what it held and the client gets either its final response or an error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Literal, Protocol

import numpy as np

from runtime.detokenize import CONTEXT_TOKENS
from scheduler import AdmissionGate, QueuedRequest, QueueFull, RequestCancelled

log = logging.getLogger(__name__)

# Why a response ended, as the OpenAI API and the ensemble's `finish_reason` output say it: the
# model's end token or a stop word, the `max_tokens` cap, or the client (or a `stop`) ended it.
FinishReason = Literal["stop", "length", "cancelled"]


def finish_reason(tokens: int, max_tokens: int) -> FinishReason:
    """A finished generation's reason. TensorRT-LLM reports none, so it is inferred as its OpenAI
    front end does: an answer that used its whole budget was cut by the cap."""
    return "length" if tokens >= max_tokens else "stop"


@dataclass
class Job:
    """One generation request as the scheduler forwards it to the LLM."""

    request_id: str
    input_ids: np.ndarray  # int32 [tokens]
    max_tokens: int
    score: float
    streaming: bool
    llm_inputs: dict[str, np.ndarray] = field(default_factory=dict)  # optional engine inputs, passed through
    client_id: str = ""  # the caller's request id, by which a `stop` request can end this job
    expected_len: int | None = None  # experiments only: the true answer length, for the oracle policy


class LLMClient(Protocol):
    def stream(self, job: Job) -> AsyncIterator[list[int]]:
        """Yield the generated token ids, chunk by chunk, until the engine finishes."""
        ...

    async def stop(self, job: Job) -> None:
        """Ask the engine to stop generating for `job` (the client went away)."""
        ...


class ResponseSink(Protocol):
    def is_cancelled(self) -> bool: ...

    def send_tokens(
        self, token_ids: list[int], context_ids: list[int], final: bool, finish: FinishReason | None = None
    ) -> None:
        """Send tokens; the final response carries why the generation ended."""
        ...

    def send_error(self, message: str) -> None: ...



@dataclass
class RelayStats:
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    cancelled: int = 0


class Relay:
    """Serves jobs through an admission gate and an LLM client."""

    def __init__(
        self,
        gate: AdmissionGate,
        llm: LLMClient,
        cancel_poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gate = gate
        self.llm = llm
        self.cancel_poll_s = cancel_poll_s
        self.clock = clock
        self.stats = RelayStats()
        self._live: dict[str, int] = {}  # client id -> live jobs with that id
        self._stop_requested: set[str] = set()

    def request_stop(self, client_id: str) -> bool:
        """End the live job(s) with this caller id, waiting or generating (TensorRT-LLM's `stop`
        convention). Returns False when none is live."""
        if client_id not in self._live:
            return False
        self._stop_requested.add(client_id)
        return True

    async def serve(self, job: Job, sink: ResponseSink) -> None:
        queued = QueuedRequest(
            job.request_id, score=job.score, max_tokens=job.max_tokens, expected_len=job.expected_len,
            arrival=self.clock(),
        )

        def cancelled() -> bool:
            return job.client_id in self._stop_requested or sink.is_cancelled()

        if job.client_id:
            self._live[job.client_id] = self._live.get(job.client_id, 0) + 1
        try:
            async with self.gate.slot(queued, cancelled, self.cancel_poll_s):
                await self._generate(job, sink, cancelled)
        except QueueFull as exc:
            self.stats.rejected += 1
            sink.send_error(str(exc))
        except RequestCancelled:
            self.stats.cancelled += 1
            sink.send_tokens([], [], final=True, finish="cancelled")
        except Exception as exc:  # an engine failure fails this request only
            self.stats.failed += 1
            log.exception("request %s failed", job.request_id)
            sink.send_error(f"generation failed: {exc}")
        finally:
            self._forget(job.client_id)

    def _forget(self, client_id: str) -> None:
        if not client_id:
            return
        self._live[client_id] -= 1
        if not self._live[client_id]:
            del self._live[client_id]
            self._stop_requested.discard(client_id)

    async def _generate(self, job: Job, sink: ResponseSink, cancelled: Callable[[], bool]) -> None:
        sent: list[int] = []  # streaming: what the client has; otherwise: everything so far
        async for chunk in self.llm.stream(job):
            if cancelled():
                await self.llm.stop(job)
                raise RequestCancelled(job.request_id)
            if job.streaming and chunk:
                sink.send_tokens(chunk, sent[-CONTEXT_TOKENS:], final=False)
            sent.extend(chunk)
        finish = finish_reason(len(sent), job.max_tokens)
        if job.streaming:
            sink.send_tokens([], sent[-CONTEXT_TOKENS:], final=True, finish=finish)
        else:
            sink.send_tokens(sent, [], final=True, finish=finish)
        self.stats.completed += 1
