"""Triton model `ltr_bls`: the ensemble's interface as a python entry model that sees its client's
cancellation. The request's life is runtime.bls_entry.EntryFlow; this file holds only the Triton
seams (runtime.entry_seams): the BLS calls into `preprocessing` and `ltr_scheduler`, the response
sender, the metrics."""

from __future__ import annotations

import asyncio
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.bls_entry import LIVE_REQUESTS, METRIC_FAMILIES, OUTCOMES, REQUESTS, EntryFlow
from runtime.contracts import (ENGINE_OUTPUTS_TO_ENTRY, PREPROCESSING_TO_SCHEDULER, Entry, Scheduler,
                               scheduler_stop_inputs)
from runtime.detokenize import response_text, special_token_filter
from runtime.entry_seams import SchedulerReply, StepError
from runtime.llama3_tokenizer import load_tokenizer
from runtime.llm_stream import DeferredRelease, use_bls_executor
from runtime.triton_tensors import engine_outputs as empty_engine_outputs, model_parameters


def _error(response) -> StepError | None:
    if not response.has_error():
        return None
    error = response.error()
    return StepError(error.message(), error.code())


def _array(response, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_output_tensor_by_name(response, name)
    return None if tensor is None else tensor.as_numpy()


class BLSSteps:
    """The ensemble's steps, called by BLS."""

    def __init__(self, preprocessing: str, scheduler: str, stoppers: ThreadPoolExecutor,
                 release: DeferredRelease) -> None:
        self.preprocessing = preprocessing
        self.scheduler = scheduler
        self.stoppers = stoppers
        self.release = release  # finished iterators are let go on the loop, with the GIL (its docstring)

    async def preprocess(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=self.preprocessing,
            inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
            requested_output_names=list(PREPROCESSING_TO_SCHEDULER),
        )
        response = await request.async_exec()
        error = _error(response)
        if error is not None:
            raise error
        return {name: _array(response, name) for name in PREPROCESSING_TO_SCHEDULER}

    def _request(self, inputs: Mapping[str, np.ndarray], request_id: str):
        return pb_utils.InferenceRequest(
            model_name=self.scheduler,
            inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
            requested_output_names=list(Scheduler.OUTPUTS),
            request_id=request_id,
        )

    async def schedule(self, inputs: Mapping[str, np.ndarray], request_id: str) -> Iterable[Any]:
        return await self._request(inputs, request_id).async_exec(decoupled=True)

    def read(self, response) -> SchedulerReply | None:
        error = _error(response)
        if error is not None:
            raise error
        return SchedulerReply.from_tensors(lambda name: _array(response, name))

    async def _stop_error(self, request_id: str) -> str | None:
        """TensorRT-LLM's `stop`: same request id, `stop: true`; the scheduler's other inputs are
        required. The message of the first error response, None when there was none."""
        responses = await self._request(scheduler_stop_inputs(), request_id).async_exec(decoupled=True)
        message = await asyncio.get_running_loop().run_in_executor(
            self.stoppers, lambda: next((r.error().message() for r in responses if r.has_error()), None)
        )
        self.release.keep(responses)
        return message

    async def stop(self, request_id: str) -> bool:
        return await self._stop_error(request_id) is None

    async def probe(self) -> str | None:
        """A `stop` for an id no request has (live ids are 32 hex digits): it stops nothing."""
        return await self._stop_error("ltr_bls-probe-" + secrets.token_hex(8))


class TritonClientSink:
    """The client's decoupled response sender, speaking the ensemble's outputs."""

    def __init__(self, request) -> None:
        self.request = request
        self.sender = request.get_response_sender()

    def is_cancelled(self) -> bool:
        return self.request.is_cancelled()

    def send(self, text: str, tokens: int, finish: str, final: bool,
             engine_outputs: Mapping[str, np.ndarray] | None = None) -> None:
        others = {ENGINE_OUTPUTS_TO_ENTRY[name]: value for name, value in empty_engine_outputs(None, 0.0).items()}
        others.update(engine_outputs or {})
        tensors = [
            pb_utils.Tensor(Entry.TEXT_OUTPUT, np.array([[text.encode("utf-8")]], dtype=np.object_)),
            pb_utils.Tensor(Entry.OUTPUT_TOKEN_COUNT, np.array([[tokens]], dtype=np.int32)),
            pb_utils.Tensor(Entry.FINISH_REASON, np.array([[finish.encode()]], dtype=np.object_)),
            *(pb_utils.Tensor(name, value) for name, value in others.items()),
        ]
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
        self.sender.send(pb_utils.InferenceResponse(output_tensors=tensors), flags=flags)

    def send_error(self, error: StepError) -> None:
        code = error.code if error.code is not None else pb_utils.TritonError.INTERNAL
        self.sender.send(
            pb_utils.InferenceResponse(error=pb_utils.TritonError(error.message, code)),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
        )


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = model_parameters(config)
        tokenizer = load_tokenizer(params["tokenizer_path"] or None)
        keep = special_token_filter(tokenizer.bos_id, params["skip_special_tokens"].lower() == "true")
        kinds = {"gauge": pb_utils.MetricFamily.GAUGE, "counter": pb_utils.MetricFamily.COUNTER}
        self.families = {  # kept on self: a family must outlive its metrics
            name: pb_utils.MetricFamily(name=name, description=description, kind=kinds[kind])
            for name, (kind, description) in METRIC_FAMILIES.items()
        }
        self.live = self.families[LIVE_REQUESTS].Metric(labels={})
        self.outcomes = {name: self.families[REQUESTS].Metric(labels={"outcome": name}) for name in OUTCOMES}
        self.counted = {name: 0 for name in OUTCOMES}
        self.readers = ThreadPoolExecutor(int(params["reader_threads"]), thread_name_prefix="bls-read")
        self.stoppers = ThreadPoolExecutor(4, thread_name_prefix="bls-stop")
        self.blocking = ThreadPoolExecutor(int(params["reader_threads"]), thread_name_prefix="bls-exec")
        release = DeferredRelease()
        self.flow = EntryFlow(
            BLSSteps(params["preprocessing_model"], params["scheduler_model"], self.stoppers, release),
            lambda context, new, final: response_text(tokenizer.decode_bytes, keep, context, new, final),
            self.readers,
            cancel_poll_s=int(params["cancel_poll_ms"]) / 1000,
            stop_timeout_s=float(params["stop_timeout_s"]),
            stall_timeout_s=float(params["stall_timeout_s"]) or None,
            on_change=self._publish,
            release=release,
            unavailable=pb_utils.TritonError.UNAVAILABLE,
        )

    def _publish(self, stats) -> None:
        """On the event loop, as requests arrive and end (runtime.bls_entry.EntryStats)."""
        if self.live is None:  # finalized
            return
        self.live.set(stats.live)
        for name in OUTCOMES:
            total = getattr(stats, name)
            if total > self.counted[name]:
                self.outcomes[name].increment(total - self.counted[name])
                self.counted[name] = total

    async def execute(self, requests: list) -> None:
        use_bls_executor(self.blocking)
        await asyncio.gather(*(self._serve(request) for request in requests))
        return None

    async def _serve(self, request) -> None:
        inputs = {}
        for name in Entry.INPUTS:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                inputs[name] = tensor.as_numpy()
        await self.flow.serve(inputs, TritonClientSink(request))

    def finalize(self) -> None:
        for pool in (self.readers, self.stoppers, self.blocking):
            pool.shutdown(wait=False, cancel_futures=True)
        # Metrics go while the stub can still tell Triton (as in ltr_scheduler: left to interpreter
        # teardown, their destructors message a parent that is gone, and the stub segfaults).
        self.live = self.outcomes = self.families = None
