"""The ensemble over gRPC: one `grpc.aio` channel to Triton shared by every request, one
bidirectional stream per request on it (no connection set-up per request, nothing blocking).

Requests are tritonclient's protocol messages (`tritonclient.grpc.service_pb2`) and responses are
read with tritonclient's `InferResult`. The channel is driven directly rather than through
`tritonclient.grpc.aio.InferenceServerClient.stream_infer` because that client refuses Triton's
`triton_enable_empty_final_response` request parameter, and without it the end of a request that
was stopped, or the answer to a `stop` request, never reaches the client.

A request left before its end (the HTTP client went away, a stop string was found) is ended in
the scheduler with TensorRT-LLM's `stop` by request id (`end`): Triton does not pass a stream's
cancellation on to an ensemble step that is already running, so cancelling the stream alone would
leave the request holding its place in the queue or its engine slot until its last token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import grpc
import numpy as np
from tritonclient.grpc import InferResult, service_pb2, service_pb2_grpc
from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor

from runtime.contracts import Entry

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**31 - 1  # as tritonclient's own clients
_END = object()


@dataclass(frozen=True)
class EnsembleRequest:
    request_id: str  # also the id a `stop` names
    text: str  # what the length predictor scores (text_input)
    prompt_ids: list[int]  # what the LLM gets (prompt_token_ids)
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop_words: tuple[str, ...] = ()  # also passed to the engine, so that it can stop at once
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None
    return_log_probs: bool = False


@dataclass(frozen=True)
class EnsembleChunk:
    text: str
    tokens: int
    final: bool
    finish_reason: str | None = None  # the ensemble's own, on its final response, when it has one
    log_probs: tuple[float, ...] = ()  # of this response's tokens, when the request asked for them
    expected_tokens: int | None = None  # the scheduler's expected answer length (None: it has no calibration)


@dataclass(frozen=True)
class RequestLimits:
    """What one request may ask for (prompt tokens, max_tokens), as preprocessing enforces it: the
    served face of the engine's build limits (`deploy.capacity.EngineLimits`), read from Triton."""

    max_input_len: int
    max_output_len: int


class EnsembleError(Exception):
    """The ensemble's error message for one request; `unavailable` when Triton could not be reached."""

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unavailable = unavailable


class EnsembleStream(Protocol):
    def __aiter__(self) -> "EnsembleStream": ...

    async def __anext__(self) -> EnsembleChunk:
        """The next response; raises EnsembleError, or StopAsyncIteration after the final one."""
        ...


class Backend(Protocol):
    """What the HTTP side needs from Triton (tests fake it)."""

    async def ready(self) -> bool: ...

    async def request_limits(self) -> RequestLimits: ...

    def open(self, request: EnsembleRequest) -> EnsembleStream: ...

    def end(self, request_id: str, stream: EnsembleStream) -> None:
        """End a request that is left before its end, in the background (never blocks the caller)."""
        ...


def _add_input(request: service_pb2.ModelInferRequest, name: str, value: np.ndarray) -> None:
    tensor = request.inputs.add()
    tensor.name = name
    tensor.datatype = np_to_triton_dtype(value.dtype)
    tensor.shape.extend(value.shape)
    if value.dtype == np.object_:
        request.raw_input_contents.append(serialize_byte_tensor(value).item())
    else:
        request.raw_input_contents.append(value.tobytes())


