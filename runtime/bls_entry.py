"""The `ltr_bls` entry model's request life, free of Triton: preprocess → schedule → text.

Why an entry model beside the ensemble (as TensorRT-LLM ships `tensorrt_llm_bls` beside its own):
Triton 2.51 passes a client's cancellation only to ensemble steps it has not yet started, and it
never releases a cancelled ensemble stream (docs/faults.md: "phantom in-flight"). A python model at
the entry sees `request.is_cancelled()` itself. On a cancel it stops its scheduler request by the
unguessable id it gave it (TensorRT-LLM's `stop` convention, which `ltr_scheduler` implements),
reads the scheduler's stream to its end (the slot is free then) and ends the client's stream with a
final response, which is what makes Triton release the request.

A dead scheduler stub: Triton 2.51 neither answers nor ends the BLS streams that were on it, so the
requests waiting on it would hang until the supervisor restarts the server. `SchedulerWatch` notices
instead: while some request has waited over `probe_after_s` for a response, it asks the scheduler
something cheap (`Steps.probe`, at most once per `probe_every_s`), and when the answer says its
process is gone, every request sent before that probe ends with a retryable (UNAVAILABLE) error.

The request takes the ensemble's route exactly: the ensemble's first step (`preprocessing`) by BLS,
then `ltr_scheduler` by streaming BLS, and each scheduler response becomes one client response as
the ensemble's last step makes it (`runtime.detokenize.response_text`, shared with `postprocessing`).
The tensor maps below are the ensemble's own step maps (a test holds them to its config).

`ltr_bls/1/model.py` supplies the seams: `Steps` (the BLS calls) and `ClientSink` (the decoupled
response sender). Tests supply fakes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping, Protocol, Sequence

import numpy as np

from runtime.llm_stream import DeferredRelease, read_into

log = logging.getLogger(__name__)

# ensemble input -> preprocessing input (the ensemble's step 0 input_map, inverted)
PREPROCESSING_INPUTS = {
    "text_input": "QUERY", "prompt_token_ids": "PROMPT_TOKEN_IDS", "max_tokens": "REQUEST_OUTPUT_LEN",
    "bad_words": "BAD_WORDS_DICT", "stop_words": "STOP_WORDS_DICT", "end_id": "END_ID", "pad_id": "PAD_ID",
}
# preprocessing output -> scheduler input (through the ensemble's internal tensors)
PREPROCESSING_TO_SCHEDULER = {
    "INPUT_ID": "input_ids", "REQUEST_INPUT_LEN": "input_lengths", "REQUEST_OUTPUT_LEN": "request_output_len",
    "BAD_WORDS_IDS": "bad_words_list", "STOP_WORDS_IDS": "stop_words_list", "OUT_END_ID": "end_id",
    "OUT_PAD_ID": "pad_id", "SCORE": "score",
}
# ensemble input -> scheduler input, passed straight through (the ensemble's step 1 does the same)
SCHEDULER_INPUTS = {
    "stream": "streaming", "temperature": "temperature", "top_k": "runtime_top_k", "top_p": "runtime_top_p",
    "seed": "seed", "expected_output_len": "expected_output_len",
}
SCHEDULER_OUTPUTS = ("output_ids", "sequence_length", "context_ids", "is_final", "finish_reason")

Outcome = Literal["completed", "cancelled", "error", "failed"]
CANCELLED = "cancelled"


class StepError(Exception):
    """An error a step answered with. `code` is the step's Triton error code, kept as it came so that
    the client gets the code the ensemble would pass on (INVALID_ARG → 400, UNAVAILABLE → 503)."""

    def __init__(self, message: str, code: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class SchedulerReply:
    """One `ltr_scheduler` response, read from its tensors."""

    token_ids: list[int]  # the new tokens (cut to sequence_length)
    context_ids: list[int]  # tokens sent before, for incremental detokenization
    final: bool
    finish_reason: str = ""  # "stop" | "length" | "cancelled" on the final response


class Steps(Protocol):
    async def preprocess(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Preprocessing's outputs by name; raises StepError when it refused the request."""
        ...

    async def schedule(self, inputs: Mapping[str, np.ndarray], request_id: str) -> Iterable[Any]:
        """Send the scheduler request; its responses come from a blocking iterator (read on a
        thread). Returns only with the first response (the python backend's `async_exec` does so),
        which a queued request gets when it is admitted: the flow watches the client meanwhile."""
        ...

    def read(self, response: Any) -> SchedulerReply | None:
        """One raw response of `schedule` (on the event loop); None for an empty one (a bare final
        flag); raises StepError for an error response."""
        ...

    async def stop(self, request_id: str) -> bool:
        """`stop` the live scheduler request with this id; False when the scheduler has none (yet)."""
        ...

    async def probe(self) -> str | None:
        """A cheap call to the scheduler (a `stop` for an id nobody has); the error message it got
        (a live scheduler answers "no live request ...", a dead stub's "Stub process ... is not
        healthy"), None when it got none. May raise: the exception's text is read the same way."""
        ...


