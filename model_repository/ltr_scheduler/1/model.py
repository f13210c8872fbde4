"""Triton model `ltr_scheduler`: parses tensors and config, then hands each request to
runtime.relay.Relay, which queues it (scheduler/), admits it and streams it through BLS calls
to the LLM model. This file holds only the Triton seams: the BLS client and the response sink."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

import numpy as np
import triton_python_backend_utils as pb_utils

from scheduler import AdmissionGate, RequestQueue, StarvationConfig, make_policy
from runtime.relay import Job, Relay
from runtime.triton_tensors import model_parameters

PASS_THROUGH = ("end_id", "pad_id", "stop_words_list", "bad_words_list", "temperature", "runtime_top_k", "runtime_top_p", "seed")


class BLSClient:
    """Streams tokens from the LLM model with BLS. The response iterator blocks, so a worker
    thread reads it into an asyncio queue and the event loop keeps serving the other requests.
    Tokens that arrived while the relay was busy go out as one chunk: when the host CPU falls
    behind, fewer, larger responses instead of a growing backlog of one-token ones."""

    def __init__(self, model_name: str, workers: int) -> None:
        self.model_name = model_name
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bls")
    def _request(self, job: Job, extra: list) -> "pb_utils.InferenceRequest":
        inputs = [
            pb_utils.Tensor("input_ids", job.input_ids[None, :]),
            pb_utils.Tensor("input_lengths", np.array([[job.input_ids.size]], dtype=np.int32)),
            pb_utils.Tensor("request_output_len", np.array([[job.max_tokens]], dtype=np.int32)),
        ] + [pb_utils.Tensor(name, value) for name, value in job.llm_inputs.items()] + extra
        return pb_utils.InferenceRequest(
            model_name=self.model_name,
            inputs=inputs,
            requested_output_names=["output_ids", "sequence_length"],
            request_id=job.request_id,
        )

    async def stream(self, job: Job) -> AsyncIterator[list[int]]:
        streaming = pb_utils.Tensor("streaming", np.array([[True]]))
        responses = await self._request(job, [streaming]).async_exec(decoupled=True)
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue = asyncio.Queue()

        def read_all() -> None:
            end: object = None
            try:
                for response in responses:
                    loop.call_soon_threadsafe(arrived.put_nowait, response)
            except Exception as exc:  # surfaces in the relay as this request's failure
                end = exc
            loop.call_soon_threadsafe(arrived.put_nowait, end)

        self.executor.submit(read_all)
        while True:
            batch = [await arrived.get()]
            while not arrived.empty():
                batch.append(arrived.get_nowait())
            tokens: list[int] = []
            for response in batch:
                if response is None or isinstance(response, Exception):
                    if tokens:
                        yield tokens
                    if response is not None:
                        raise response
                    return
                if response.has_error():
                    raise RuntimeError(response.error().message())
                ids = pb_utils.get_output_tensor_by_name(response, "output_ids")
                if ids is not None:
                    tokens.extend(ids.as_numpy().reshape(-1).tolist())
            if tokens:
                yield tokens

    async def stop(self, job: Job) -> None:
        """TensorRT-LLM's way to stop a running request: a request with the same id and `stop`."""
        stop = pb_utils.Tensor("stop", np.array([[True]]))
        responses = await self._request(job, [stop]).async_exec(decoupled=True)
        await asyncio.get_running_loop().run_in_executor(self.executor, lambda: list(responses))


class TritonSink:
    """A request's decoupled response sender, speaking the postprocessing model's tensors."""

    def __init__(self, request) -> None:
        self.request = request
        self.sender = request.get_response_sender()

    def is_cancelled(self) -> bool:
        return self.request.is_cancelled()

    def send_tokens(self, token_ids: list[int], context_ids: list[int], final: bool) -> None:
        tensors = [
            pb_utils.Tensor("output_ids", np.array([[token_ids]], dtype=np.int32).reshape(1, 1, -1)),
            pb_utils.Tensor("sequence_length", np.array([[len(token_ids)]], dtype=np.int32)),
            pb_utils.Tensor("context_ids", np.array([context_ids], dtype=np.int32).reshape(1, -1)),
            pb_utils.Tensor("is_final", np.array([[final]])),
        ]
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
        self.sender.send(pb_utils.InferenceResponse(output_tensors=tensors), flags=flags)

    def send_error(self, message: str) -> None:
        self.sender.send(
            pb_utils.InferenceResponse(error=pb_utils.TritonError(message)),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
        )

    def close(self) -> None:
        self.sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)


