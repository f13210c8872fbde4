"""The gRPC inputs every tritonclient caller builds: raw by default (the plain TensorRT-LLM
interface), chat-templated when asked (what load tests and benchmarks send), bytes always raw."""

from __future__ import annotations

import numpy as np

from loadtest.grpc_stream import ensemble_inputs
from loadtest.prompts import prompt_inputs
from runtime.contracts import Entry


def names(inputs: list) -> list[str]:
    return [i.name() for i in inputs]


def test_chat_adds_the_templated_ids_beside_the_text() -> None:
    inputs = ensemble_inputs("Name three rivers.", 32, prompt_format="chat", seed=3)
    assert names(inputs) == [Entry.TEXT_INPUT, Entry.MAX_TOKENS, Entry.STREAM, Entry.PROMPT_TOKEN_IDS, Entry.SEED]
    ids = inputs[3]
    assert ids.datatype() == "INT32"
    assert np.frombuffer(ids._get_content(), "<i4").tolist() == prompt_inputs("Name three rivers.")[Entry.PROMPT_TOKEN_IDS]  # noqa: SLF001


def test_raw_is_the_default_and_bytes_are_never_templated() -> None:
    assert Entry.PROMPT_TOKEN_IDS not in names(ensemble_inputs("Name three rivers.", 32))
    assert Entry.PROMPT_TOKEN_IDS not in names(ensemble_inputs(b"\xff\xfe", 32, prompt_format="chat"))