def ensemble_message(model: str, request: EnsembleRequest) -> service_pb2.ModelInferRequest:
    """The streamed ensemble request: TensorRT-LLM's ensemble inputs plus `prompt_token_ids`."""
    message = service_pb2.ModelInferRequest(model_name=model, id=request.request_id)
    message.parameters["triton_enable_empty_final_response"].bool_param = True
    _add_input(message, "text_input", np.array([[request.text.encode("utf-8")]], dtype=np.object_))
    _add_input(message, "prompt_token_ids", np.array([request.prompt_ids], dtype=np.int32))
    _add_input(message, "max_tokens", np.array([[request.max_tokens]], dtype=np.int32))
    _add_input(message, "stream", np.array([[True]]))
    if request.temperature is not None:
        _add_input(message, "temperature", np.array([[request.temperature]], dtype=np.float32))
    if request.top_p is not None:
        _add_input(message, "top_p", np.array([[request.top_p]], dtype=np.float32))
    if request.seed is not None:
        _add_input(message, "seed", np.array([[request.seed]], dtype=np.uint64))
    if request.stop_words:
        words = np.array([[w.encode("utf-8") for w in request.stop_words]], dtype=np.object_)
        _add_input(message, "stop_words", words)
    for name, value in ((Entry.FREQUENCY_PENALTY, request.frequency_penalty),
                        (Entry.PRESENCE_PENALTY, request.presence_penalty),
                        (Entry.REPETITION_PENALTY, request.repetition_penalty)):
        if value is not None:
            _add_input(message, name, np.array([[value]], dtype=np.float32))
    if request.min_tokens is not None:
        _add_input(message, Entry.MIN_TOKENS, np.array([[request.min_tokens]], dtype=np.int32))
    if request.return_log_probs:
        _add_input(message, Entry.RETURN_LOG_PROBS, np.array([[True]]))
    return message


def stop_message(model: str, request_id: str) -> service_pb2.ModelInferRequest:
    """TensorRT-LLM's `stop` for the live request with this id, sent to the scheduler."""
    message = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    message.parameters["triton_enable_empty_final_response"].bool_param = True
    _add_input(message, "input_ids", np.zeros((1, 1), dtype=np.int32))
    _add_input(message, "input_lengths", np.ones((1, 1), dtype=np.int32))
    _add_input(message, "request_output_len", np.ones((1, 1), dtype=np.int32))
    _add_input(message, "score", np.zeros((1, 1), dtype=np.float32))
    _add_input(message, "stop", np.ones((1, 1), dtype=bool))
    return message


def parse_response(response: service_pb2.ModelStreamInferResponse) -> EnsembleChunk:
    if response.error_message:
        raise EnsembleError(response.error_message)
    result = InferResult(response.infer_response)
    final = response.infer_response.parameters["triton_final_response"].bool_param
    text = result.as_numpy("text_output")
    count = result.as_numpy("output_token_count")
    finish = result.as_numpy("finish_reason")
    log_probs = result.as_numpy(Entry.OUTPUT_LOG_PROBS)
    expected = result.as_numpy(Entry.EXPECTED_OUTPUT_TOKENS)
    expected = int(expected.reshape(-1)[0]) if expected is not None and expected.size else -1
    reason = None
    if finish is not None and finish.size:
        value = finish.reshape(-1)[0]
        reason = (value.decode() if isinstance(value, bytes) else str(value)) or None
    return EnsembleChunk(
        text=b"".join(text.reshape(-1)).decode("utf-8") if text is not None else "",
        tokens=int(count.reshape(-1)[0]) if count is not None and count.size else 0,
        final=final,
        finish_reason=reason,
        log_probs=tuple(float(v) for v in log_probs.reshape(-1)) if log_probs is not None else (),
        expected_tokens=expected if expected >= 0 else None,  # -1: no calibration (runtime.triton_tensors)
    )


async def _one(message: service_pb2.ModelInferRequest):
    yield message  # then the request side closes: Triton ends the stream after the final response


