"""One answer's life: pieces, finish reasons, token counts, and ending what is left early."""

from __future__ import annotations

import asyncio

import pytest

from openai_server.ensemble_client import EnsembleChunk, EnsembleError, EnsembleRequest
from openai_server.generation import Generation, openai_finish_reason
from tests.openai_server.fake_backend import FakeBackend, words


def request(max_tokens: int = 5, stop: tuple[str, ...] = ()) -> EnsembleRequest:
    return EnsembleRequest("r1", "prompt", [1, 2, 3], max_tokens, stop_words=stop)


async def collect(generation: Generation) -> list:
    pieces = []
    while (piece := await generation.next_piece()) is not None:
        pieces.append(piece)
    generation.close()
    return pieces


def test_finish_reason_reported_or_inferred():
    assert openai_finish_reason("stop", 5, 5) == "stop"  # the ensemble's word wins
    assert openai_finish_reason("length", 3, 5) == "length"
    assert openai_finish_reason("cancelled", 3, 5) == "abort"
    assert openai_finish_reason(None, 3, 5) == "stop"  # ended by itself before its cap
    assert openai_finish_reason(None, 5, 5) == "length"


def test_an_answer_that_runs_to_its_end_is_not_ended_again():
    backend = FakeBackend(script=words(5))
    generation = Generation(backend, request(max_tokens=5), prompt_tokens=3)
    pieces = asyncio.run(collect(generation))
    assert "".join(p.text for p in pieces) == " w" * 5
    assert pieces[-1].finish_reason == "length" and generation.completion_tokens == 5
    assert backend.ended == []


def test_a_stop_string_cuts_the_answer_and_ends_the_request():
    script = [EnsembleChunk(" one", 1, False), EnsembleChunk(" two.", 1, False), EnsembleChunk(" three", 1, False),
              EnsembleChunk("", 0, True)]
    backend = FakeBackend(script=script)
    generation = Generation(backend, request(max_tokens=50, stop=(".",)), prompt_tokens=3)
    pieces = asyncio.run(collect(generation))
    assert "".join(p.text for p in pieces) == " one two" and pieces[-1].finish_reason == "stop"
    assert backend.ended == ["r1"] and generation.completion_tokens == 2


def test_an_answer_left_before_its_end_is_ended_once():
    backend = FakeBackend(script=words(5))
    generation = Generation(backend, request(), prompt_tokens=3)
    assert asyncio.run(generation.next_piece()).text == " w"
    generation.close()
    generation.close()
    assert backend.ended == ["r1"] and generation.ended_early


def test_an_ensemble_error_ends_nothing_more():
    backend = FakeBackend(script=[EnsembleError("server overloaded: 3 requests already waiting")])
    generation = Generation(backend, request(), prompt_tokens=3)
    with pytest.raises(EnsembleError, match="overloaded"):
        asyncio.run(generation.next_piece())
    generation.close()
    assert backend.ended == []


def test_the_expected_length_comes_from_the_first_response_that_has_one():
    from openai_server.generation import EXPECTED_TOKENS_HEADER

    script = [EnsembleChunk(" one", 1, False), EnsembleChunk(" two", 1, False, expected_tokens=9),
              EnsembleChunk("", 0, True, expected_tokens=9)]
    generation = Generation(FakeBackend(script=script), request(), prompt_tokens=3)
    assert generation.headers() == {}
    asyncio.run(collect(generation))
    assert generation.expected_output_tokens == 9 and generation.headers() == {EXPECTED_TOKENS_HEADER: "9"}
