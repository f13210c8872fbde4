"""Token sources of the stand-in: the cyclic source behind `timing_tokens: multilingual`."""

from __future__ import annotations

import pytest

from engine.request import EngineRequest
from engine.settings import EngineSettings
from engine.tokens import CyclicTokenSource, WordTokenSource
from engine.vocab import MULTILINGUAL_IDS


def request(generated: int) -> EngineRequest:
    req = EngineRequest(request_id=f"r{generated}", prompt_len=2, max_tokens=100, prompt_ids=[1, 2])
    req.generated = generated
    return req


def test_cyclic_source_emits_its_ids_by_position_and_wraps() -> None:
    source = CyclicTokenSource([7, 8, 9])
    assert source.next_tokens([request(0), request(1), request(2), request(3), request(7)]) == [7, 8, 9, 7, 8]
    assert CyclicTokenSource().next_tokens([request(len(MULTILINGUAL_IDS) + 1)]) == [MULTILINGUAL_IDS[1]]
    with pytest.raises(ValueError):
        CyclicTokenSource([])


def test_timing_tokens_parameter_picks_the_source() -> None:
    params = {"mode": "timing"}
    assert isinstance(EngineSettings.from_parameters(params, environ={}).token_source(), WordTokenSource)
    multilingual = EngineSettings.from_parameters({**params, "timing_tokens": "multilingual"}, environ={})
    assert isinstance(multilingual.token_source(), CyclicTokenSource)
    with pytest.raises(ValueError, match="timing_tokens"):
        EngineSettings.from_parameters({**params, "timing_tokens": "klingon"}, environ={})


def test_min_tokens_holds_back_the_natural_end():
    from engine.tokens import ConstantTokenSource, EndAtAnswerLength

    source = EndAtAnswerLength(ConstantTokenSource(5))
    req = EngineRequest("r", prompt_len=1, max_tokens=10, answer_len=2, end_id=9, min_tokens=4)
    req.generated = 2
    assert source.next_tokens([req]) == [5]  # the answer would end here, but min_tokens is 4
    req.generated = 4
    assert source.next_tokens([req]) == [9]
