"""TensorRT-LLM's ensemble interface as its clients use it, on a real tritonserver with the stand-in in
`hf` mode (real log-probs): a request with every documented ensemble input, over HTTP and gRPC, to
`ensemble` and `ltr_bls` alike, answered with every ensemble output; the older names (`random_seed`,
`min_length`) honoured over both protocols; what the engine cannot do refused with a 400."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.grpc_stream import stream_infer, tensor
from runtime.contracts import Entry
from tests.server.helpers import http_generate, http_generate_stream, start_server

ENTRIES = ("ensemble", "ltr_bls")

# TensorRT-LLM's ensemble request with every input of its config (inflight_batcher_llm/ensemble) that
# a decoder-only model without LoRA, prompt tables or guided decoding takes, at ordinary values.
DOCUMENTED = {
    "text_input": "What is machine learning?", "max_tokens": 12, "bad_words": [""], "stop_words": [""],
    "exclude_input_in_output": True, "end_id": 128009, "pad_id": 128004, "top_k": 4, "top_p": 0.9,
    "temperature": 0.8, "length_penalty": 1.0, "repetition_penalty": 1.1, "min_tokens": 3,
    "presence_penalty": 0.2, "frequency_penalty": 0.1, "seed": 5, "return_log_probs": True,
    "return_context_logits": False, "return_generation_logits": False, "beam_width": 1,
    "num_return_sequences": 1, "stream": False, "embedding_bias_words": ["learning"],
    "embedding_bias_weights": [1.5],
}
GRPC_TYPES = {bool: np.bool_, int: np.int32, float: np.float32, str: np.object_}
UINT64 = {"seed", "random_seed"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("trtllm_interface"), {"tensorrt_llm": {"mode": "hf"}})
    yield srv
    srv.stop()


def grpc_inputs(body: dict) -> list:
    inputs = []
    for name, value in body.items():
        values = value if isinstance(value, list) else [value]
        dtype = np.uint64 if name in UINT64 else GRPC_TYPES[type(values[0])]
        array = np.array([[v.encode() if isinstance(v, str) else v for v in values]], dtype=dtype)
        inputs.append(tensor(name, array))
    return inputs


def grpc_responses(client, model: str, body: dict) -> list:
    results = list(stream_infer(client, model, grpc_inputs(body), timeout_s=120))
    errors = [r for r in results if isinstance(r, str)]
    assert not errors, errors
    return results


def check_log_probs(log_probs: list[float], cum: float, tokens: int) -> None:
    assert len(log_probs) == tokens and all(lp <= 0 for lp in log_probs)
    assert cum == pytest.approx(sum(log_probs), abs=1e-3)


@pytest.mark.parametrize("model", ENTRIES)
def test_the_documented_request_over_http_returns_every_output(server, model):
    status, body = http_generate(server, DOCUMENTED, model=model)
    assert status == 200, body
    assert set(Entry.OUTPUTS) <= set(body)
    assert 3 <= body["output_token_count"] <= 12  # min_tokens holds back the end
    check_log_probs(body["output_log_probs"], body["cum_log_probs"], body["output_token_count"])
    assert body["batch_index"] == 0 and body["sequence_index"] == 0
    assert body["context_logits"] == [] and body["generation_logits"] == []


@pytest.mark.parametrize("model", ENTRIES)
def test_the_documented_request_over_grpc_streams_every_output(server, grpc, model):
    results = grpc_responses(grpc, model, {**DOCUMENTED, "stream": True})
    counts = [int(r.as_numpy("output_token_count").reshape(-1)[0]) for r in results]
    log_probs = [float(v) for r in results for v in r.as_numpy("output_log_probs").reshape(-1)]
    cum = [r.as_numpy("cum_log_probs").reshape(-1) for r in results]
    assert all(r.as_numpy(name) is not None for r in results for name in Entry.OUTPUTS)
    check_log_probs(log_probs, float(cum[-1][0]), sum(counts))  # the final response: the whole answer's


@pytest.mark.parametrize("model", ENTRIES)
def test_random_seed_works_over_http_and_grpc(server, grpc, model):
    """TensorRT-LLM <= 0.14's name for the seed: over HTTP it was dropped silently, over gRPC refused."""
    sampled = {"text_input": "Tell me a story.", "max_tokens": 8, "temperature": 1.0, "top_k": 50}

    def http_text(**extra) -> str:
        status, body = http_generate(server, {**sampled, **extra}, model=model)
        assert status == 200, body
        return body["text_output"]

    assert http_text(random_seed=11) == http_text(random_seed=11) == http_text(seed=11)
    assert http_text(random_seed=11) != http_text(random_seed=12)
    grpc_text = "".join(r.as_numpy("text_output").reshape(-1)[0].decode()
                        for r in grpc_responses(grpc, model, {**sampled, "random_seed": 11, "stream": True}))
    assert grpc_text == http_text(random_seed=11)
    status, body = http_generate(server, {**sampled, "min_length": 8}, model=model)
    assert status == 200 and body["output_token_count"] == 8, body


@pytest.mark.parametrize("model", ENTRIES)
@pytest.mark.parametrize("extra, message", [
    ({"beam_width": 2}, "beam_width 2 is not supported"),
    ({"num_return_sequences": 2}, "num_return_sequences must be 1"),
    ({"return_generation_logits": True}, "return_generation_logits is not supported"),
    ({"embedding_bias_words": ["a"], "embedding_bias_weights": [1.0, 2.0]}, "embedding_bias_weights 2 weights"),
])
def test_what_the_engine_cannot_do_is_a_400_naming_it(server, model, extra, message):
    status, body = http_generate(server, {"text_input": "Hi", "max_tokens": 4, **extra}, model=model)
    assert status == 400 and message in body["error"], body


def test_a_non_streaming_answer_starts_with_the_prompt_when_asked(server):
    body = {"text_input": "Hello there", "max_tokens": 4}
    for model in ENTRIES:
        status, kept = http_generate(server, {**body, "exclude_input_in_output": False}, model=model)
        assert status == 200 and kept["text_output"].startswith("Hello there"), kept
        status, events = http_generate_stream(server, {**body, "exclude_input_in_output": False, "stream": True},
                                              model=model)
        assert status == 200 and not "".join(e["text_output"] for e in events).startswith("Hello there")