class TritonStream:
    """One request's responses, read by a task of its own into a queue, so that a reader that is
    cancelled (its HTTP client went away) does not cancel the RPC: whoever ends the request can
    still see its end."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self._call = call
        self._queue: asyncio.Queue = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for response in self._call:
                try:
                    chunk = parse_response(response)
                except EnsembleError as exc:
                    self._queue.put_nowait(exc)
                    return
                self._queue.put_nowait(chunk)
                if chunk.final:
                    return
        except grpc.aio.AioRpcError as exc:
            unavailable = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            self._queue.put_nowait(EnsembleError(exc.details() or str(exc.code()), unavailable=unavailable))
        finally:
            self._queue.put_nowait(_END)

    def __aiter__(self) -> "TritonStream":
        return self

    async def __anext__(self) -> EnsembleChunk:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        if isinstance(item, EnsembleError):
            raise item
        return item

    @property
    def ended(self) -> bool:
        return self._reader.done()

    async def wait_ended(self, timeout_s: float) -> bool:
        await asyncio.wait({self._reader}, timeout=max(timeout_s, 0.0))
        return self._reader.done()

    def cancel(self) -> None:
        self._call.cancel()
        self._reader.cancel()


class TritonEnsembleClient:
    """The Backend on a real Triton: one channel, created on the running event loop."""

    def __init__(
        self,
        url: str,
        ensemble: str = "ensemble",
        scheduler: str = "ltr_scheduler",
        stop_timeout_s: float = 10.0,
        on_end: Callable[[str, float], None] | None = None,
    ) -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        self._channel = grpc.aio.insecure_channel(url, options=options)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self.ensemble = ensemble
        self.scheduler = scheduler
        self.stop_timeout_s = stop_timeout_s
        self.on_end = on_end  # (outcome, seconds) of every early end, for the metrics
        self._ending: set[asyncio.Task] = set()

    async def ready(self) -> bool:
        try:
            reply = await self._stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=2.0)
            return bool(reply.ready)
        except grpc.aio.AioRpcError:
            return False

    async def request_limits(self) -> RequestLimits:
        """A request's limits as the preprocessing model enforces them (its config parameters)."""
        try:
            reply = await self._stub.ModelConfig(service_pb2.ModelConfigRequest(name="preprocessing"), timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            raise EnsembleError(exc.details() or str(exc.code()), unavailable=True) from None
        params = reply.config.parameters
        return RequestLimits(int(params["max_input_len"].string_value), int(params["max_output_len"].string_value))

    def open(self, request: EnsembleRequest) -> TritonStream:
        return TritonStream(self._stub.ModelStreamInfer(_one(ensemble_message(self.ensemble, request))))

    async def stop(self, request_id: str) -> bool:
        """One `stop` to the scheduler: True when a live request with this id was stopped."""
        call = self._stub.ModelStreamInfer(_one(stop_message(self.scheduler, request_id)), timeout=5.0)
        try:
            async for response in call:
                if response.error_message:
                    return False
                if response.infer_response.parameters["triton_final_response"].bool_param:
                    return True
        except grpc.aio.AioRpcError:
            return False
        return False

    def end(self, request_id: str, stream: EnsembleStream) -> None:
        task = asyncio.get_running_loop().create_task(self._end(request_id, stream))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end(self, request_id: str, stream: TritonStream) -> None:
        """Stop the request until its stream ends. A `stop` that finds no live request is sent
        again a little later: the request may still be in preprocessing or the predictor."""
        start = time.monotonic()
        deadline = start + self.stop_timeout_s
        retry_s = 0.05
        outcome = "timed_out"
        try:
            while not stream.ended and time.monotonic() < deadline:
                stopped = await self.stop(request_id)
                wait = deadline - time.monotonic() if stopped else retry_s
                if await stream.wait_ended(wait):
                    break
                retry_s = min(2 * retry_s, 1.0)
            if stream.ended:
                outcome = "ended"
        except Exception:  # noqa: BLE001  (a background task: log, never raise into the loop)
            log.exception("ending request %s failed", request_id)
            outcome = "failed"
        finally:
            stream.cancel()
            if self.on_end is not None:
                self.on_end(outcome, time.monotonic() - start)

    async def close(self) -> None:
        if self._ending:
            await asyncio.wait(self._ending, timeout=self.stop_timeout_s)
        await self._channel.close()
