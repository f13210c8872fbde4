"""The soak's gRPC client sends the load tests' request (chat-templated), with the refused NaN
temperature on its bad requests."""

from __future__ import annotations

import pytest

from benchmarks import soak
from runtime.contracts import Entry


def test_grpc_stream_sends_the_templated_request(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list = []

    class FakeClient:
        def __init__(self, url: str) -> None:
            self.callback = None

        def start_stream(self, callback) -> None:  # noqa: ANN001
            self.callback = callback

        def async_stream_infer(self, model: str, inputs: list, **kw: object) -> None:
            sent.append([i.name() for i in inputs])
            self.callback(None, RuntimeError("refused"))

        def stop_stream(self, cancel_requests: bool = False) -> None: ...

    monkeypatch.setattr(soak.grpcclient, "InferenceServerClient", FakeClient)
    d = soak.Deployment.__new__(soak.Deployment)
    d.grpc, d.model = 1, "ltr_bls"
    soak.grpc_stream(d, 20, cancel=False, bad=False)
    soak.grpc_stream(d, 20, cancel=False, bad=True)
    assert Entry.PROMPT_TOKEN_IDS in sent[0] and Entry.TEMPERATURE not in sent[0]
    assert Entry.PROMPT_TOKEN_IDS in sent[1] and Entry.TEMPERATURE in sent[1]
