"""Tables and plots of benchmark rows (simulated or served): markdown and PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

COLUMNS = [
    ("rate", "rate (req/s)", "{}"),
    ("load", "x capacity", "{:.2f}"),
    ("policy", "policy", "{}"),
    ("n_requests", "n", "{}"),
    ("mean_latency_s", "mean lat (s)", "{:.2f}"),
    ("p90_latency_s", "p90 lat (s)", "{:.2f}"),
    ("mean_latency_per_token_s", "s/token", "{:.4f}"),
    ("mean_ttft_s", "TTFT (s)", "{:.2f}"),
    ("p90_ttft_s", "p90 TTFT (s)", "{:.2f}"),
    ("p90_latency_per_token_s", "p90 s/token", "{:.4f}"),
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


def _ratio_line(label: str, f: dict, l: dict, o: dict | None) -> str:
    k = "mean_latency_per_token_s"
    tau = f", tau {l['kendall_tau']:.2f}" if l.get("kendall_tau") is not None else ""
    line = (f"{label} ({l['score_source']}{tau}): FCFS/LTR s/token = {f[k] / l[k]:.2f}x, mean latency = "
            f"{f['mean_latency_s'] / l['mean_latency_s']:.2f}x, p90 latency = {f['p90_latency_s'] / l['p90_latency_s']:.2f}x")
    if o:
        line += f"; LTR/oracle s/token = {l[k] / o[k]:.2f}x"
    return line


def target_lines(rows: Sequence[dict], workload: str, rate: object, where: str = "") -> list[str]:
    """FCFS over each LTR column at one workload and rate, and what starvation prevention costs.

    `ltr` is the served configuration (starvation prevention on); its scores' source is named on
    every line, so an in-sample or noisy-oracle figure cannot pass for one a user would get.
    """
    f, o = find(rows, workload, rate, "fcfs"), find(rows, workload, rate, "oracle")
    if not f:
        return []
    k = "mean_latency_per_token_s"
    out = [f"- **{workload} @ {rate}{where}**:"]
    for policy in ("ltr", "ltr_shipped"):
        r = find(rows, workload, rate, policy)
        if r:
            out.append("  - " + _ratio_line(policy, f, r, o))
    n = find(rows, workload, rate, "ltr_nosp")
    gain = f[k] - n[k] if n else 0.0
    for r in rows:
        if r["workload"] != workload or r["rate"] != rate or not (r["policy"] == "ltr" or r["policy"].startswith("ltr_sp")):
            continue
        if not n:
            continue
        kept = (f[k] - r[k]) / gain if gain > 0 else float("nan")
        out.append(
            f"  - {r['policy']} (starvation threshold {r.get('starvation_threshold')}"
            f"{', preemptive' if r.get('starvation_demote') else ''}): mean max_waiting_time "
            f"{r['max_waiting_time_s'] / f['max_waiting_time_s']:.2f}x FCFS's (no SP: "
            f"{n['max_waiting_time_s'] / f['max_waiting_time_s']:.2f}x), p99 {r['p99_max_waiting_time_s']:.1f}s "
            f"(no SP {n['p99_max_waiting_time_s']:.1f}s, FCFS {f['p99_max_waiting_time_s']:.1f}s); keeps "
            f"{kept:.0%} of the s/token gain without SP"
        )
    return out if len(out) > 1 else []


def goodput_lines(entries: Sequence[dict]) -> list[str]:
    """The goodput entries as a table: one row per workload and policy."""
    if not entries:
        return []
    slo = entries[0]["slo"]
    lines = [f"Goodput: the highest rate at which p90 TTFT <= {slo['p90_ttft_s']:g} s and p90 latency per token <= "
             f"{slo['p90_latency_per_token_s']:g} s hold, at it and at every lower rate of the capacity sweep (0.1x grid, then bisection to 0.0125x).", "",
             "| workload | policy | scores | tau | capacity (req/s) | goodput (req/s) | x capacity |", "|---|---|---|---|---|---|---|"]
    for e in entries:
        good = "below the sweep" if e["below_sweep"] else f"{e['goodput_rps']:.2f}"
        load = "-" if e["below_sweep"] else f"{e['goodput_load']:.3f}"
        tau = "-" if e.get("kendall_tau") is None else f"{e['kendall_tau']:.2f}"
        lines.append(f"| {e['workload']} | {e['policy']} | {e['score_source']} | {tau} | {e['capacity_rps']:.2f} | {good} | {load} |")
    return lines


def write_markdown(rows: Sequence[dict], path: Path, title: str, preamble: str = "") -> None:
    runs = [r for r in rows if r.get("entry", "run") == "run"]
    goodputs = [r for r in rows if r.get("entry") == "goodput"]
    parts = [f"# {title}", ""]
    if preamble:
        parts += [preamble, ""]
    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    targets: list[str] = []
    for w in workloads:
        sub = [r for r in runs if r["workload"] == w]
        paper = [r["rate"] for r in sub if r.get("sweep", "paper") in ("paper", "trace") and isinstance(r["rate"], (int, float))]
        if paper:
            targets += target_lines(runs, w, max(paper))
        near = [r for r in sub if r.get("sweep") == "capacity" and r.get("load") == 1.1]
        if near:
            targets += target_lines(runs, w, near[0]["rate"], " (1.1x capacity)")
        if any(r["rate"] == "burst" for r in sub):
            targets += target_lines(runs, w, "burst")
    if targets or goodputs:
        parts += ["## Targets", ""] + targets + [""] + goodput_lines(goodputs) + [""]
    for w in workloads:
        sub = [r for r in runs if r["workload"] == w]
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


def tradeoff_points(rows: Sequence[dict], workload: str, loads: Sequence[float], seed: int) -> list[tuple[str, float, float]]:
    """(policy, share of LTR's mean s/token gain kept, worst p99 latency ratio FCFS/policy) over
    `loads` at one arrival seed, for every policy and setting run there. The gain is pooled over
    the loads (a single load's gain can be about 0)."""
    def pick(policy: str) -> dict[float, dict]:
        return {r["load"]: r for r in rows if r.get("workload") == workload and r.get("policy") == policy
                and r.get("seed") == seed and r.get("load") in loads and r.get("entry") in ("run", "tradeoff")}

    fcfs, ltr = pick("fcfs"), pick("ltr")
    metric = "mean_latency_per_token_s"
    ltr_gain = sum(fcfs[x][metric] - ltr[x][metric] for x in loads if x in fcfs and x in ltr)
    out = []
    for policy in dict.fromkeys(r["policy"] for r in rows if r.get("workload") == workload):
        runs = pick(policy)
        if not runs or any(x not in runs or x not in fcfs for x in loads) or ltr_gain <= 0:
            continue
        gain = sum(fcfs[x][metric] - runs[x][metric] for x in loads) / ltr_gain
        out.append((policy, gain, min(fcfs[x]["p99_latency_s"] / runs[x]["p99_latency_s"] for x in loads)))
    return out


def plot_tradeoff(rows: Sequence[dict], workload: str, groups: dict[str, Sequence[float]], seed: int,
                  path: Path) -> None:
    """Mean s/token gain kept against the worst p99 latency ratio to FCFS, one point per policy and
    setting, one panel per group of loads (up to capacity, overload)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    for ax, (title, loads) in zip(axes[0], groups.items()):
        for policy, gain, ratio in tradeoff_points(rows, workload, loads, seed):
            ax.scatter([gain], [ratio], s=40)
            ax.annotate(policy, (gain, ratio), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.95 if max(loads) <= 1.0 else 0.9, color="red", lw=0.8, ls="--", label="goal (ratio)")
        ax.axvline(0.85 if max(loads) <= 1.0 else 0.75, color="red", lw=0.8, ls=":", label="goal (gain kept)")
        ax.set_xlabel("share of LTR's mean s/token gain over FCFS kept")
        ax.set_ylabel("worst p99 latency ratio FCFS / policy")
        ax.set_title(f"{title}: loads {', '.join(f'{x:g}x' for x in loads)}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{workload}: trade-off of mean gain against tail (seed {seed}, simulated)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
