"""Workload generation (no data needed) and the data loaders (skipped without the data folder)."""

from __future__ import annotations

import numpy as np
import pytest

from repo_paths import data_dir
from workloads import traces as wl


def pool() -> wl.PromptPool:
    return wl.PromptPool("toy", ("a", "b", "c"), np.array([3, 4, 5]), np.array([10, 20, 30]))


def test_poisson_count_and_order() -> None:
    reqs = wl.text_workload(pool(), rate=20, duration_s=100, seed=1)
    assert abs(len(reqs) - 2000) < 4 * np.sqrt(2000)
    t = [r.arrival_s for r in reqs]
    assert t == sorted(t) and t[-1] < 100
    assert {r.output_tokens for r in reqs} == {10, 20, 30}
    assert abs(wl.trace_rate(reqs) - 20) < 2


def test_burst_and_bounds() -> None:
    reqs = wl.text_workload(pool(), None, burst=50)
    assert len(reqs) == 50 and all(r.arrival_s == 0 for r in reqs)
    assert len(wl.text_workload(pool(), 50, 10, max_requests=7)) == 7


def test_scale_trace_and_jsonl_roundtrip(tmp_path) -> None:  # noqa: ANN001
    reqs = [wl.TraceRequest(f"t{i}", float(i), 5, 7) for i in range(10)]
    fast = wl.scale_trace(reqs, speedup=2.0, duration_s=3.0)
    assert [r.arrival_s for r in fast] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    wl.save_jsonl(fast, tmp_path / "w.jsonl")
    assert wl.load_jsonl(tmp_path / "w.jsonl") == fast


def test_max_tokens_modes() -> None:
    reqs = wl.text_workload(pool(), None, burst=20)
    generic = wl.with_max_tokens(reqs)
    assert {r.max_tokens for r in generic} == {wl.GENERIC_MAX_TOKENS} == {4096}
    assert [r.answer_tokens for r in generic] == [r.output_tokens for r in reqs]
    assert all(r.max_tokens == r.output_tokens for r in wl.with_max_tokens(reqs, "true_length"))
    assert wl.TraceRequest("r", 0.0, 3, 900, max_tokens=100).answer_tokens == 100
    with pytest.raises(ValueError, match="generic"):
        wl.with_max_tokens(reqs, "oracle")  # type: ignore[arg-type]


def test_several_samples_per_prompt_are_picked_by_the_request_seed() -> None:
    sampled = wl.PromptPool("toy", ("a",), np.array([3]), np.array([10]), ((10, 500),))
    reqs = wl.text_workload(sampled, None, burst=40)
    assert [r.seed for r in reqs] == list(range(40))
    assert {r.output_tokens for r in reqs} == {10, 500}


def test_real_data_loaders() -> None:
    try:
        root = data_dir()
    except FileNotFoundError:
        pytest.skip("no data folder")
    p = wl.load_alpaca(root)
    assert len(p.prompts) == 805 and p.output_tokens.min() >= 1
    assert 300 < p.output_tokens.mean() < 550
    arena = wl.load_arena(root)
    assert len(arena.prompts) == 500 and sum(len(s) == 2 for s in arena.length_samples) > 450
    assert [s[0] for s in arena.length_samples] == arena.output_tokens.tolist()
    az = wl.load_trace("azure_code", root)
    assert len(az) > 8000 and az[0].arrival_s == 0.0
    mc = wl.load_trace("mooncake_synth", root)
    assert all(b.arrival_s >= a.arrival_s for a, b in zip(mc, mc[1:]))
