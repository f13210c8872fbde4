"""Triton model `ltr_scheduler`: parses tensors and config, then hands each request to
runtime.relay.Relay, which queues it (scheduler/), admits it and streams it through BLS calls
to the LLM model. This file holds only the Triton seams: the BLS client, the response sink and
the Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime import internal_key
from runtime import scheduler_metrics as metric_names
from runtime.contracts import LLM, Scheduler, llm_call_inputs
from runtime.drain import DrainSignal
from runtime.engine_inputs import engine_inputs, includes_prompt, parse_token_ids, resolve_inputs
from runtime.length_calibration import CalibrationByVersion
from runtime.llm_stream import DeferredRelease, stream_chunks, use_bls_executor
from runtime.predictor_version import ServingVersionWatch
from runtime.predictor_fallback import FallbackRank
from runtime.preprocess import check_sampling
from runtime.relay import LLMJob, Relay, RelayStats
from runtime.request_log import LogSettings, RequestLog
from runtime.scheduler_metrics import EVENTS, CounterDeltas, event_totals, ranking_gauges
from runtime.triton_tensors import engine_outputs, first_value, model_parameters, queue_deadline, scalar, stop_requested
from scheduler import AdmissionGate, RankingGuard, RequestQueue, StarvationConfig, make_policy


def _token_ids(response) -> list[int]:
    ids = pb_utils.get_output_tensor_by_name(response, LLM.OUTPUT_IDS)
    return [] if ids is None else ids.as_numpy().reshape(-1).tolist()


def _log_probs(response) -> list[float]:
    values = pb_utils.get_output_tensor_by_name(response, LLM.OUTPUT_LOG_PROBS)
    return [] if values is None else values.as_numpy().reshape(-1).tolist()


def _error_message(response) -> str | None:
    return response.error().message() if response.has_error() else None


def _expected_len(request) -> int | None:
    """The experiments-only `expected_output_len` (benchmarks send it for the oracle policy)."""
    value = scalar(request, Scheduler.EXPECTED_OUTPUT_LEN, 0)
    return int(value) if value and int(value) > 0 else None


class BLSClient:
    """Streams tokens from the LLM model with BLS (runtime.llm_stream merges what arrived together)."""

    def __init__(self, model_name: str, workers: int, stall_timeout_s: float | None = None) -> None:
        self.model_name = model_name
        self.parameters = internal_key.bls_parameters(internal_key.load_key())  # the LLM lets only us in
        self.stall_timeout_s = stall_timeout_s  # a dead LLM stub ends its streams with an error, not a hang
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bls")
        self.calls = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bls-exec")  # async_exec's
        self.release = DeferredRelease()  # finished iterators die with the GIL (its docstring)

    async def _call(self, job: LLMJob, flag: str):
        use_bls_executor(self.calls)
        inputs = llm_call_inputs(job.input_ids, job.max_tokens, job.llm_inputs, flag)
        request = pb_utils.InferenceRequest(
            model_name=self.model_name,
            inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
            requested_output_names=list(LLM.OUTPUTS_READ),
            request_id=job.request_id,
            parameters=self.parameters,
        )
        return await request.async_exec(decoupled=True)

    async def stream(self, job: LLMJob) -> AsyncIterator[list[int]]:
        responses = await self._call(job, LLM.STREAMING)
        async for chunk in stream_chunks(responses, self.executor, _token_ids, _error_message, self.stall_timeout_s,
                                         self.release, _log_probs if job.return_log_probs else None):
            yield chunk

    async def stop(self, job: LLMJob) -> None:
        """TensorRT-LLM's way to stop a running request: a request with the same id and `stop`."""
        responses = await self._call(job, LLM.STOP)
        await asyncio.get_running_loop().run_in_executor(self.executor, lambda: list(responses))
        self.release.keep(responses)


class TritonSink:
    """A request's decoupled response sender, speaking the postprocessing model's tensors."""

    def __init__(self, request) -> None:
        self.request = request
        self.sender = request.get_response_sender()
        self.cum_log_prob = 0.0  # TensorRT-LLM's cum_log_probs: the answer's so far
        self.expected_tokens: float | None = None  # the job's, sent on every response (expected_output_tokens)

    def is_cancelled(self) -> bool:
        return self.request.is_cancelled()

    def send_tokens(
        self, token_ids: list[int], context_ids: list[int], final: bool, finish: str | None = None,
        log_probs: list[float] | None = None,
    ) -> None:
        self.cum_log_prob += sum(log_probs or ())
        tensors = [
            pb_utils.Tensor(Scheduler.OUTPUT_IDS, np.array([[token_ids]], dtype=np.int32).reshape(1, 1, -1)),
            pb_utils.Tensor(Scheduler.SEQUENCE_LENGTH, np.array([[len(token_ids)]], dtype=np.int32)),
            pb_utils.Tensor(Scheduler.CONTEXT_IDS, np.array([context_ids], dtype=np.int32).reshape(1, -1)),
            pb_utils.Tensor(Scheduler.IS_FINAL, np.array([[final]])),
            pb_utils.Tensor(Scheduler.FINISH_REASON, np.array([[(finish or "").encode()]], dtype=np.object_)),
            *(pb_utils.Tensor(name, value)
              for name, value in engine_outputs(log_probs, self.cum_log_prob, self.expected_tokens).items()),
        ]
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
        self.sender.send(pb_utils.InferenceResponse(output_tensors=tensors), flags=flags)

    def close(self) -> None:
        """End the response stream without data (the answer to a `stop` request)."""
        self.sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def send_error(self, message: str, retryable: bool = False, invalid: bool = False) -> None:
        """UNAVAILABLE (HTTP 503, gRPC UNAVAILABLE) when retrying later helps, INVALID_ARG (400) for
        a bad request, INTERNAL otherwise."""
        error = pb_utils.TritonError
        code = error.UNAVAILABLE if retryable else error.INVALID_ARG if invalid else error.INTERNAL
        self.sender.send(
            pb_utils.InferenceResponse(error=error(message, code)),
            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
        )