class ClientSink(Protocol):
    def is_cancelled(self) -> bool: ...

    def send(self, text: str, tokens: int, finish: str, final: bool) -> None:
        """One response with the ensemble's outputs: text_output, output_token_count, finish_reason."""
        ...

    def send_error(self, error: StepError) -> None:
        """End the request with an error (final)."""
        ...


TextOf = Callable[[Sequence[int], Sequence[int], bool], str]  # (context ids, new ids, final) -> text

SCHEDULER = "the scheduler"


def stub_died(message: str) -> bool:
    """Whether an error says the called model's python stub is gone (Triton 2.51's python backend:
    "Stub process '<model>_0_0' is not healthy.")."""
    text = message.lower()
    return "stub" in text and "not healthy" in text


def died_error(step: str, code: Any) -> StepError:
    return StepError(f"{step}'s process died; the deployment is recovering: retry", code)


class SchedulerWatch:
    """Whether the scheduler's stub has died under the requests waiting on it, found out by probing
    it only while a request waits unusually long, so that a healthy server pays nothing (a busy one:
    one probe a second)."""

    def __init__(self, probe: Callable[[], Any], clock: Callable[[], float], after_s: float = 1.0,
                 every_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.probe, self.clock = probe, clock
        self.after_s = after_s  # a request that has had no response for this long asks for a probe
        self.every_s = every_s  # at most one probe this often
        self.timeout_s = timeout_s  # a probe with no answer by then says nothing
        self.probes = 0
        self.dead_seen_at: float | None = None  # when the last probe that found the stub dead started
        self._probing: asyncio.Task | None = None
        self._last = float("-inf")

    def waiting(self, since: float) -> None:
        """A request has had no response since `since` (on the event loop): probe if it is time."""
        now = self.clock()
        if now - since < self.after_s or self._probing is not None or now - self._last < self.every_s:
            return
        self._last = now
        self._probing = asyncio.get_running_loop().create_task(self._probe(now))

    def died_since(self, sent_at: float) -> bool:
        """Whether a probe that started after `sent_at` found the stub dead: a request sent at
        `sent_at` will never get another response."""
        return self.dead_seen_at is not None and self.dead_seen_at >= sent_at

    async def _probe(self, started: float) -> None:
        try:
            message = await asyncio.wait_for(self.probe(), self.timeout_s)
        except asyncio.TimeoutError:
            message = None  # no answer: nothing learnt (the supervisor still watches the process)
        except Exception as exc:  # noqa: BLE001  (a failed call tells the same as an error answer)
            message = str(exc)
        finally:
            self._probing = None
        self.probes += 1
        if message is not None and stub_died(message):
            if self.dead_seen_at is None:
                log.warning("ltr_bls: the scheduler's stub is dead (%s); ending the requests on it", message)
            self.dead_seen_at = started
        elif self.dead_seen_at is not None:
            log.warning("ltr_bls: the scheduler answers again")
            self.dead_seen_at = None


@dataclass
class EntryStats:
    completed: int = 0
    cancelled: int = 0
    error: int = 0  # a step answered with an error (bad request, overload, engine failure), passed on
    failed: int = 0  # this model failed (a bug, a broken BLS call)
    live: int = 0
    stop_timeouts: int = 0  # cancelled, but the scheduler's stream did not end within stop_timeout_s
    stub_deaths: int = 0  # requests ended because a step's process died (included in `error`)


def split_inputs(inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The client's tensors (ensemble names) as preprocessing's inputs and the scheduler's pass-through ones."""
    unknown = set(inputs) - set(PREPROCESSING_INPUTS) - set(SCHEDULER_INPUTS)
    if unknown:
        raise ValueError(f"not inputs of the entry interface: {sorted(unknown)}")
    pre = {PREPROCESSING_INPUTS[k]: v for k, v in inputs.items() if k in PREPROCESSING_INPUTS}
    passed = {SCHEDULER_INPUTS[k]: v for k, v in inputs.items() if k in SCHEDULER_INPUTS}
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
        try:
            try:
                outcome = await self._serve(inputs, sink)
            except Exception as exc:
                if not isinstance(exc, StepError) and stub_died(str(exc)):  # a BLS call to a dead stub may raise
                    raise _StepDied(SCHEDULER) from exc
                raise
        except _StepDied as exc:
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
        return outcome

    async def _serve(self, inputs: Mapping[str, np.ndarray], sink: ClientSink) -> Outcome:
        pre_inputs, passed = split_inputs(inputs)
        try:
            prepared = await self.steps.preprocess(pre_inputs)
        except Exception as exc:
            if stub_died(getattr(exc, "message", None) or str(exc)):
                raise _StepDied("preprocessing") from exc
            raise
        if sink.is_cancelled():  # left during preprocessing: nothing was scheduled
            sink.send("", 0, CANCELLED, final=True)
            return "cancelled"
        scheduled = {PREPROCESSING_TO_SCHEDULER[k]: v for k, v in prepared.items() if k in PREPROCESSING_TO_SCHEDULER}
        request_id = self.new_id()
        leaving = _Leaving(self, request_id, sink)
        sent_at = self.clock()
        sending = asyncio.ensure_future(self.steps.schedule({**scheduled, **passed}, request_id))
        try:
            while not sending.done():  # queued: no response yet, but the client may leave meanwhile
                await asyncio.wait({sending}, timeout=self.cancel_poll_s)
                if sending.done():
                    break
                if leaving.check() == "let go":
                    self.stats.stop_timeouts += 1
                    leaving.cancel()
                    sink.send("", 0, CANCELLED, final=True)  # the scheduler call stays behind, blocked
                    return "cancelled"
                self.watch.waiting(sent_at)
                if self.watch.died_since(sent_at):  # the call stays behind, blocked, as above
                    leaving.cancel()
                    if leaving.stopping:
                        sink.send("", 0, CANCELLED, final=True)
                        return "cancelled"
                    raise _StepDied(SCHEDULER)
            responses = sending.result()
        except BaseException:
            leaving.cancel()
            raise
        arrived: asyncio.Queue = asyncio.Queue()
        self.readers.submit(read_into, responses, asyncio.get_running_loop(), arrived, self.release)
        return await self._relay(arrived, leaving, sink, sent_at)

    async def _relay(self, arrived: asyncio.Queue, leaving: "_Leaving", sink: ClientSink, sent_at: float) -> Outcome:
        """Each scheduler response to the client, until the final one; on a cancel, stop and drain."""
        last_at = self.clock()
        sent_tokens = 0
        try:
            while True:
                try:
                    item = await asyncio.wait_for(arrived.get(), self.cancel_poll_s)
                except asyncio.TimeoutError:
                    item = _NOTHING
                if leaving.check() == "let go":
                    self.stats.stop_timeouts += 1
                    break
                if item is _NOTHING:
                    self.watch.waiting(last_at)
                    if self.watch.died_since(sent_at):  # its reader thread stays behind, blocked
                        if leaving.stopping:
                            break
                        raise _StepDied(SCHEDULER)
                    silent_s = self.clock() - last_at
                    if self.stall_timeout_s is not None and silent_s > self.stall_timeout_s and not leaving.stopping:
                        raise StepError(f"generation failed: no response for {silent_s:.0f} s (the LLM's model may "
                                        "have died; the deployment is recovering): retry", self.unavailable)
                    continue
                last_at = self.clock()
                if item is None:
                    if leaving.stopping:
                        break
                    if sent_tokens:
                        raise StepError("the scheduler's stream ended without a final response")
                    # Nothing came but the end: under overload, Triton 2.51 at times hands a BLS
                    # caller the bare final flag of a refusal first and drops the refusal itself
                    # (`make faults`: 1-6 of 30 "server overloaded" answers). The refusals the
                    # scheduler sends before a first token are retryable ones, or bad requests,
                    # which preprocessing and the scheduler mostly refuse before their queue.
                    raise StepError("the scheduler ended the request without an answer (its refusal was lost on the "
                                    "way); retry later", self.unavailable)
                if isinstance(item, Exception):
                    if leaving.stopping:
                        break
                    if stub_died(str(item)):
                        raise _StepDied(SCHEDULER) from item
                    raise StepError(f"scheduler call failed: {item}")
                try:
                    reply = self.steps.read(item)  # StepError: the scheduler's own error, passed on
                except StepError as exc:
                    if stub_died(exc.message) and not leaving.stopping:  # sent to an already dead stub
                        raise _StepDied(SCHEDULER) from exc
                    raise
                if reply is None:
                    continue
                sent_tokens += len(reply.token_ids)
                if not leaving.stopping:
                    text = self.text_of(reply.context_ids, reply.token_ids, reply.final)
                    sink.send(text, len(reply.token_ids), reply.finish_reason if reply.final else "", reply.final)
                if reply.final:
                    break
        except StepError:
            if not leaving.stopping:
                raise
        finally:
            leaving.cancel()
        if not leaving.stopping:
            return "completed"
        sink.send("", 0, CANCELLED, final=True)  # what lets Triton release the client's request
        return "cancelled"

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


class _Leaving:
    """Watches one request's client (at most every `cancel_poll_s`) and, once it has left, stops the
    scheduler request in the background until the scheduler lets go or `stop_timeout_s` passes."""

    def __init__(self, flow: EntryFlow, request_id: str, sink: ClientSink) -> None:
        self.flow, self.request_id, self.sink = flow, request_id, sink
        self.stopper: asyncio.Task | None = None
        self.stopped_at = 0.0
        self.next_check = flow.clock()

    @property
    def stopping(self) -> bool:
        return self.stopper is not None

    def check(self) -> Literal["here", "stopping", "let go"]:
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


class _StepDied(Exception):
    """A step's process died under this request (`serve` turns it into the retryable error)."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


_NOTHING = object()