class SchedulerMetrics:
    """Prometheus metrics of the scheduler on Triton's metrics port (`ltr_scheduler_*`)."""

    COUNTED = ("admitted", "promoted", "rejected", "removed")

    def __init__(self, policy: str) -> None:
        labels = {"policy": policy}
        gauge, counter = pb_utils.MetricFamily.GAUGE, pb_utils.MetricFamily.COUNTER
        # The families must outlive their metrics, so they are kept on self.
        self.families = [
            pb_utils.MetricFamily(
                name="ltr_scheduler_waiting_requests", description="Requests waiting for admission", kind=gauge
            ),
            pb_utils.MetricFamily(
                name="ltr_scheduler_inflight_requests", description="Requests admitted into the LLM", kind=gauge
            ),
        ]
        self.waiting = self.families[0].Metric(labels=labels)
        self.inflight = self.families[1].Metric(labels=labels)
        family = pb_utils.MetricFamily(
            name="ltr_scheduler_requests_total",
            description="Scheduler decisions: admitted, promoted (starvation), rejected (queue full), removed (cancelled while waiting)",
            kind=counter,
        )
        self.families.append(family)
        self.counters = {name: family.Metric(labels={**labels, "event": name}) for name in self.COUNTED}
        self.last = dict.fromkeys(self.COUNTED, 0)

    def update(self, gate: AdmissionGate) -> None:
        stats = gate.queue.stats()
        self.waiting.set(stats.waiting)
        self.inflight.set(gate.inflight)
        now = {"admitted": gate.admitted_total, "promoted": stats.promoted_total,
               "rejected": stats.rejected_total, "removed": stats.removed_total}
        for name, value in now.items():
            if value > self.last[name]:
                self.counters[name].increment(value - self.last[name])
                self.last[name] = value


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(json.loads(args["model_config"]))
        queue = RequestQueue(
            make_policy(params["policy"]),
            StarvationConfig(int(params["starvation_threshold"]), int(params["starvation_quantum"])),
            max_size=int(params["max_queue_size"]),
        )
        max_inflight = int(params["max_inflight"])
        self.metrics = SchedulerMetrics(params["policy"])
        self.gate = AdmissionGate(queue, max_inflight, on_change=self.metrics.update)
        self.relay = Relay(
            self.gate,
            BLSClient(params["llm_model"], workers=2 * max_inflight + 4),
            cancel_poll_s=int(params["cancel_poll_ms"]) / 1000,
        )
        pb_utils.Logger.log_info(f"ltr_scheduler: policy={params['policy']} max_inflight={max_inflight}")

    async def execute(self, requests: list) -> None:
        await asyncio.gather(*(self._serve(request) for request in requests))
        return None

    async def _serve(self, request) -> None:
        sink = TritonSink(request)
        stop = pb_utils.get_input_tensor_by_name(request, "stop")
        if stop is not None and bool(stop.as_numpy().reshape(-1)[0]):
            if not self.relay.request_stop(request.request_id()):
                sink.send_error(f"no live request with id {request.request_id()!r} to stop")
            else:
                sink.close()
            return
        try:
            job = self._job(request)
        except ValueError as exc:
            sink.send_error(str(exc))
            return
        await self.relay.serve(job, sink)

    def _job(self, request) -> Job:
        def scalar(name: str):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            return None if tensor is None else tensor.as_numpy().reshape(-1)[0].item()

        input_ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
        if input_ids.shape[0] != 1:
            raise ValueError(f"send one prompt per request (got a batch of {input_ids.shape[0]})")
        passed = {}
        for name in PASS_THROUGH:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None and tensor.as_numpy().size:
                passed[name] = tensor.as_numpy()
        return Job(
            request_id=uuid.uuid4().hex,  # unique per LLM call; client ids may repeat
            input_ids=input_ids.reshape(-1).astype(np.int32),
            max_tokens=int(scalar("request_output_len")),
            score=float(scalar("score")),
            streaming=bool(scalar("streaming") or False),
            llm_inputs=passed,
            client_id=request.request_id(),
        )