class SchedulerMetrics:
    """Prometheus metrics of the scheduler on Triton's metrics port (runtime.scheduler_metrics.FAMILIES)."""

    def __init__(self, policy: str) -> None:
        labels = {"policy": policy}
        kinds = {"gauge": pb_utils.MetricFamily.GAUGE, "counter": pb_utils.MetricFamily.COUNTER,
                 "histogram": pb_utils.MetricFamily.HISTOGRAM}
        # The families must outlive their metrics, so they are kept on self, by name.
        self.families = {
            name: pb_utils.MetricFamily(name=name, description=description, kind=kinds[kind])
            for name, (kind, description) in metric_names.FAMILIES.items()
        }
        self.log_failures = self.families[metric_names.REQUEST_LOG_FAILURES].Metric(labels=labels)
        self.predictor_version = self.families[metric_names.PREDICTOR_VERSION].Metric(labels=labels)
        self.log_lost = 0
        self.waiting = self.families[metric_names.WAITING].Metric(labels=labels)
        self.inflight = self.families[metric_names.INFLIGHT].Metric(labels=labels)
        events = self.families[metric_names.REQUESTS]
        self.counters = {name: events.Metric(labels={**labels, "event": name}) for name in EVENTS}
        self.ranking = {name: self.families[name].Metric(labels=labels) for name in (
            metric_names.RANKING_TAU, metric_names.RANKING_TAU_SAMPLES, metric_names.RANKING_TAU_WINDOW,
            metric_names.RANKING_TRUSTED)}
        self.deltas = CounterDeltas(EVENTS)
        self.histograms = {phase: self.families[name].Metric(labels=labels, buckets=list(bounds))
                           for name, (phase, bounds) in metric_names.HISTOGRAMS.items()}
        self.backlog = self.families[metric_names.PREDICTED_BACKLOG].Metric(labels=labels)

    def observe(self, phase: str, seconds: float) -> None:
        """The relay's timings (runtime.latency_histograms), on the event loop."""
        self.histograms[phase].observe(seconds)

    def update(self, gate: AdmissionGate, relay: RelayStats, ranking: RankingGuard, log_lost: int = 0,
               version: str | None = None, backlog: float = 0.0) -> None:
        """Called on the event loop only (the log's and the version watch's threads never touch a metric)."""
        if log_lost > self.log_lost:
            self.log_failures.increment(log_lost - self.log_lost)
            self.log_lost = log_lost
        if version is not None:
            self.predictor_version.set(float(version))
        self.waiting.set(gate.queue.stats().waiting)
        self.inflight.set(gate.inflight)
        self.backlog.set(backlog)
        for name, increment in self.deltas(event_totals(gate, relay)).items():
            self.counters[name].increment(increment)
        for name, value in ranking_gauges(gate, ranking).items():
            self.ranking[name].set(value)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = model_parameters(json.loads(args["model_config"]))
        queue = RequestQueue(
            make_policy(params["policy"], params=params),
            StarvationConfig(int(params["starvation_threshold"]), int(params["starvation_quantum"])),
            max_size=int(params["max_queue_size"]),
        )
        max_inflight = int(params["max_inflight"])
        self.max_beam_width = int(params.get("max_beam_width") or 1)
        self.end_tokens = parse_token_ids(params["end_tokens"])
        self.fallback_rank = FallbackRank()
        self.metrics = SchedulerMetrics(params["policy"])
        # the relay's clock (time.monotonic) stamps `arrival`: the gate reads the same one
        self.gate = AdmissionGate(queue, max_inflight, on_change=lambda gate: self._publish(), clock=time.monotonic)
        self.relay = Relay(
            self.gate,
            BLSClient(params["llm_model"], workers=2 * max_inflight + 4,
                      stall_timeout_s=float(params["llm_stall_timeout_s"]) or None),
            cancel_poll_s=int(params["cancel_poll_ms"]) / 1000,
            queue_timeout_s=queue_deadline(params),
            grace_left=DrainSignal(params["drain_file"]),
            observe=self._observe,
        )
        predictor_dir = Path(args["model_repository"]).parent / params["predictor_model"]
        self.version_watch = ServingVersionWatch(predictor_dir)  # read as requests arrive
        self.calibration = CalibrationByVersion(predictor_dir)  # score -> expected tokens, per version
        self.request_log = self._request_log(params)
        if self.request_log is not None:
            self.relay.request_log = self.request_log.append
        pb_utils.Logger.log_info(
            f"ltr_scheduler: policy={params['policy']} max_inflight={max_inflight} "
            f"request_log={self.request_log.path if self.request_log else 'off'}"
        )

    def _request_log(self, params: dict[str, str]) -> RequestLog | None:
        """The request log (runtime.request_log), or None when `request_log` is empty."""
        settings = LogSettings.from_parameters(params)
        if not settings.path:
            return None
        decode = None
        if settings.prompts:
            from runtime.chat_template import logged_prompt
            from runtime.llama3_tokenizer import load_tokenizer

            tokenizer = load_tokenizer(params.get("tokenizer_path") or None)
            decode = lambda ids: logged_prompt(tokenizer, ids)  # noqa: E731
        return RequestLog(settings, decode=decode)

    def finalize(self) -> None:
        if self.request_log is not None:
            self.request_log.close()
        # Metrics go while the stub can still tell Triton: left to interpreter teardown, their
        # destructors message a parent that is gone, and the stub segfaults on its way out.
        self.metrics = None

    def _observe(self, phase: str, seconds: float) -> None:
        if self.metrics is not None:  # not finalized
            self.metrics.observe(phase, seconds)

    def _publish(self) -> None:
        """On every change of the gate, and after every request, whose outcome the gate does not see."""
        log = getattr(self, "request_log", None)
        watch = getattr(self, "version_watch", None)
        if self.metrics is None:  # finalized
            return
        self.metrics.update(
            self.gate, self.relay.stats, self.relay.ranking,
            log_lost=log.stats.write_failures + log.stats.dropped if log else 0,
            version=watch.current if watch else None,
            backlog=self.relay.backlog.total(),
        )

    async def execute(self, requests: list) -> None:
        self.version_watch.maybe_refresh()
        await asyncio.gather(*(self._serve(request) for request in requests))
        return None

    async def _serve(self, request) -> None:
        sink = TritonSink(request)
        if stop_requested(request):
            if not self.relay.request_stop(request.request_id()):
                sink.send_error(f"no live request with id {request.request_id()!r} to stop", invalid=True)
            else:
                sink.close()
            return
        try:
            job = self._job(request)
        except ValueError as exc:  # runtime.preprocess.BadRequest included
            sink.send_error(str(exc), invalid=True)
            return
        sink.expected_tokens = job.expected_tokens
        try:
            await self.relay.serve(job, sink)
        finally:
            self._publish()

    def _job(self, request) -> LLMJob:
        input_ids = pb_utils.get_input_tensor_by_name(request, LLM.INPUT_IDS).as_numpy()
        if input_ids.shape[0] != 1:
            raise ValueError(f"send one prompt per request (got a batch of {input_ids.shape[0]})")
        check_sampling(
            scalar(request, LLM.TEMPERATURE), scalar(request, LLM.RUNTIME_TOP_K), scalar(request, LLM.RUNTIME_TOP_P)
        )
        passed, resolved = ({name: tensor.as_numpy() for name in names
                             if (tensor := pb_utils.get_input_tensor_by_name(request, name)) is not None
                             and tensor.as_numpy().size}
                            for names in (LLM.PASSED_THROUGH, Scheduler.RESOLVED))
        passed = resolve_inputs(passed, resolved, self.max_beam_width)
        streaming = bool(scalar(request, LLM.STREAMING, False))
        raw_score = float(scalar(request, Scheduler.SCORE))
        max_tokens = int(scalar(request, LLM.REQUEST_OUTPUT_LEN))
        calibration = self.calibration(self.version_watch.current)
        passed, end_tokens = engine_inputs(passed, self.end_tokens)  # both end ids, sampling defaults
        return LLMJob(
            request_id=uuid.uuid4().hex,  # unique per LLM call; client ids may repeat
            input_ids=input_ids.reshape(-1).astype(np.int32),
            max_tokens=max_tokens,
            score=self.fallback_rank(raw_score),  # NaN: the predictor was out
            streaming=streaming,
            llm_inputs=passed,
            client_id=request.request_id(),
            expected_len=_expected_len(request),
            predictor_version=self.version_watch.current,
            end_tokens=end_tokens,
            expected_tokens=calibration.expected_tokens(raw_score, max_tokens) if calibration else None,
            return_log_probs=bool(first_value(passed.get(LLM.RETURN_LOG_PROBS), False)),
            include_prompt=includes_prompt(resolved, streaming),
        )
