"""The whole ensemble on a real tritonserver: HTTP generate / generate_stream and gRPC streaming,
exact token counts under concurrency, and bad requests that fail alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from engine.vocab import MULTILINGUAL_IDS, MULTILINGUAL_TEXT
from loadtest.grpc_stream import generate, stream_infer, tensor
from runtime.llama3_tokenizer import load_tokenizer
from tests.server.helpers import http_generate, http_generate_stream, metric_value, start_server, wait_for

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain how a hash map works, with an example in Python.",
    "Translate 'good morning' into Spanish and German.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # The stand-in emits a multilingual text whose characters are split across tokens
    # (engine.vocab.MULTILINGUAL_TEXT), so every streamed answer here exercises the detokenizer.
    srv = start_server(tmp_path_factory.mktemp("ensemble"),
                       {"ltr_scheduler": {"max_inflight": "4"}, "tensorrt_llm": {"timing_tokens": "multilingual"}})
    yield srv
    srv.stop()


def test_models_are_ready_over_the_standard_endpoints(server, grpc):
    for model in ("ensemble", "preprocessing", "length_predictor", "ltr_scheduler", "tensorrt_llm", "postprocessing"):
        assert grpc.is_model_ready(model), model


def test_http_generate_returns_one_complete_response(server):
    status, body = http_generate(server, {"text_input": PROMPTS[0], "max_tokens": 12})
    assert status == 200, body
    assert body["output_token_count"] == 12
    assert isinstance(body["text_output"], str) and body["text_output"].strip()


def test_http_generate_stream_sends_tokens_as_they_come(server):
    status, events = http_generate_stream(server, {"text_input": PROMPTS[1], "max_tokens": 10, "stream": True})
    assert status == 200, events
    assert sum(e["output_token_count"] for e in events) == 10
    assert len([e for e in events if e["output_token_count"]]) >= 2  # streamed, not one blob (the relay may merge)
    assert "".join(e["text_output"] for e in events).strip()


def test_concurrent_requests_over_all_three_paths_each_get_exactly_their_tokens(server):
    def over_grpc(i: int) -> int:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            gen = generate(client, PROMPTS[i % 4], 8 + i, model="ensemble")
            assert gen.error is None, gen.error
            return gen.tokens
        finally:
            client.close()

    def over_http(i: int) -> int:
        status, body = http_generate(server, {"text_input": PROMPTS[i % 4], "max_tokens": 8 + i})
        assert status == 200, body
        return body["output_token_count"]

    def over_sse(i: int) -> int:
        status, events = http_generate_stream(server, {"text_input": PROMPTS[i % 4], "max_tokens": 8 + i, "stream": True})
        assert status == 200, events
        return sum(e["output_token_count"] for e in events)

    jobs = [(fn, i) for i in range(8) for fn in (over_grpc, over_http, over_sse)]
    # earlier tests' last requests are counted just after their clients had the answer
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0)
    completed_before = metric_value(server, "ltr_scheduler_requests_total", event="completed")
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        counts = list(pool.map(lambda job: job[0](job[1]), jobs))
    assert counts == [8 + i for i in range(8) for _ in range(3)]
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0)
    assert metric_value(server, "ltr_scheduler_waiting_requests") == 0
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="completed")
                    == completed_before + len(jobs))


def expected_text(tokens: int) -> str:
    """What decoding the whole answer at once gives: the stand-in's ids in a cycle."""
    ids = [MULTILINGUAL_IDS[i % len(MULTILINGUAL_IDS)] for i in range(tokens)]
    return load_tokenizer().decode_bytes(ids).decode("utf-8", errors="replace")


def test_streamed_text_is_the_answer_with_every_split_character_whole(server, grpc):
    tokens = 2 * len(MULTILINGUAL_IDS)  # ends on a character boundary
    gen = generate(grpc, "Écris une phrase en français avec des accents: été, déjà, naïve, 你好.", tokens, model="ensemble")
    assert gen.error is None and gen.tokens == tokens
    assert len([c for c in gen.chunks if c.tokens]) >= tokens // 2  # many responses: characters cross them
    assert gen.text == MULTILINGUAL_TEXT * 2 == expected_text(tokens)


def test_an_answer_cut_mid_character_ends_with_one_replacement_character(server, grpc):
    """The cap falls inside 🚀: the final response flushes the dangling bytes as U+FFFD, exactly as
    decoding the whole answer would, over gRPC streaming and plain HTTP alike."""
    tokens = MULTILINGUAL_IDS.index(248)  # " 🚀" is ids 11410, 248, 222: stop after the first
    assert expected_text(tokens).endswith("! \ufffd") and expected_text(tokens).count("\ufffd") == 1
    gen = generate(grpc, "Say something.", tokens, model="ensemble")
    assert gen.error is None and gen.text == expected_text(tokens)
    status, body = http_generate(server, {"text_input": "Say something.", "max_tokens": tokens})
    assert status == 200 and body["text_output"] == expected_text(tokens)


BAD_REQUESTS = [
    ({"text_input": "", "max_tokens": 8}, "empty"),
    ({"text_input": "   ", "max_tokens": 8}, "empty"),
    ({"text_input": "hello", "max_tokens": 0}, "max_tokens must be positive"),
    ({"text_input": "hello", "max_tokens": -3}, "max_tokens must be positive"),
    ({"text_input": "hello", "max_tokens": 100_000}, "exceeds the engine limit"),
    ({"text_input": "word " * 2000, "max_tokens": 8}, "over the engine's input limit"),
    ({"text_input": "hello"}, "max_tokens"),
]


@pytest.mark.parametrize("body,message", BAD_REQUESTS)
def test_bad_http_requests_get_a_clear_error(server, body, message):
    status, reply = http_generate(server, body)
    assert status == 400, reply
    assert message in reply["error"]


def test_undecodable_bytes_get_a_clear_error_over_grpc(server, grpc):
    gen = generate(grpc, b"caf\xc3\x28 \xff\xfe", 8, model="ensemble")
    assert gen.error is not None and "not valid UTF-8" in gen.error


def test_missing_input_is_refused_over_grpc(server, grpc):
    text_only = [tensor("text_input", np.array([[b"hello"]], dtype=np.object_))]
    (reply,) = list(stream_infer(grpc, "ensemble", text_only))
    assert isinstance(reply, str) and "missing required input" in reply and "max_tokens" in reply


def test_bad_requests_fail_alone_while_good_ones_complete(server):
    good = {"text_input": PROMPTS[2], "max_tokens": 16, "stream": True}

    def run(body):
        if "stream" in body:
            return http_generate_stream(server, body)
        return http_generate(server, body)

    bodies = [good if i % 2 == 0 else BAD_REQUESTS[i % len(BAD_REQUESTS)][0] for i in range(14)]
    with ThreadPoolExecutor(max_workers=14) as pool:
        results = list(pool.map(run, bodies))
    for body, (status, reply) in zip(bodies, results):
        if body is good:
            assert status == 200 and sum(e["output_token_count"] for e in reply) == 16
        else:
            assert status == 400
    assert metric_value(server, "ltr_scheduler_inflight_requests") == 0
    assert http_generate(server, {"text_input": "still serving?", "max_tokens": 4})[1]["output_token_count"] == 4
