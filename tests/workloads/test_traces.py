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


def test_real_data_loaders() -> None:
    try:
        root = data_dir()
    except FileNotFoundError:
        pytest.skip("no data folder")
    p = wl.load_alpaca(root)
    assert len(p.prompts) == 805 and p.output_tokens.min() >= 1
    assert 300 < p.output_tokens.mean() < 550
    az = wl.load_trace("azure_code", root)
    assert len(az) > 8000 and az[0].arrival_s == 0.0
    mc = wl.load_trace("mooncake_synth", root)
    assert all(b.arrival_s >= a.arrival_s for a, b in zip(mc, mc[1:]))
