"""Clients that leave early send the load tests' request: chat-templated unless asked for raw."""

from __future__ import annotations

import json

import pytest

from loadtest import abandon
from loadtest.prompts import http_body
from runtime.contracts import Entry


class FakeSocket:
    def __init__(self) -> None:
        self.timeout = None

    def __enter__(self) -> "FakeSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def settimeout(self, t: float) -> None:
        self.timeout = t

    def recv(self, n: int) -> bytes:
        return b""


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []

    def fake_post(host: str, port: int, path: str, body: dict, timeout_s: float) -> FakeSocket:
        seen.append((path, json.loads(json.dumps(body))))
        return FakeSocket()

    monkeypatch.setattr(abandon, "_post", fake_post)
    return seen


def test_http_clients_send_the_templated_request(posted: list) -> None:
    abandon.http_stream_close("h", 1, "Tell me a story.", 50, within_s=0.01)
    abandon.http_generate_close("h", 1, "Tell me a story.", 50, within_s=0.01)
    assert posted[0] == ("/v2/models/ltr_bls/generate_stream", http_body("Tell me a story.", 50, **{Entry.STREAM: True}))
    assert posted[1] == ("/v2/models/ltr_bls/generate", http_body("Tell me a story.", 50))
    assert Entry.PROMPT_TOKEN_IDS in posted[0][1] and Entry.PROMPT_TOKEN_IDS in posted[1][1]
    abandon.http_generate_close("h", 1, "Tell me a story.", 50, within_s=0.01, prompt_format="raw")
    assert Entry.PROMPT_TOKEN_IDS not in posted[2][1]


def test_grpc_cancel_sends_the_templated_request(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list = []

    class FakeClient:
        def __init__(self, url: str) -> None: ...
        def start_stream(self, callback) -> None: ...  # noqa: ANN001
        def async_stream_infer(self, model: str, inputs: list, **kw: object) -> None:
            sent.append([i.name() for i in inputs])
        def stop_stream(self, cancel_requests: bool = False) -> None: ...
        def close(self) -> None: ...

    monkeypatch.setattr(abandon.grpcclient, "InferenceServerClient", FakeClient)
    assert abandon.grpc_cancel("u", "Tell me a story.", 50, within_s=0.01) == 0
    abandon.grpc_cancel("u", "Tell me a story.", 50, within_s=0.01, prompt_format="raw")
    assert Entry.PROMPT_TOKEN_IDS in sent[0] and Entry.PROMPT_TOKEN_IDS not in sent[1]
