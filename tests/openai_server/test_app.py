"""The HTTP side on a real socket (uvicorn) with a scripted backend: statuses, shapes, the API
key, the body limit, the metrics, and a client that goes away."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import openai
import pytest
import uvicorn

from openai_server.app import create_app
from openai_server.ensemble_client import EnsembleChunk, EnsembleError
from openai_server.settings import Settings
from tests.openai_server.fake_backend import FakeBackend, words

MODEL = "test-model"


@contextmanager
def serving(backend: FakeBackend, **settings) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    app = create_app(Settings(model_name=MODEL, port=port, **settings), backend=backend)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def post(port: int, path: str, body: bytes | dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), json.loads(payload) if payload else {}


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    return resp.status, text


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}


def test_chat_and_completions_with_the_openai_sdk():
    backend = FakeBackend(script=words(3))
    with serving(backend) as port:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(**CHAT)
        assert reply.choices[0].message.content == " w w w" and reply.choices[0].finish_reason == "length"
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(backend.opened[0].prompt_ids), 3)
        chunks = list(client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " w w w"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
        text = client.completions.create(model=MODEL, prompt="Once", max_tokens=5)
        assert text.choices[0].text == " w w w" and text.choices[0].finish_reason == "stop"  # 3 < 5
        assert [m.id for m in client.models.list().data] == [MODEL]
    sent = backend.opened[0]
    assert sent.prompt_ids[:2] == [128000, 128006] and sent.text == "Hi" and sent.max_tokens == 3


def test_error_statuses_in_openai_shape():
    with serving(FakeBackend(script=[EnsembleError("server overloaded: 9 requests already waiting")])) as port:
        status, headers, body = post(port, "/v1/chat/completions", {**CHAT, "stream": True})
        assert status == 503 and headers["retry-after"] == "1" and "overloaded" in body["error"]["message"]
    with serving(FakeBackend(script=[EnsembleError("in ensemble 'ensemble', max_tokens 500 exceeds the engine limit of 100")])) as port:
        status, _, body = post(port, "/v1/chat/completions", CHAT)
        assert status == 400 and "exceeds the engine limit" in body["error"]["message"]
    with serving(FakeBackend(script=[EnsembleError("generation failed: boom")])) as port:
        assert post(port, "/v1/chat/completions", CHAT)[0] == 500
    with serving(FakeBackend(), max_body_bytes=1000) as port:
        assert post(port, "/v1/chat/completions", {**CHAT, "user": "x" * 1100})[0] == 413
        assert post(port, "/v1/chat/completions", b"{not json")[0] == 400
        status, _, body = post(port, "/v1/chat/completions", {**CHAT, "model": "gpt-4"})
        assert status == 404 and body["error"]["code"] == "model_not_found"
        status, _, body = post(port, "/v1/chat/completions", {**CHAT, "n": 3})
        assert status == 400 and "n=1" in body["error"]["message"]
        long_prompt = {**CHAT, "messages": [{"role": "user", "content": "word " * 100}]}
        status, _, body = post(port, "/v1/chat/completions", long_prompt)
        assert status == 400 and "over the limit of 64" in body["error"]["message"]
        _, metrics = get(port, "/metrics")
        assert 'openai_server_errors_total{status="413",type="invalid_request_error"} 1.0' in metrics
        assert 'openai_server_errors_total{status="404",type="invalid_request_error"} 1.0' in metrics


def test_unimplemented_openai_fields_get_a_400_naming_them_and_nothing_reaches_triton():
    backend = FakeBackend()
    with serving(backend) as port:
        for path, body, named in (
            ("/v1/chat/completions", {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
            ("/v1/chat/completions", {**CHAT, "tool_choice": "required"}, "tool_choice"),
            ("/v1/chat/completions", {**CHAT, "functions": [{"name": "f"}]}, "functions"),
            ("/v1/chat/completions", {**CHAT, "response_format": {"type": "json_object"}}, "response_format"),
            ("/v1/chat/completions", {**CHAT, "logprobs": True, "top_logprobs": 3}, "top_logprobs"),
            ("/v1/chat/completions", {**CHAT, "logit_bias": {"1": 3}}, "logit_bias"),
            ("/v1/chat/completions", {**CHAT, "n": 2}, "n=1"),
            ("/v1/completions", {"model": MODEL, "prompt": "Hi", "logprobs": 3}, "logprobs 3"),
            ("/v1/completions", {"model": MODEL, "prompt": "Hi", "echo": True}, "echo"),
        ):
            status, _, reply = post(port, path, body)
            assert status == 400, (body, reply)
            assert named in reply["error"]["message"] and reply["error"]["type"] == "invalid_request_error"
        status, _, reply = post(port, "/v1/chat/completions", {**CHAT, "some_future_field": 1,
                                                              "response_format": {"type": "text"}})
        assert status == 200  # unknown fields, and known ones asking for nothing, are still served
    assert len(backend.opened) == 1


def test_penalties_and_log_probs_reach_the_ensemble_and_come_back():
    script = [EnsembleChunk(" a", 1, False, log_probs=(-0.5,)), EnsembleChunk(" b", 1, False, log_probs=(-1.5,)),
              EnsembleChunk("", 0, True, "stop")]
    backend = FakeBackend(script=list(script))
    with serving(backend) as port:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(**CHAT, logprobs=True, frequency_penalty=0.5, presence_penalty=0.25,
                                               extra_body={"repetition_penalty": 1.1, "min_tokens": 2})
        content = reply.choices[0].logprobs.content
        assert [(c.token, c.logprob) for c in content] == [(" a", -0.5), (" b", -1.5)]
        assert content[0].bytes == list(b" a") and content[0].top_logprobs == []
        sent = backend.opened[0]
        assert (sent.frequency_penalty, sent.presence_penalty, sent.repetition_penalty, sent.min_tokens) == (
            0.5, 0.25, 1.1, 2)
        assert sent.return_log_probs
        backend.script = list(script)
        chunks = list(client.chat.completions.create(**CHAT, logprobs=True, stream=True))
        streamed = [(c.token, c.logprob) for ch in chunks if ch.choices and ch.choices[0].logprobs
                    for c in ch.choices[0].logprobs.content]
        assert streamed == [(" a", -0.5), (" b", -1.5)]
        backend.script = list(script)
        text = client.completions.create(model=MODEL, prompt="Once", max_tokens=5, logprobs=0)
        lp = text.choices[0].logprobs
        assert lp.tokens == [" a", " b"] and lp.token_logprobs == [-0.5, -1.5] and lp.text_offset == [0, 2]
        backend.script = list(script)
        plain = client.chat.completions.create(**CHAT)
        assert plain.choices[0].logprobs is None and not backend.opened[-1].return_log_probs


def test_api_key():
    with serving(FakeBackend(), api_key="sekret") as port:
        status, _, body = post(port, "/v1/chat/completions", CHAT)
        assert status == 401 and body["error"]["type"] == "authentication_error"
        assert post(port, "/v1/chat/completions", CHAT, {"Authorization": "Bearer wrong"})[0] == 401
        assert post(port, "/v1/chat/completions", CHAT, {"Authorization": "Bearer sekret"})[0] == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope").models.list()


def test_health_follows_triton():
    backend = FakeBackend()
    with serving(backend) as port:
        assert get(port, "/health")[0] == 200
        backend.is_ready = False
        assert get(port, "/health")[0] == 503


def test_a_client_that_goes_away_ends_its_request():
    backend = FakeBackend(script=words(200), delay_s=0.02)
    with serving(backend) as port:
        for stream in (True, False):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/v1/chat/completions", json.dumps({**CHAT, "max_tokens": 200, "stream": stream}),
                         {"Content-Type": "application/json"})
            if stream:
                resp = conn.getresponse()
                assert resp.status == 200 and resp.readline().startswith(b"data: ")
            time.sleep(0.2)
            conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            deadline = time.monotonic() + 5
            while len(backend.ended) < (1 if stream else 2) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert backend.ended == [r.request_id for r in backend.opened]
        _, metrics = get(port, "/metrics")
        assert "openai_server_client_disconnects_total 2.0" in metrics
        assert "openai_server_open_streams 0.0" in metrics


def test_the_expected_answer_length_is_a_response_header_streamed_or_not():
    from openai_server.generation import EXPECTED_TOKENS_HEADER

    script = [EnsembleChunk(" a", 1, False, expected_tokens=42), EnsembleChunk(" b", 1, False, expected_tokens=42),
              EnsembleChunk("", 0, True, "stop", expected_tokens=42)]
    with serving(FakeBackend(script=script)) as port:
        status, headers, body = post(port, "/v1/chat/completions", CHAT)
        assert status == 200 and headers[EXPECTED_TOKENS_HEADER] == "42"
        assert "expected" not in json.dumps(body)  # the body is OpenAI's, untouched
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        raw = client.chat.completions.with_raw_response.create(**CHAT, stream=True)
        assert raw.headers[EXPECTED_TOKENS_HEADER] == "42"
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == " a b"
    with serving(FakeBackend(script=words(2))) as port:  # no calibration behind the scheduler: no header
        status, headers, _ = post(port, "/v1/completions", {"model": MODEL, "prompt": "Once", "max_tokens": 3})
        assert status == 200 and EXPECTED_TOKENS_HEADER not in headers
