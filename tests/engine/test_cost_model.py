"""The cost model's figures and shape (first-principles numbers, see engine/cost_model.py)."""

from __future__ import annotations

import pytest

from engine.cost_model import H100_SXM, LLAMA3_8B, CostModel


def test_llama3_8b_kv_bytes_per_token_is_128_kib() -> None:
    assert LLAMA3_8B.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2 == 128 * 1024


def test_single_stream_decode_in_published_range() -> None:
    tok_s = 1.0 / CostModel().decode_step_s(1, 200)
    assert 70 <= tok_s <= 110  # vLLM / TensorRT-LLM single-stream figures on an A100-80GB


def test_prefill_throughput_order() -> None:
    per_token = CostModel().prefill_s(2000) / 2000
    assert 5_000 <= 1 / per_token <= 15_000


def test_monotone_in_batch_and_context() -> None:
    cm = CostModel()
    steps = [cm.decode_step_s(b, b * 500) for b in (1, 8, 32, 64, 128)]
    assert steps == sorted(steps)
    assert cm.decode_step_s(8, 1000) < cm.decode_step_s(8, 100_000)
    assert cm.prefill_s(100) < cm.prefill_s(1000) < cm.prefill_s(4000)
    # Batching amortises the weight reads: 64 tokens cost far less than 64 single steps.
    assert cm.decode_step_s(64, 64 * 500) < 2 * cm.decode_step_s(1, 500)


def test_fused_step_and_idle() -> None:
    cm = CostModel()
    assert cm.step_s(0, 0, 0) == 0.0
    assert cm.step_s([500], 10, 5000) >= cm.decode_step_s(10, 5000)
    assert cm.step_s([300, 200], 0, 0) <= cm.prefill_s(500)


def test_kv_budget_and_h100_override() -> None:
    cm = CostModel()
    budget = cm.kv_budget_tokens()
    expected = (80e9 - 16.06e9 - 3e9) * 0.9 / 131072
    assert budget == pytest.approx(expected, rel=1e-3)
    h100 = cm.with_overrides(gpu="h100_sxm")
    assert h100.gpu is H100_SXM
    assert h100.decode_step_s(1, 200) < cm.decode_step_s(1, 200)
