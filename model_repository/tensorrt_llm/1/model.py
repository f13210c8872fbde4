"""CPU stand-in for TensorRT-LLM's `tensorrt_llm` Triton model (decoupled python backend).

Thin: it parses config parameters and input tensors (engine.settings), runs the iteration-level
batching engine (engine.batching) in a background thread (engine.realtime) and turns emitted tokens
into responses with TensorRT-LLM's outputs `output_ids` [batch, beam, tokens] and `sequence_length`
[batch, beam]. Streaming sends one response per iteration with the new token; the last one carries
TRITONSERVER_RESPONSE_COMPLETE_FINAL. Bad requests get an error response of their own.
Answers end like the model's: with `end_id` after the prompt's natural length from the configured
length table (engine.lengths), which, as in TensorRT-LLM, is not sent; `max_tokens` is a cap.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

try:
    import engine  # noqa: F401  (installed editable in the venv)
except ImportError:  # running from a checkout: the repository root is three levels up
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from engine.realtime import RealtimeEngine
from engine.request import EngineRequest
from engine.settings import EngineSettings, parse_request
from runtime.contracts import LLM
from runtime import internal_key
from runtime.triton_tensors import model_parameters, stop_requested

# What the scheduler sends (runtime.contracts.LLM), plus TensorRT-LLM inputs only the stand-in reads.
INPUT_NAMES = (
    *LLM.SENT_ON_EVERY_CALL, *LLM.PASSED_THROUGH, LLM.STREAMING, LLM.RANDOM_SEED, LLM.EXCLUDE_INPUT_IN_OUTPUT,
)
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


@dataclass
class _Context:
    """Per-request Triton state kept in EngineRequest.payload."""

    request: Any
    sender: Any
    streaming: bool
    exclude_input: bool
    done: bool = False
    stop_requested: bool = False  # set by a `stop` request with the same request id
    tokens: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)  # of `tokens` (non-streaming)
    cum_log_prob: float = 0.0


def _response(ids: list[int], log_probs: list[float], cum_log_prob: float) -> Any:
    """TensorRT-LLM's outputs for one beam: tokens, their log-probs (zeros when not asked for, as
    `timing` mode has no distribution), the running sum, and batch and sequence index 0."""
    tensors = {
        LLM.OUTPUT_IDS: np.asarray(ids, dtype=np.int32).reshape(1, 1, -1),
        LLM.SEQUENCE_LENGTH: np.asarray([[len(ids)]], dtype=np.int32),
        LLM.OUTPUT_LOG_PROBS: np.asarray(log_probs, dtype=np.float32).reshape(1, 1, -1),
        LLM.CUM_LOG_PROBS: np.asarray([[cum_log_prob]], dtype=np.float32),
        LLM.BATCH_INDEX: np.zeros((1, 1), dtype=np.int32),
        LLM.SEQUENCE_INDEX: np.zeros((1, 1), dtype=np.int32),
    }
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in tensors.items()])


def _token_log_probs(req: EngineRequest, ids: list[int]) -> list[float]:
    """The log-probs of the tokens just emitted (the last len(ids) generated); 0.0 where the token
    source recorded none (`timing` mode, or the request did not ask)."""
    recorded = req.log_probs[req.generated - len(ids): req.generated] if len(req.log_probs) >= req.generated else []
    return recorded + [0.0] * (len(ids) - len(recorded))


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = model_parameters(config)
        self.internal_key = internal_key.load_key()  # None: no deploy key, no check
        self.settings = EngineSettings.from_parameters(params)
        self.lengths, lengths_line = self.settings.load_lengths()
        self._ids = itertools.count()
        self._by_request_id: dict[str, _Context] = {}  # Triton request id -> live request
        self.runner = RealtimeEngine(
            self.settings.build_engine(),
            on_tokens=self._on_tokens,
            on_finish=self._on_finish,
            is_cancelled=lambda r: r.payload.stop_requested or r.payload.request.is_cancelled(),
            sleep_modelled_time=self.settings.mode == "timing",
            cancellation_check_period_s=self.settings.cancellation_check_period_ms / 1000.0,
        )
        self.runner.start()
        pb_utils.Logger.log_info(
            f"tensorrt_llm stand-in: mode={self.settings.mode} slots={self.settings.max_batch_slots} "
            f"kv_budget={self.runner.core.kv_budget} tokens policy={self.settings.kv_policy}; {lengths_line}"
        )

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            if not internal_key.carries_key(request.parameters(), self.internal_key):
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(internal_key.refusal("tensorrt_llm"))),
                            flags=FINAL)
                continue
            if stop_requested(request):
                self._stop(request.request_id(), sender)
                continue
            ctx = None
            try:
                tensors = {}
                for name in INPUT_NAMES:
                    t = pb_utils.get_input_tensor_by_name(request, name)
                    if t is not None:
                        tensors[name] = t.as_numpy()
                n = next(self._ids)
                eng_req, streaming, exclude = parse_request(f"req-{n}", tensors, self.settings, n)
                if self.lengths is not None:
                    eng_req.answer_len = self.lengths.answer_length(eng_req.prompt_ids or [], eng_req.seed)
                ctx = eng_req.payload = _Context(request, sender, streaming, exclude)
                if request.request_id():  # before submit: the engine may finish it at once
                    self._by_request_id[request.request_id()] = ctx
                eng_req.keep_output_ids = self.settings.mode == "hf"
                self.runner.submit(eng_req)  # validates the request, raising ValueError
            except (ValueError, TypeError) as exc:
                if ctx is not None and self._by_request_id.get(request.request_id()) is ctx:
                    del self._by_request_id[request.request_id()]  # rejected: not live
                sender.send(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tensorrt_llm: {exc}")),
                    flags=FINAL,
                )
        return None

    def _on_tokens(self, req: EngineRequest, ids: list[int], final: bool) -> None:
        ctx: _Context = req.payload
        log_probs = _token_log_probs(req, ids)
        if final and req.finish_reason == "end_id":
            ids, log_probs = ids[:-1], log_probs[:-1]  # the end token ends the answer but is not part of it
        ctx.cum_log_prob += sum(log_probs)
        if ctx.streaming:
            ctx.sender.send(_response(ids, log_probs, ctx.cum_log_prob), flags=FINAL if final else 0)
            ctx.done = final
        else:
            ctx.tokens.extend(ids)
            ctx.log_probs.extend(log_probs)

    def _stop(self, request_id: str, sender: Any) -> None:
        """Mark the live request with this id to leave the batch at the next step."""
        ctx = self._by_request_id.get(request_id)
        if ctx is not None:
            ctx.stop_requested = True
        sender.send(flags=FINAL)

    def _on_finish(self, req: EngineRequest) -> None:
        ctx: _Context = req.payload
        self._by_request_id.pop(ctx.request.request_id(), None)
        if ctx.done:
            return
        ctx.done = True
        if req.finish_reason == "cancelled":
            ctx.sender.send(flags=FINAL)
        elif ctx.streaming:
            ctx.sender.send(flags=FINAL)
        else:
            ids = ctx.tokens if ctx.exclude_input else list(req.prompt_ids or []) + ctx.tokens
            ctx.sender.send(_response(ids, ctx.log_probs, ctx.cum_log_prob), flags=FINAL)

    def finalize(self) -> None:
        self.runner.stop()
