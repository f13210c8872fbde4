"""`hf` mode's logits processing: TensorRT-LLM's sampling inputs as the stand-in applies them."""

from __future__ import annotations

import pytest

from engine.hf_llama import FIRST_SPECIAL_ID, process_logits
from engine.request import EngineRequest

torch = pytest.importorskip("torch")
VOCAB = FIRST_SPECIAL_ID + 16
END = FIRST_SPECIAL_ID + 9


def request(**fields) -> EngineRequest:
    return EngineRequest("r", prompt_len=2, max_tokens=8, prompt_ids=[1, 2], end_id=END, **fields)


def logits() -> "torch.Tensor":
    values = torch.zeros(VOCAB)
    values[:6] = torch.tensor([1.0, 2.0, -2.0, 4.0, 3.0, 0.5])
    return values


def test_special_ids_are_masked_but_the_end_id():
    out = process_logits(torch, logits(), request())
    assert out[END] == 0.0 and torch.isinf(out[FIRST_SPECIAL_ID]) and out[3] == 4.0


def test_penalties_follow_openai_and_tensorrt_llm():
    req = request(repetition_penalty=2.0, presence_penalty=0.5, frequency_penalty=0.25)
    req.output_ids, req.generated = [3, 3, 2], 3
    out = process_logits(torch, logits(), req)
    assert out[1] == 1.0  # prompt token, positive logit: divided by the repetition penalty
    assert out[2] == -2.0 * 2.0 - 0.5 - 0.25  # negative logit multiplied; in the answer once
    assert out[3] == 4.0 / 2.0 - 0.5 - 2 * 0.25  # in the answer twice
    assert out[4] == 3.0  # never seen


def test_embedding_bias_and_min_tokens():
    bias = [0.0] * VOCAB
    bias[5] = 10.0
    req = request(embedding_bias=bias, min_tokens=2)
    out = process_logits(torch, logits(), req)
    assert out[5] == 10.5 and torch.isinf(out[END])  # no end before min_tokens
    req.generated = 2
    assert process_logits(torch, logits(), req)[END] == 0.0
