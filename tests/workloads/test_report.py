"""The results tables, the target lines and the goodput table the docs cite."""

from __future__ import annotations

from workloads.goodput import CHAT_SLO
from workloads.report import goodput_lines, markdown_table, target_lines


def test_targets_name_the_score_source_and_the_starvation_cost() -> None:
    def row(policy: str, s_tok: float, lat: float, mwt: float, **kw: object) -> dict:
        return {"workload": "w", "rate": 64.0, "policy": policy, "mean_latency_per_token_s": s_tok,
                "mean_latency_s": lat, "p90_latency_s": lat * 2, "max_waiting_time_s": mwt,
                "p99_max_waiting_time_s": mwt * 2, "score_source": "none", **kw}

    rows = [row("fcfs", 0.9, 150, 140), row("ltr_nosp", 0.3, 110, 100, score_source="cross_fitted"),
            row("oracle", 0.2, 100, 90, score_source="oracle"),
            row("ltr", 0.33, 112, 105, starvation_threshold=200, score_source="cross_fitted", kendall_tau=0.5),
            row("ltr_shipped", 0.45, 120, 110, score_source="held_out", kendall_tau=0.3)]
    lines = "\n".join(target_lines(rows, "w", 64.0))
    assert "ltr (cross_fitted, tau 0.50): FCFS/LTR s/token = 2.73x" in lines and "LTR/oracle s/token = 1.65x" in lines
    assert "ltr_shipped (held_out, tau 0.30): FCFS/LTR s/token = 2.00x" in lines
    assert "keeps 95% of the s/token gain without SP" in lines
    table = markdown_table([{"rate": 1.0, "policy": "fcfs", "mean_latency_s": float("nan")}])
    assert "| fcfs |" in table and "| - |" in table


def test_goodput_table() -> None:
    entries = [{"workload": "w", "policy": p, "score_source": s, "kendall_tau": t, "slo": CHAT_SLO.to_json(),
                "capacity_rps": 10.0, "goodput_rps": g, "goodput_load": g and g / 10, "below_sweep": g is None}
               for p, s, t, g in [("fcfs", "none", None, 9.0), ("ltr", "cross_fitted", 0.5, 11.0), ("oracle", "oracle", 1.0, None)]]
    text = "\n".join(goodput_lines(entries))
    assert "p90 TTFT <= 2 s" in text and "| w | ltr | cross_fitted | 0.50 | 10.00 | 11.00 | 1.100 |" in text
    assert "| w | oracle | oracle | 1.00 | 10.00 | below the sweep | - |" in text
