"""The never-worse sweep's pieces: trace blocks, the gain kept, and the summary entries."""

from __future__ import annotations

from simulator.never_worse import NeverWorseSpec, gain_kept, summary_entries, trace_block
from workloads.traces import TraceRequest


def test_trace_block_takes_consecutive_requests_scaled_to_the_duration():
    full = [TraceRequest(f"t{i}", float(i) * 2.0, 5, 5) for i in range(100)]
    first = trace_block(full, rate=0.2, duration_s=100.0, seed=0)
    last = trace_block(full, rate=0.2, duration_s=100.0, seed=2)
    assert [r.request_id for r in first] == [f"t{i}" for i in range(20)]
    assert [r.request_id for r in last] == [f"t{i}" for i in range(80, 100)]
    assert first[0].arrival_s == 0.0 and abs(len(first) / 100.0 - 0.2) < 1e-9
    assert max(r.arrival_s for r in first) < 100.0


def row(policy: str, load: float, seed: int, **metrics: float) -> dict:
    base = {m: 1.0 for m in ("mean_latency_per_token_s", "mean_latency_s", "p90_latency_s", "p99_latency_s",
                             "p90_ttft_s")}
    base.update(metrics)
    return {"entry": "run", "workload": "w", "policy": policy, "load": load, "seed": seed, "score_source": "x",
            "kendall_tau": 0.5, "slo_attainment": 0.95 if load <= 1.0 else 0.5, **base}


def test_gain_kept_pools_loads_per_seed_and_takes_the_worst_seed():
    fcfs = {(0.8, 0): row("fcfs", 0.8, 0, mean_latency_per_token_s=1.0),
            (1.0, 0): row("fcfs", 1.0, 0, mean_latency_per_token_s=3.0)}
    ltr = {k: row("ltr", *k, mean_latency_per_token_s=0.5 * v["mean_latency_per_token_s"]) for k, v in fcfs.items()}
    pol = {(0.8, 0): row("guarded", 0.8, 0, mean_latency_per_token_s=1.0),
           (1.0, 0): row("guarded", 1.0, 0, mean_latency_per_token_s=2.0)}
    kept, by_load = gain_kept(fcfs, ltr, pol, sorted(fcfs))
    assert kept == (0.0 + 1.0) / (0.5 + 1.5)
    assert by_load == {"0.8": 0.0, "1": 1.0 / 1.5}


def test_summary_has_the_never_worse_and_goodput_entries():
    rows = []
    for seed in (0, 1):
        for load in (0.5, 1.0, 1.2):
            rows += [row("fcfs", load, seed, p99_latency_s=10.0, mean_latency_per_token_s=2.0),
                     row("ltr", load, seed, p99_latency_s=20.0, mean_latency_per_token_s=1.0),
                     row("guarded", load, seed, p99_latency_s=10.5 if seed else 10.0, mean_latency_per_token_s=1.2)]
    spec = NeverWorseSpec(seeds=(0, 1), policies=("fcfs", "ltr", "guarded"))
    out = summary_entries(rows, spec, {"w": 10.0})
    nw = next(e for e in out if e["entry"] == "never_worse")
    assert nw["min_ratio"]["p99_latency_s"] == 10.0 / 10.5  # the worst seed
    assert nw["min_ratio_overload"]["mean_latency_per_token_s"] == 2.0 / 1.2
    assert nw["gain_kept"] == 0.8 and nw["gain_kept_overload"] == 0.8
    goodput = {e["policy"]: e for e in out if e["entry"] == "goodput"}
    assert goodput["guarded"]["goodput_load"] == 1.0 and goodput["guarded"]["vs_fcfs"] == 1.0
