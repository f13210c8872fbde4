"""Stream one generation over gRPC with tritonclient, from `ltr_bls` (the default entry point) or
`ensemble` (the same interface, kept for compatibility; docs/faults.md).

Shared by the command-line client, the integration tests and the load tests, so that all of them
speak to the server the way a user's client does.
"""

from __future__ import annotations

import queue
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from loadtest.prompts import prompt_inputs
from runtime.contracts import Entry

DEFAULT_MODEL = "ltr_bls"  # sees a cancelled stream and frees its capacity; "ensemble" does not
SCHEDULER_MODEL = "ltr_scheduler"


@dataclass
class Chunk:
    text: str
    tokens: int
    at: float  # time.perf_counter() when it arrived


@dataclass
class Generation:
    """One finished request, with what load tests report: TTFT, TPOT, latency."""

    chunks: list[Chunk] = field(default_factory=list)
    sent_at: float = 0.0
    error: str | None = None

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.chunks)

    @property
    def ttft_s(self) -> float | None:
        first = next((c for c in self.chunks if c.tokens), None)
        return None if first is None else first.at - self.sent_at

    @property
    def latency_s(self) -> float | None:
        return None if not self.chunks else self.chunks[-1].at - self.sent_at

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first one."""
        if self.tokens < 2 or self.ttft_s is None:
            return None
        last_token = max(c.at for c in self.chunks if c.tokens)
        return (last_token - self.sent_at - self.ttft_s) / (self.tokens - 1)


def tensor(name: str, value: np.ndarray) -> grpcclient.InferInput:
    infer_input = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
    infer_input.set_data_from_numpy(value)
    return infer_input


def ensemble_inputs(prompt: str | bytes, max_tokens: int, stream: bool = True, prompt_format: str = "raw",
                    **optional: float | int) -> list:
    """TensorRT-LLM ensemble inputs; optional ones (temperature, top_k, top_p, end_id, ...)
    are sent only when given. `prompt_format` "chat" adds the chat-templated prompt
    (loadtest.prompts; what load tests and benchmarks send); the default "raw" is the plain
    TensorRT-LLM interface, and bytes (which may be no text at all) are always sent raw."""
    if isinstance(prompt, bytes):
        text, token_ids = prompt, None
    else:
        carried = prompt_inputs(prompt, prompt_format)
        text, token_ids = prompt.encode("utf-8"), carried.get(Entry.PROMPT_TOKEN_IDS)
    inputs = [
        tensor(Entry.TEXT_INPUT, np.array([[text]], dtype=np.object_)),
        tensor(Entry.MAX_TOKENS, np.array([[max_tokens]], dtype=np.int32)),
        tensor(Entry.STREAM, np.array([[stream]], dtype=bool)),
    ]
    if token_ids is not None:
        inputs.append(tensor(Entry.PROMPT_TOKEN_IDS, np.array([token_ids], dtype=np.int32)))
    dtypes = {"temperature": np.float32, "top_p": np.float32, "top_k": np.int32, "end_id": np.int32,
              "pad_id": np.int32, "seed": np.uint64, "expected_output_len": np.int32}
    for name, value in optional.items():
        inputs.append(tensor(name, np.array([[value]], dtype=dtypes[name])))
    return inputs


def stream_infer(
    client: grpcclient.InferenceServerClient,
    model: str,
    inputs: list,
    timeout_s: float = 600.0,
    request_id: str | None = None,
    cancel_on_early_exit: bool = True,
) -> Iterator[grpcclient.InferResult | str]:
    """Yield each response of one decoupled request until its final flag; an error ends the
    stream with its message (a str). A consumer that stops before the end (breaks out, Ctrl-C)
    cancels the stream, which `ltr_bls` turns into a stop in the scheduler; pass
    `cancel_on_early_exit=False` for the ensemble, where a cancelled stream is never released by
    Triton 2.51 (stop it by id instead: `stop_request`)."""
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    ended = False
    try:
        client.async_stream_infer(
            model, inputs, request_id=request_id or uuid.uuid4().hex, enable_empty_final_response=True
        )
        while True:
            result, error = results.get(timeout=timeout_s)
            if error is not None:
                ended = True
                yield error.message() if isinstance(error, InferenceServerException) else str(error)
                return
            ended = result.get_response().parameters["triton_final_response"].bool_param
            yield result
            if ended:
                return
    finally:
        client.stop_stream(cancel_requests=cancel_on_early_exit and not ended)


def stream_generate(
    client: grpcclient.InferenceServerClient,
    prompt: str | bytes,
    max_tokens: int,
    model: str = DEFAULT_MODEL,
    timeout_s: float = 600.0,
    request_id: str | None = None,
    cancel_on_early_exit: bool = True,
    prompt_format: str = "raw",
    **optional: float | int,
) -> Iterator[Chunk | str]:
    """Yield the answer's text chunks as they arrive; an error ends the stream (a str)."""
    inputs = ensemble_inputs(prompt, max_tokens, stream=True, prompt_format=prompt_format, **optional)
    for result in stream_infer(client, model, inputs, timeout_s, request_id, cancel_on_early_exit):
        if isinstance(result, str):
            yield result
            return
        text = result.as_numpy("text_output")
        if text is not None:
            tokens = result.as_numpy("output_token_count")
            yield Chunk(
                text=b"".join(text.reshape(-1)).decode("utf-8"),
                tokens=int(tokens.reshape(-1)[0]) if tokens is not None else 0,
                at=time.perf_counter(),
            )


def stop_request(client: grpcclient.InferenceServerClient, request_id: str) -> str | None:
    """Stop a live `ensemble` request by its id (waiting or generating), TensorRT-LLM's `stop`
    convention, sent to the scheduler: Triton passes request ids into ensemble steps but not
    cancellations. (`ltr_bls` gives the scheduler an id of its own: cancel its stream instead.)
    Returns None when stopped, else the server's message (e.g. no such live request)."""
    inputs = [
        tensor("input_ids", np.zeros((1, 1), dtype=np.int32)),
        tensor("input_lengths", np.ones((1, 1), dtype=np.int32)),
        tensor("request_output_len", np.ones((1, 1), dtype=np.int32)),
        tensor("score", np.zeros((1, 1), dtype=np.float32)),
        tensor("stop", np.ones((1, 1), dtype=bool)),
    ]
    for result in stream_infer(client, SCHEDULER_MODEL, inputs, request_id=request_id):
        if isinstance(result, str):
            return result
    return None


def generate(client: grpcclient.InferenceServerClient, prompt: str | bytes, max_tokens: int, **kw) -> Generation:
    """Run one streamed request to completion and collect its timings."""
    gen = Generation(sent_at=time.perf_counter())
    for item in stream_generate(client, prompt, max_tokens, **kw):
        if isinstance(item, str):
            gen.error = item
        else:
            gen.chunks.append(item)
    return gen
