"""`ltr_bls`, the BLS entry point, on a real tritonserver: the ensemble's answers byte for byte over
every endpoint, the ensemble's errors, and what the ensemble cannot do: a client that cancels its
gRPC stream or closes its HTTP stream is stopped in the scheduler at once, and Triton counts nothing
in flight for it afterwards."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from benchmarks.abandon import inflight_at_stop
from engine.vocab import MULTILINGUAL_IDS
from loadtest.abandon import grpc_cancel, http_generate_close, http_stream_close
from loadtest.grpc_stream import generate, stream_infer, tensor
from tests.server.helpers import http_generate, http_generate_stream, metric_value, start_server, wait_for

pytestmark = pytest.mark.server

ENTRIES = ("ensemble", "ltr_bls")
PROMPT = "Écris une phrase en français avec des accents: été, déjà, naïve, 你好."
MULTILINGUAL = {"tensorrt_llm": {"timing_tokens": "multilingual"}}  # characters split across tokens


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("bls"), {"ltr_scheduler": {"max_inflight": "4"}, **MULTILINGUAL})
    yield srv
    srv.stop()


@pytest.mark.parametrize("tokens", [2 * len(MULTILINGUAL_IDS), MULTILINGUAL_IDS.index(248)])  # whole; cut mid-character
def test_streamed_answers_are_the_ensembles_byte_for_byte(grpc, tokens):
    answers = {}
    for model in ENTRIES:
        results = [r for r in stream_infer(grpc, model, _inputs(tokens, stream=True))]
        assert not any(isinstance(r, str) for r in results), results
        text = b"".join(b"".join(r.as_numpy("text_output").reshape(-1)) for r in results if r.as_numpy("text_output") is not None)
        finish = [r.as_numpy("finish_reason").reshape(-1)[0] for r in results if r.as_numpy("finish_reason") is not None]
        counts = sum(int(r.as_numpy("output_token_count").reshape(-1)[0]) for r in results if r.as_numpy("output_token_count") is not None)
        answers[model] = (text, [f for f in finish if f][-1:], counts)
    assert answers["ltr_bls"] == answers["ensemble"]
    assert answers["ltr_bls"][2] == tokens and answers["ltr_bls"][1] == [b"length"]


@pytest.mark.parametrize("tokens", [2 * len(MULTILINGUAL_IDS), MULTILINGUAL_IDS.index(248)])
def test_non_streaming_answers_are_the_ensembles_byte_for_byte(server, tokens):
    bodies = {}
    for model in ENTRIES:
        status, body = http_generate(server, {"text_input": PROMPT, "max_tokens": tokens}, model=model)
        assert status == 200, body
        bodies[model] = {k: body[k] for k in ("text_output", "output_token_count", "finish_reason")}
    assert bodies["ltr_bls"] == bodies["ensemble"] and bodies["ltr_bls"]["output_token_count"] == tokens


def test_http_stream_answers_are_the_ensembles(server):
    answers = {}
    for model in ENTRIES:
        status, events = http_generate_stream(server, {"text_input": PROMPT, "max_tokens": 20, "stream": True}, model=model)
        assert status == 200, events
        answers[model] = ("".join(e["text_output"] for e in events), sum(e["output_token_count"] for e in events),
                          events[-1]["finish_reason"])
    assert answers["ltr_bls"] == answers["ensemble"] and answers["ltr_bls"][1:] == (20, "length")


@pytest.mark.parametrize("body, message", [
    ({"text_input": "", "max_tokens": 8}, "empty"),
    ({"text_input": "hello", "max_tokens": 100_000}, "exceeds the engine limit"),
    ({"text_input": "hello", "max_tokens": 8, "temperature": -1.0}, "temperature"),
    ({"text_input": "hello", "max_tokens": 8, "end_id": 10**6}, "outside the vocabulary"),
    ({"text_input": "hello"}, "max_tokens"),
])
def test_bad_requests_get_the_ensembles_400(server, body, message):
    replies = {model: http_generate(server, body, model=model) for model in ENTRIES}
    for model, (status, reply) in replies.items():
        assert status == 400 and message in reply["error"], (model, reply)
    # the ensemble prefixes a step's message with "in ensemble 'ensemble', "; Triton's own names the model
    assert replies["ltr_bls"][1]["error"].replace("'ltr_bls'", "'ensemble'") in replies["ensemble"][1]["error"]


def test_bad_requests_over_grpc_get_the_ensembles_messages(grpc):
    for inputs, message in (([tensor("text_input", np.array([[b"hello"]], dtype=np.object_))], "missing required input"),
                            (_inputs(8, text=b"caf\xc3\x28 \xff\xfe"), "not valid UTF-8")):
        for model in ENTRIES:
            (reply,) = list(stream_infer(grpc, model, inputs))
            assert isinstance(reply, str) and message in reply, (model, reply)


def test_concurrent_requests_each_get_exactly_their_tokens(server):
    def over_grpc(i: int) -> int:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            gen = generate(client, PROMPT, 8 + i, model="ltr_bls")
            assert gen.error is None, gen.error
            return gen.tokens
        finally:
            client.close()

    def over_http(i: int) -> int:
        return http_generate(server, {"text_input": PROMPT, "max_tokens": 8 + i}, model="ltr_bls")[1]["output_token_count"]

    def over_sse(i: int) -> int:
        _, events = http_generate_stream(server, {"text_input": PROMPT, "max_tokens": 8 + i, "stream": True}, model="ltr_bls")
        return sum(e["output_token_count"] for e in events)

    jobs = [(fn, i) for i in range(6) for fn in (over_grpc, over_http, over_sse)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        counts = list(pool.map(lambda job: job[0](job[1]), jobs))
    assert counts == [8 + i for i in range(6) for _ in range(3)]
    assert wait_for(lambda: metric_value(server, "ltr_bls_live_requests") == 0)
    assert metric_value(server, "ltr_bls_requests_total", outcome="failed") == 0


def test_clients_that_leave_free_their_capacity_and_triton_counts_nothing_in_flight(tmp_path):
    """The phantom test. 4 gRPC streams cancelled and 4 HTTP streams closed mid-answer (1,000 tokens
    each, ~12 s if not stopped), 4 more waiting in the queue when they leave: the scheduler is idle
    within ~1 s. 2 non-streaming HTTP clients that leave: Triton 2.51 does not read their socket while
    the request runs, so nobody can see them leave; they run to their end (short here) and are released.
    Then Triton, stopped, reports nothing in flight (the ensemble keeps one per cancelled stream:
    benchmarks/abandon.py measures that)."""
    server = start_server(tmp_path, {"ltr_scheduler": {"max_inflight": "4", "cancel_poll_ms": "50"}})
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        assert generate(client, PROMPT, 4, model="ltr_bls").error is None  # warm: a cold predictor takes a second
        client.close()
        host, port = "127.0.0.1", server.ports.http
        leaving = [lambda: grpc_cancel(server.grpc_url, PROMPT, 1000, model="ltr_bls", within_s=2.0)] * 6 + \
                  [lambda: http_stream_close(host, port, PROMPT, 1000, model="ltr_bls", within_s=2.0)] * 6 + \
                  [lambda: http_generate_close(host, port, PROMPT, 40, model="ltr_bls", within_s=0.3)] * 2
        with ThreadPoolExecutor(len(leaving)) as pool:
            list(pool.map(lambda leave: leave(), leaving))
        left_at = time.monotonic()
        busy = lambda: (metric_value(server, "ltr_scheduler_inflight_requests")  # noqa: E731
                        + metric_value(server, "ltr_scheduler_waiting_requests"))
        assert wait_for(lambda: busy() <= 2, timeout_s=3.0)  # only the two non-streaming ones may still run
        assert time.monotonic() - left_at < 2.0
        assert metric_value(server, "ltr_scheduler_requests_total", event="cancelled") == 12
        assert wait_for(lambda: busy() == 0 and metric_value(server, "ltr_bls_live_requests") == 0, timeout_s=15)
        assert metric_value(server, "ltr_bls_requests_total", outcome="cancelled") == 12
    finally:
        inflight = inflight_at_stop(server)
    assert inflight == {}, f"Triton still counts requests in flight: {inflight}"


def _inputs(tokens: int, stream: bool = True, text: bytes = PROMPT.encode()) -> list:
    return [tensor("text_input", np.array([[text]], dtype=np.object_)),
            tensor("max_tokens", np.array([[tokens]], dtype=np.int32)),
            tensor("stream", np.array([[stream]]))]
