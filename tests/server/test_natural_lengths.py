"""Answers end where the model would end them: the stand-in reads a length table, `max_tokens` is a
cap, and every final response says why it ended (`finish_reason`)."""

from __future__ import annotations

import pytest

import tritonclient.grpc as grpcclient

from engine.lengths import LengthTable, pick_sample, prompt_key
from loadtest.grpc_stream import generate
from loadtest.prompts import http_body
from runtime.chat_template import single_turn_ids
from runtime.contracts import Entry
from runtime.llama3_tokenizer import load_tokenizer
from tests.server.helpers import http_generate, http_generate_stream, start_server
from workloads.lengths import chat_aliases

KNOWN = "Name three primary colours."  # answers in 5 tokens
TWO_SAMPLES = "Describe a sunset."  # answers in 6 or 11 tokens, by seed
UNKNOWN = "What is the tallest mountain on Earth?"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    tok = load_tokenizer()
    encode = tok.encode
    path = tmp_path_factory.mktemp("lengths") / "toy.json"
    table = LengthTable.from_samples("toy", {prompt_key(encode(KNOWN)): [5], prompt_key(encode(TWO_SAMPLES)): [6, 11]},
                                     aliases=chat_aliases([KNOWN, TWO_SAMPLES], encode, lambda p: single_turn_ids(tok, p)))
    table.save(path)
    return table, path, encode


@pytest.fixture(scope="module")
def server(tmp_path_factory, table):
    srv = start_server(tmp_path_factory.mktemp("natural"), {"tensorrt_llm": {"length_table": str(table[1])}})
    yield srv
    srv.stop()


def test_a_known_prompt_ends_at_its_length_with_finish_reason_stop(server):
    status, body = http_generate(server, {"text_input": KNOWN, "max_tokens": 50})
    assert status == 200, body
    assert (body["output_token_count"], body["finish_reason"]) == (5, "stop")
    status, events = http_generate_stream(server, {"text_input": KNOWN, "max_tokens": 50, "stream": True})
    assert sum(e["output_token_count"] for e in events) == 5
    assert [e["finish_reason"] for e in events] == [""] * (len(events) - 1) + ["stop"]


def test_max_tokens_is_a_cap_with_finish_reason_length(server):
    status, body = http_generate(server, {"text_input": KNOWN, "max_tokens": 3})
    assert (status, body["output_token_count"], body["finish_reason"]) == (200, 3, "length")


def test_several_samples_are_picked_by_the_seed_and_reruns_agree(server):
    seen = set()
    for seed in range(6):
        want = pick_sample((6, 11), seed)
        for _ in range(2):
            _, body = http_generate(server, {"text_input": TWO_SAMPLES, "max_tokens": 50, "seed": seed})
            assert (body["output_token_count"], body["finish_reason"]) == (want, "stop"), seed
        seen.add(want)
    assert seen == {6, 11}


def test_an_unknown_prompt_draws_its_length_from_the_table(server, table):
    drawn = table[0].answer_length([128000, *table[2](UNKNOWN)], seed=0)
    assert drawn in (5, 6, 11)
    for seed in (0, 1):
        _, body = http_generate(server, {"text_input": UNKNOWN, "max_tokens": 50, "seed": seed})
        assert (body["output_token_count"], body["finish_reason"]) == (drawn, "stop")


def test_a_chat_templated_prompt_ends_at_its_recorded_length(server):
    """As the load tests send a dataset prompt (loadtest.prompts: the template's ids in
    prompt_token_ids, the message in text_input), over HTTP and gRPC, on both entry points."""
    for model in ("ltr_bls", "ensemble"):
        status, body = http_generate(server, http_body(KNOWN, 50), model=model)
        assert status == 200, body
        assert (body["output_token_count"], body["finish_reason"]) == (5, "stop"), model
    for seed in range(3):
        _, body = http_generate(server, http_body(TWO_SAMPLES, 50, **{Entry.SEED: seed}))
        assert body["output_token_count"] == pick_sample((6, 11), seed)
    gen = generate(grpcclient.InferenceServerClient(server.grpc_url), KNOWN, 50, prompt_format="chat")
    assert (gen.error, gen.tokens) == (None, 5)
