"""Tables and plots of benchmark rows (simulated or served): markdown and PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

COLUMNS = [
    ("rate", "rate (req/s)", "{}"),
    ("policy", "policy", "{}"),
    ("n_requests", "n", "{}"),
    ("mean_latency_s", "mean lat (s)", "{:.2f}"),
    ("p90_latency_s", "p90 lat (s)", "{:.2f}"),
    ("mean_latency_per_token_s", "s/token", "{:.4f}"),
    ("mean_ttft_s", "TTFT (s)", "{:.2f}"),
    ("mean_tpot_s", "TPOT (s)", "{:.4f}"),
    ("max_waiting_time_s", "max wait (s)", "{:.2f}"),
    ("p99_max_waiting_time_s", "p99 max wait (s)", "{:.2f}"),
    ("throughput_tok_s", "tok/s", "{:.0f}"),
]


def _fmt(fmt: str, v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not np.isfinite(v):
        return "-"
    return fmt.format(v)


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]] = COLUMNS) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(f, r.get(k)) for k, _, f in columns) + " |")
    return "\n".join(lines)


def find(rows: Sequence[dict], workload: str, rate: object, policy: str) -> dict | None:
    for r in rows:
        if r["workload"] == workload and r["rate"] == rate and r["policy"] == policy:
            return r
    return None


def target_lines(rows: Sequence[dict], workload: str, rate: object) -> list[str]:
    """The issue's targets, checked on one workload and rate.

    LTR's ranking is judged without starvation prevention (`ltr_nosp`); each starvation-prevention
    variant (`ltr` = served defaults, `ltr_sp<T>`, `ltr_sp_paper`) is judged by its mean
    max_waiting_time against FCFS and by the share of `ltr_nosp`'s s/token gain it keeps.
    """
    f, o, n = (find(rows, workload, rate, p) for p in ("fcfs", "oracle", "ltr_nosp"))
    if not (f and o and n):
        return []
    k = "mean_latency_per_token_s"
    out = [
        f"- **{workload} @ {rate}**: FCFS/LTR s/token = {f[k] / n[k]:.2f}x (target >= 3x); "
        f"LTR/oracle = {n[k] / o[k]:.2f}x (target <= 1.3x); mean latency FCFS/LTR = "
        f"{f['mean_latency_s'] / n['mean_latency_s']:.2f}x, FCFS/oracle = {f['mean_latency_s'] / o['mean_latency_s']:.2f}x"
    ]
    for r in rows:
        if r["workload"] == workload and r["rate"] == rate and r["policy"].startswith("ltr_tau"):
            out.append(f"  - {r['policy']} (noisy oracle, tau {r['kendall_tau']:.2f}): FCFS/LTR s/token = "
                       f"{f[k] / r[k]:.2f}x, LTR/oracle = {r[k] / o[k]:.2f}x, mean latency FCFS/LTR = "
                       f"{f['mean_latency_s'] / r['mean_latency_s']:.2f}x")
    gain = f[k] - n[k]
    for r in rows:
        if r["workload"] != workload or r["rate"] != rate:
            continue
        if not (r["policy"] == "ltr" or r["policy"].startswith("ltr_sp")):
            continue
        kept = (f[k] - r[k]) / gain if gain > 0 else float("nan")
        out.append(
            f"  - {r['policy']} (threshold {r.get('starvation_threshold')}"
            f"{', preemptive' if r.get('starvation_demote') else ''}): mean max_waiting_time "
            f"{r['max_waiting_time_s'] / f['max_waiting_time_s']:.2f}x FCFS's (target <= 1.5x; no SP: "
            f"{n['max_waiting_time_s'] / f['max_waiting_time_s']:.2f}x), p99 {r['p99_max_waiting_time_s']:.1f}s "
            f"(no SP {n['p99_max_waiting_time_s']:.1f}s, FCFS {f['p99_max_waiting_time_s']:.1f}s); keeps "
            f"{kept:.0%} of LTR's s/token gain (target >= 90%)"
        )
    return out


def write_markdown(rows: Sequence[dict], path: Path, title: str, preamble: str = "") -> None:
    parts = [f"# {title}", ""]
    if preamble:
        parts += [preamble, ""]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    targets: list[str] = []
    for w in workloads:
        rates = list(dict.fromkeys(r["rate"] for r in rows if r["workload"] == w))
        numeric = [x for x in rates if isinstance(x, (int, float))]
        for rate in ([max(numeric)] if numeric else []) + [x for x in rates if not isinstance(x, (int, float))]:
            targets += target_lines(rows, w, rate)
    if targets:
        parts += ["## Targets", ""] + targets + [""]
    for w in workloads:
        sub = [r for r in rows if r["workload"] == w]
        src = {r["policy"]: r.get("score_source") for r in sub}
        taus = {r["policy"]: r.get("kendall_tau") for r in sub if r.get("kendall_tau") is not None}
        parts += [f"## {w}", ""]
        notes = [f"{p}: {s}" + (f" (tau {taus[p]:.2f})" if p in taus else "") for p, s in src.items() if s not in (None, "none")]
        if notes:
            parts += ["Scores: " + "; ".join(notes) + ".", ""]
        parts += [markdown_table(sub), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))


def plot_rates(rows: Sequence[dict], workload: str, path: Path) -> None:
    """Mean latency and mean per-token latency against arrival rate, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = [r for r in rows if r["workload"] == workload and isinstance(r["rate"], (int, float))]
    policies = list(dict.fromkeys(r["policy"] for r in sub))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in zip(
        axes,
        ("mean_latency_per_token_s", "mean_latency_s", "max_waiting_time_s"),
        ("mean latency per token (s/token)", "mean latency (s)", "mean max(TTFT, max TPOT) (s)"),
    ):
        for p in policies:
            pts = sorted((r["rate"], r[key]) for r in sub if r["policy"] == p)
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=p)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("arrival rate (req/s)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{workload}: simulated Llama-3-8B on one A100-80GB, continuous batching")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cdf(rows: Sequence[dict], workload: str, rate: object, path: Path, title: str = "") -> None:
    """Latency CDFs per policy at one rate (rows must still carry `_latency`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = [r for r in rows if r["workload"] == workload and r["rate"] == rate and "_latency" in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in sub:
        for ax, key in zip(axes, ("_latency", "_latency_per_token")):
            x = np.sort(r[key])
            ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=r["policy"])
    axes[0].set_xlabel("latency (s)")
    axes[1].set_xlabel("latency per output token (s/token)")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("fraction of requests")
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle(title or f"{workload} @ {rate} req/s: latency CDF")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
