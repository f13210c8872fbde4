"""Locust load test of the deployment: HTTP SSE (`/v2/models/<model>/generate_stream`; `--model` ltr_bls,
the default entry point, or ensemble) and gRPC streaming (tritonclient), open-loop Poisson arrivals
drawn from the shared workloads.

    locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:8000 --grpc-url 127.0.0.1:8001 \
        --workload alpaca --rate 2 --max-requests 60 -u 4 -r 4 -t 120s --csv results/locust

Users are arrival processes, not clients waiting on their answers: each of the `-u` users sends
requests at exponential intervals of mean users/rate and does not wait for them (each request runs
in its own greenlet), so the superposition is a Poisson process of `--rate` requests/s regardless of
how slow the server is. The run is bounded by `--max-requests` (then locust stops once all answers
are in) and by `-t`. TTFT, TPOT (mean time per output token after the first) and end-to-end latency
are fired as locust request events (request_type `HTTP-SSE` or `gRPC-stream`, names `ttft`, `tpot`,
`e2e`), so they appear in locust's statistics, CSV and HTML report; a failed request fires one
failure under `e2e`. Pick the user class on the command line as usual (`HttpStreamUser`, `GrpcStreamUser`,
`OpenAIChatUser`); `OpenAIChatUser` streams `/v1/chat/completions` from the OpenAI-compatible server, so
`-H` is that server (`make loadtest LOAD_USER=OpenAIChatUser` points it there).

Prompts go as the recorded answers were asked for: one user turn of the Llama-3 instruct chat
template (`prompt_token_ids`, with the message in `text_input` for the predictor; the OpenAI server
applies the same template itself), built by loadtest.prompts; `--prompt-format raw` sends the text
alone. The stand-in's length table knows both forms, so every text request must end at its natural
length; text-less traces send a synthetic prompt raw.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from typing import Any

import gevent
import grpc.experimental.gevent as grpc_gevent
import numpy as np
from locust import FastHttpUser, User, events

from loadtest.prompts import PROMPT_FORMATS, PROMPT_FORMAT_HELP
from loadtest.workload_requests import grpc_inputs, http_stream_body, openai_chat_body
from repo_paths import data_dir
from workloads import traces as wl

grpc_gevent.init_gevent()  # let grpc's polling cooperate with locust's gevent loop

_STATE: dict[str, Any] = {"reqs": [], "next": itertools.count(), "done": 0, "sent": 0}
_LOCK = threading.Lock()


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--workload", default="alpaca",
                        help="alpaca | arena | azure_conv | azure_code | mooncake_conv | mooncake_synth")
    parser.add_argument("--rate", type=float, default=2.0, help="Poisson arrivals per second (all users)")
    parser.add_argument("--max-requests", type=int, default=100, help="stop after this many requests")
    parser.add_argument("--data-dir", default="", help="data folder ($LTR_DATA_DIR or ../shared/data)")
    parser.add_argument("--grpc-url", default="127.0.0.1:8001", help="gRPC host:port for GrpcStreamUser")
    parser.add_argument("--model", default="ltr_bls", help="Triton entry point: ltr_bls (default) or ensemble")
    parser.add_argument("--workload-seed", type=int, default=0)
    parser.add_argument("--max-tokens-mode", default="generic", choices=list(wl.MAX_TOKENS_MODES),
                        help="generic: one cap for every request, as clients send; true_length: each request's own "
                             "answer length (the usual benchmarks' shortcut; text-less traces always use it)")
    parser.add_argument("--prompt-format", default="chat", choices=list(PROMPT_FORMATS), help=PROMPT_FORMAT_HELP)
    parser.add_argument("--openai-model", default="llama-3-8b-instruct", help="model name for OpenAIChatUser")
    parser.add_argument("--openai-api-key", default="", help="API key for OpenAIChatUser, if the server wants one")


@events.test_start.add_listener
def _load_workload(environment: Any, **_: Any) -> None:
    """Requests in the order they will be sent (prompts and max_tokens from the workload)."""
    o = environment.parsed_options
    root = data_dir(o.data_dir or None)
    n = o.max_requests
    if o.workload in wl.TEXT_WORKLOADS:
        pool = wl.load_pool(o.workload, root)
        reqs = wl.with_max_tokens(wl.text_workload(pool, None, burst=n, seed=o.workload_seed), o.max_tokens_mode)
    else:  # no text: the stand-in cannot know these answers, so their length is the cap
        reqs = wl.with_max_tokens(wl.load_trace(o.workload, root)[:n], "true_length")
    _STATE.update(reqs=reqs, next=itertools.count(), done=0, sent=0, exact=o.workload in wl.TEXT_WORKLOADS)


def _take() -> wl.TraceRequest | None:
    i = next(_STATE["next"])
    return _STATE["reqs"][i] if i < len(_STATE["reqs"]) else None


def _fire(env: Any, kind: str, name: str, seconds: float, length: int = 0, exc: Exception | None = None) -> None:
    env.events.request.fire(request_type=kind, name=name, response_time=seconds * 1000.0,
                            response_length=length, exception=exc, context={})


def _expected_tokens(req: wl.TraceRequest) -> int | None:
    """The tokens a request must get: its natural length where the server's length table knows its
    prompt (text workloads, raw or chat-templated, every user), else None (only the cap is known)."""
    return req.answer_tokens if _STATE["exact"] else None


def _report(env: Any, kind: str, sent: float, token_times: list[float], tokens: int,
            req: wl.TraceRequest, error: str | None) -> None:
    """Fire ttft / tpot / e2e events for one finished request."""
    with _LOCK:
        _STATE["done"] += 1
        finished_all = _STATE["done"] >= len(_STATE["reqs"])
    expected = _expected_tokens(req)
    if error is None and expected is not None and tokens != expected:
        error = f"got {tokens} tokens, expected {expected}"
    if error is None and not 0 < tokens <= req.max_tokens:
        error = f"got {tokens} tokens, outside 1..max_tokens {req.max_tokens}"
    if error is not None or not token_times:
        _fire(env, kind, "e2e", time.perf_counter() - sent, tokens, RuntimeError(error or "no tokens"))
    else:
        _fire(env, kind, "ttft", token_times[0] - sent, tokens)
        if tokens > 1:
            _fire(env, kind, "tpot", (token_times[-1] - token_times[0]) / (tokens - 1), tokens)
        _fire(env, kind, "e2e", token_times[-1] - sent, tokens)
    if finished_all and env.runner is not None:
        gevent.spawn_later(0.5, env.runner.quit)


def _idle(user: User) -> None:
    """Never reached: `on_start` runs the arrival loop (locust wants at least one task)."""
    gevent.sleep(1.0)


class _OpenLoop:
    """Mixin: an arrival process that spawns requests without waiting for them."""

    tasks = [_idle]  # locust gives a user class the tasks of its bases

    def on_start(self) -> None:
        self._arrivals()

    def _arrivals(self) -> None:
        env = self.environment  # type: ignore[attr-defined]
        rate_per_user = env.parsed_options.rate / max(int(env.parsed_options.num_users or 1), 1)
        rng = np.random.default_rng()
        while True:
            req = _take()
            if req is None:
                gevent.sleep(3600)  # all sent: idle until locust stops
                continue
            gevent.spawn(self._one, req)  # type: ignore[attr-defined]
            gevent.sleep(rng.exponential(1.0 / rate_per_user))


class HttpStreamUser(_OpenLoop, FastHttpUser):
    """Server-sent events from `/v2/models/<model>/generate_stream` (Triton's generate extension)."""

    concurrency = 512  # connections in the pool: every in-flight request holds one
    network_timeout = 900.0
    connection_timeout = 10.0

    def _one(self, req: wl.TraceRequest) -> None:
        env = self.environment
        body = http_stream_body(req, env.parsed_options.prompt_format)
        sent = time.perf_counter()
        times: list[float] = []
        tokens = 0
        error = None
        try:
            resp = self.client.post(f"/v2/models/{env.parsed_options.model}/generate_stream",
                                    json=body, stream=True, name="generate_stream (headers)")
            resp.raise_for_status()
            raw = resp._response  # geventhttpclient response: read line by line as events arrive
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if "error" in event:
                    error = str(event["error"])
                    break
                n = int(event.get("output_token_count", 0) or 0)
                if n:
                    times.append(time.perf_counter())
                    tokens += n
        except Exception as exc:  # noqa: BLE001  (reported to locust as a failure)
            error = f"{type(exc).__name__}: {exc}"
        _report(env, "HTTP-SSE", sent, times, tokens, req, error)


class GrpcStreamUser(_OpenLoop, User):
    """tritonclient gRPC bidirectional streaming; one stream (and client) per request."""

    def _one(self, req: wl.TraceRequest) -> None:
        import tritonclient.grpc as grpcclient

        env = self.environment
        inputs = grpc_inputs(req, env.parsed_options.prompt_format)
        results: queue.Queue = queue.Queue()
        client = grpcclient.InferenceServerClient(env.parsed_options.grpc_url)
        times: list[float] = []
        tokens = 0
        error = None
        sent = time.perf_counter()
        try:
            client.start_stream(callback=lambda result, error: results.put((time.perf_counter(), result, error)))
            client.async_stream_infer(env.parsed_options.model, inputs,
                                      request_id=req.request_id, enable_empty_final_response=True)
            while True:
                # gevent-friendly wait on a queue filled by the client's own thread
                try:
                    at, result, err = results.get_nowait()
                except queue.Empty:
                    gevent.sleep(0.002)
                    continue
                if err is not None:
                    error = str(err)
                    break
                counts = result.as_numpy("output_token_count")
                n = int(counts.reshape(-1)[0]) if counts is not None else 0
                if n:
                    times.append(at)
                    tokens += n
                if result.get_response().parameters["triton_final_response"].bool_param:
                    break
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                client.stop_stream()
                client.close()
            except Exception:  # noqa: BLE001
                pass
        _report(env, "gRPC-stream", sent, times, tokens, req, error)


class OpenAIChatUser(_OpenLoop, FastHttpUser):
    """Streamed `/v1/chat/completions` (SSE) from the OpenAI-compatible server; the token count comes
    from the final usage chunk (`stream_options.include_usage`), the token times from the content chunks."""

    concurrency = 512
    network_timeout = 900.0
    connection_timeout = 10.0

    def _one(self, req: wl.TraceRequest) -> None:
        env = self.environment
        o = env.parsed_options
        body = openai_chat_body(req, o.openai_model)
        headers = {"Authorization": f"Bearer {o.openai_api_key}"} if o.openai_api_key else {}
        sent = time.perf_counter()
        times: list[float] = []
        tokens = 0
        error = None
        try:
            resp = self.client.post("/v1/chat/completions", json=body, headers=headers, stream=True,
                                    name="chat/completions (headers)")
            resp.raise_for_status()
            raw = resp._response
            while True:
                line = raw.readline(b"\n")
                if not line or line.strip() == b"data: [DONE]":
                    break
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if "error" in event:
                    error = str(event["error"].get("message", event["error"]))
                    break
                if event.get("usage"):
                    tokens = int(event["usage"]["completion_tokens"])
                if any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                    times.append(time.perf_counter())
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc}"
        _report(env, "OpenAI-SSE", sent, times, tokens, req, error)
