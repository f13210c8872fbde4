"""Clients that leave before their answer ends, the three ways a Triton client can (issue 13):
cancel a gRPC stream, close an HTTP `generate_stream` connection, close an HTTP `generate`
connection. Shared by the abandoned-request benchmark, the soak and the integration tests, so that
all of them leave the way a real client does.

Each returns when the client has left; what the server then frees is for the caller to watch.
Prompts go chat-templated as the load tests send them (loadtest.prompts), `prompt_format="raw"`
for the text alone.
"""

from __future__ import annotations

import json
import queue
import socket
import time
import uuid

import tritonclient.grpc as grpcclient

from loadtest.grpc_stream import DEFAULT_MODEL, ensemble_inputs
from loadtest.prompts import DEFAULT_PROMPT_FORMAT, http_body
from runtime.contracts import Entry

LEAVE_KINDS = ("grpc_cancel", "http_stream_close", "http_generate_close")


def grpc_cancel(url: str, prompt: str, max_tokens: int, model: str = DEFAULT_MODEL, after_tokens: int = 1,
                within_s: float = 1.0, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> int:
    """Stream over gRPC and cancel the stream (`stop_stream(cancel_requests=True)`) once
    `after_tokens` tokens came or `within_s` passed (a request still waiting in the queue gets none).
    Returns the tokens read."""
    client = grpcclient.InferenceServerClient(url)
    arrived: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: arrived.put((result, error)))
    tokens = 0
    try:
        client.async_stream_infer(model, ensemble_inputs(prompt, max_tokens, prompt_format=prompt_format),
                                  request_id=uuid.uuid4().hex,
                                  enable_empty_final_response=True)
        deadline = time.monotonic() + within_s
        while tokens < after_tokens and time.monotonic() < deadline:
            try:
                result, error = arrived.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                break
            if error is not None:
                raise RuntimeError(f"error before leaving: {error}")
            count = result.as_numpy("output_token_count")
            tokens += 0 if count is None else int(count.reshape(-1)[0])
        client.stop_stream(cancel_requests=True)
    finally:
        client.close()
    return tokens


def _post(host: str, port: int, path: str, body: dict, timeout_s: float) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, port), timeout=10.0)
    sock.settimeout(timeout_s)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def http_stream_close(host: str, port: int, prompt: str, max_tokens: int, model: str = DEFAULT_MODEL,
                      after_events: int = 1, within_s: float = 1.0, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> int:
    """POST `generate_stream` and close the connection once `after_events` SSE events came or
    `within_s` passed. Returns the events read."""
    body = http_body(prompt, max_tokens, prompt_format, **{Entry.STREAM: True})
    deadline = time.monotonic() + within_s
    data = b""
    with _post(host, port, f"/v2/models/{model}/generate_stream", body, within_s) as sock:
        while data.count(b"data:") < after_events and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    return data.count(b"data:")


def http_generate_close(host: str, port: int, prompt: str, max_tokens: int, model: str = DEFAULT_MODEL,
                        within_s: float = 0.3, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> bool:
    """POST `generate` (one response at the end), wait `within_s`, close the connection. Returns
    whether the answer had already come (then the client did not really leave early)."""
    body = http_body(prompt, max_tokens, prompt_format)
    with _post(host, port, f"/v2/models/{model}/generate", body, within_s) as sock:
        try:
            return bool(sock.recv(1))
        except TimeoutError:
            return False
