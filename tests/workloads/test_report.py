"""The results tables and the target lines the docs cite."""

from __future__ import annotations

from workloads.report import markdown_table, target_lines


def test_targets_and_table() -> None:
    def row(policy: str, s_tok: float, lat: float, mwt: float, **kw: object) -> dict:
        return {"workload": "w", "rate": 64.0, "policy": policy, "mean_latency_per_token_s": s_tok,
                "mean_latency_s": lat, "max_waiting_time_s": mwt, "p99_max_waiting_time_s": mwt * 2, **kw}

    rows = [row("fcfs", 0.9, 150, 140), row("ltr_nosp", 0.3, 110, 100), row("oracle", 0.2, 100, 90),
            row("ltr", 0.33, 112, 105, starvation_threshold=200)]
    lines = "\n".join(target_lines(rows, "w", 64.0))
    assert "FCFS/LTR s/token = 3.00x" in lines and "LTR/oracle = 1.50x" in lines
    assert "keeps 95% of LTR's s/token gain" in lines
    table = markdown_table([{"rate": 1.0, "policy": "fcfs", "mean_latency_s": float("nan")}])
    assert "| fcfs |" in table and "| - |" in table
