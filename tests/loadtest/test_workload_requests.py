"""Every client's request for one workload request: dataset prompts chat-templated (or raw when
asked), text-less traces raw, the oracle's true length only where the replay sends it."""

from __future__ import annotations

import numpy as np

from loadtest.prompts import prompt_inputs
from loadtest.workload_requests import grpc_inputs, http_stream_body, openai_chat_body, synthetic_prompt
from runtime.contracts import Entry
from workloads.traces import TraceRequest

TEXT = TraceRequest("r0", 0.0, 9, 120, prompt="Name three rivers.", item=3, max_tokens=4096, seed=7)
TRACE = TraceRequest("t0", 0.0, 50, 80, max_tokens=80, seed=1)


def by_name(inputs: list) -> dict[str, np.ndarray]:
    """The tensors tritonclient would send, by name (read back from the InferInputs)."""
    out = {}
    for i in inputs:
        raw = i._get_content()  # noqa: SLF001  (tritonclient keeps the serialized tensor here)
        out[i.name()] = (i.datatype(), i.shape(), raw)
    return out


def test_synthetic_prompt_length() -> None:
    assert synthetic_prompt(50).count(" the") == 47


def test_grpc_inputs_carry_the_templated_prompt_and_the_message() -> None:
    sent = by_name(grpc_inputs(TEXT))
    ids = prompt_inputs(TEXT.prompt)[Entry.PROMPT_TOKEN_IDS]
    dtype, shape, raw = sent[Entry.PROMPT_TOKEN_IDS]
    assert (dtype, shape) == ("INT32", [1, len(ids)])
    assert np.frombuffer(raw, dtype="<i4").tolist() == ids
    assert TEXT.prompt.encode() in sent[Entry.TEXT_INPUT][2]
    assert Entry.EXPECTED_OUTPUT_LEN not in sent  # only the replay's oracle runs send it
    assert np.frombuffer(sent[Entry.SEED][2], dtype="<u8").tolist() == [7]


def test_grpc_inputs_raw_and_for_the_oracle() -> None:
    assert Entry.PROMPT_TOKEN_IDS not in by_name(grpc_inputs(TEXT, "raw"))
    oracle = by_name(grpc_inputs(TEXT, oracle=True))
    assert np.frombuffer(oracle[Entry.EXPECTED_OUTPUT_LEN][2], dtype="<i4").tolist() == [TEXT.output_tokens]
    assert Entry.PROMPT_TOKEN_IDS in oracle


def test_text_less_traces_send_their_synthetic_prompt_raw() -> None:
    sent = by_name(grpc_inputs(TRACE, "chat"))
    assert Entry.PROMPT_TOKEN_IDS not in sent
    assert synthetic_prompt(TRACE.prompt_tokens).encode() in sent[Entry.TEXT_INPUT][2]
    assert Entry.PROMPT_TOKEN_IDS not in http_stream_body(TRACE, "chat")


def test_http_stream_body_is_the_templated_request() -> None:
    body = http_stream_body(TEXT)
    assert body == {**prompt_inputs(TEXT.prompt), Entry.MAX_TOKENS: 4096, Entry.SEED: 7, Entry.STREAM: True}
    assert http_stream_body(TEXT, "raw") == {Entry.TEXT_INPUT: TEXT.prompt, Entry.MAX_TOKENS: 4096, Entry.SEED: 7,
                                             Entry.STREAM: True}


def test_openai_chat_body_is_one_user_message() -> None:
    body = openai_chat_body(TEXT, "llama-3-8b-instruct")
    assert body["messages"] == [{"role": "user", "content": TEXT.prompt}]
    assert (body["max_tokens"], body["seed"], body["stream"]) == (4096, 7, True)
