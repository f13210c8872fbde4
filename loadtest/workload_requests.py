"""One workload request (workloads.traces.TraceRequest) as each client sends it: the gRPC stream's
inputs (the replay, locust's GrpcStreamUser), `generate_stream`'s JSON body (HttpStreamUser) and the
OpenAI chat body (OpenAIChatUser). Kept free of locust, whose import patches the process, so that
every client's request is built, and tested, here.

Dataset prompts go chat-templated by default (loadtest.prompts); a text-less trace's synthetic
prompt goes raw: no recorded answer asked it, and its length stands for the trace's raw context.
"""

from __future__ import annotations

from loadtest.grpc_stream import ensemble_inputs
from loadtest.prompts import DEFAULT_PROMPT_FORMAT, http_body
from runtime.contracts import Entry
from workloads.traces import TraceRequest


def synthetic_prompt(tokens: int) -> str:
    """A prompt of about `tokens` Llama-3 tokens for text-less traces (" the" is one token)."""
    return "Repeat:" + " the" * max(tokens - 3, 1)


def request_prompt(req: TraceRequest, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> tuple[str, str]:
    """The prompt text a request sends and its format."""
    if req.prompt is None:
        return synthetic_prompt(req.prompt_tokens), "raw"
    return req.prompt, prompt_format


def grpc_inputs(req: TraceRequest, prompt_format: str = DEFAULT_PROMPT_FORMAT, oracle: bool = False) -> list:
    """The gRPC stream's inputs. `oracle`: also the experiments-only `expected_output_len` (the
    true length, read by the oracle policy alone), with `max_tokens` falling back to it when unset."""
    prompt, fmt = request_prompt(req, prompt_format)
    if oracle:
        return ensemble_inputs(prompt, req.max_tokens or req.output_tokens, stream=True, prompt_format=fmt,
                               seed=req.seed, expected_output_len=req.output_tokens)
    return ensemble_inputs(prompt, req.max_tokens, stream=True, prompt_format=fmt, seed=req.seed)


def http_stream_body(req: TraceRequest, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> dict:
    """`generate_stream`'s JSON body."""
    prompt, fmt = request_prompt(req, prompt_format)
    return http_body(prompt, req.max_tokens, fmt, **{Entry.SEED: req.seed, Entry.STREAM: True})


def openai_chat_body(req: TraceRequest, model: str) -> dict:
    """`/v1/chat/completions`' body: one user message, which the OpenAI server templates exactly as
    loadtest.prompts does (the same runtime.chat_template)."""
    prompt, _ = request_prompt(req)
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": req.max_tokens,
            "seed": req.seed, "stream": True, "stream_options": {"include_usage": True}}
