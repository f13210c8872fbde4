"""Request workloads shared by the simulator, the locust load tests and the served benchmark.

A workload is a list of `TraceRequest`s: arrival time, prompt (text workloads) and token counts.
Sources:
* text: AlpacaEval prompts with Llama-3-8B-Instruct's own responses (`alpaca`), Arena-Hard
  (`arena`); `max_tokens` is the response's Llama-3 token count, as in the usual serving benchmarks;
* production traces without text: Azure LLM inference traces (`azure_conv`, `azure_code`) and
  Mooncake (`mooncake_conv`, `mooncake_synth`), replayed at their own pace or time-scaled.
Arrivals for text workloads: a Poisson process at a rate for a duration, or a burst (all at t=0).

Data come from `--data-dir`, else $LTR_DATA_DIR, else `<repo>/../shared/data` (never committed).
Token counts of text workloads are cached under `build/cache/` (keyed by file contents).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from predictor.paths import TARGET_GENERATOR
from repo_paths import BUILD_DIR

CACHE_DIR = BUILD_DIR / "cache"
TEXT_WORKLOADS = ("alpaca", "arena")
TRACE_WORKLOADS = ("azure_conv", "azure_code", "mooncake_conv", "mooncake_synth")


@dataclass(frozen=True)
class TraceRequest:
    """One request of a workload. `prompt` is None for text-less traces; `item` indexes the pool
    of distinct prompts (for cached predictor scores)."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prompt: str | None = None
    item: int = -1


@dataclass(frozen=True)
class PromptPool:
    """Distinct prompts of a text workload with their target lengths."""

    name: str
    prompts: tuple[str, ...]
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray


def _token_counts(texts: Sequence[str], cache_key: str) -> np.ndarray:
    """Llama-3 token counts of `texts`, cached on disk (tokenizing is the slow part of loading)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"ntok_{cache_key}.npy"
    if path.exists():
        counts = np.load(path)
        if len(counts) == len(texts):
            return counts
    from runtime.llama3_tokenizer import load_tokenizer

    tok = load_tokenizer()
    counts = np.array([len(tok.encode(t)) for t in texts], dtype=np.int64)
    np.save(path, counts)
    return counts


def _file_key(*paths: Path) -> str:
    h = hashlib.sha1()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def load_alpaca(root: Path, generator: str = TARGET_GENERATOR) -> PromptPool:
    """AlpacaEval's 805 instructions with `generator`'s responses (lengths in Llama-3 tokens)."""
    path = root / "alpaca_eval" / f"{generator}.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    prompts = tuple(r["instruction"] for r in rows)
    key = _file_key(path)
    out = _token_counts([r["output"] for r in rows], f"alpaca_out_{key}")
    inp = _token_counts(list(prompts), f"alpaca_in_{key}")
    return PromptPool("alpaca", prompts, inp + 1, np.maximum(out, 1))  # +1: BOS


def load_arena(root: Path, answers: str = "llama-3-8b-instruct") -> PromptPool:
    """Arena-Hard v0.1's 500 prompts with Llama-3-8B-Instruct's answers."""
    qpath = root / "arena_hard_v0.1" / "v0.1_question.jsonl"
    apath = root / "arena_hard_v0.1" / f"v0.1_{answers}.jsonl"
    questions = {}
    for line in qpath.read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            questions[q["uid"]] = q["prompt"]
    pairs = []
    for line in apath.read_text(encoding="utf-8").splitlines():
        if line.strip():
            a = json.loads(line)
            if a["uid"] in questions:
                pairs.append((questions[a["uid"]], a["messages"][-1]["content"]["answer"]))
    key = _file_key(qpath, apath)
    prompts = tuple(p for p, _ in pairs)
    out = _token_counts([ans for _, ans in pairs], f"arena_out_{key}")
    inp = _token_counts(list(prompts), f"arena_in_{key}")
    return PromptPool("arena", prompts, inp + 1, np.maximum(out, 1))


def load_pool(name: str, root: Path) -> PromptPool:
    if name == "alpaca":
        return load_alpaca(root)
    if name == "arena":
        return load_arena(root)
    raise ValueError(f"unknown text workload {name!r}; choose one of {TEXT_WORKLOADS}")


def poisson_arrivals(rate: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival times of a Poisson process of `rate` per second on [0, duration_s)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    n_max = int(rate * duration_s * 1.5 + 50)
    times = np.cumsum(rng.exponential(1.0 / rate, size=n_max))
    while times[-1] < duration_s:  # rare: extend
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, size=n_max))])
    return times[times < duration_s]


def text_workload(
    pool: PromptPool,
    rate: float | None,
    duration_s: float = 60.0,
    burst: int | None = None,
    seed: int = 0,
    max_requests: int | None = None,
) -> list[TraceRequest]:
    """Prompts drawn uniformly (with replacement) from `pool`, arriving as Poisson(rate) over
    `duration_s`, or `burst` requests all at t=0 (rate None)."""
    rng = np.random.default_rng(seed)
    if burst is not None:
        times = np.zeros(burst)
    elif rate is not None:
        times = poisson_arrivals(rate, duration_s, rng)
    else:
        raise ValueError("give a rate or a burst size")
    if max_requests is not None:
        times = times[:max_requests]
    items = rng.integers(0, len(pool.prompts), size=len(times))
    return [
        TraceRequest(
            request_id=f"{pool.name}-{i}",
            arrival_s=float(t),
            prompt_tokens=int(pool.prompt_tokens[k]),
            output_tokens=int(pool.output_tokens[k]),
            prompt=pool.prompts[k],
            item=int(k),
        )
        for i, (t, k) in enumerate(zip(times, items))
    ]


def _parse_azure_time(s: str) -> float:
    date, _, frac = s.strip().partition(".")
    base = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def load_trace(name: str, root: Path) -> list[TraceRequest]:
    """A production trace at its own pace (first arrival at t=0)."""
    rows: list[tuple[float, int, int]] = []
    if name in ("azure_conv", "azure_code"):
        path = root / "traces" / f"AzureLLMInferenceTrace_{name.split('_')[1]}.csv"
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                rows.append((_parse_azure_time(r["TIMESTAMP"]), int(r["ContextTokens"]), int(r["GeneratedTokens"])))
    elif name in ("mooncake_conv", "mooncake_synth"):
        kind = "conversation" if name == "mooncake_conv" else "synthetic"
        path = root / "traces" / f"mooncake_{kind}_trace.jsonl"
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows.append((r["timestamp"] / 1000.0, int(r["input_length"]), int(r["output_length"])))
    else:
        raise ValueError(f"unknown trace {name!r}; choose one of {TRACE_WORKLOADS}")
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    return [
        TraceRequest(f"{name}-{i}", t - t0, max(p, 1), max(o, 1))
        for i, (t, p, o) in enumerate(rows)
    ]


def scale_trace(
    reqs: Sequence[TraceRequest],
    speedup: float = 1.0,
    duration_s: float | None = None,
    max_requests: int | None = None,
) -> list[TraceRequest]:
    """Replay a trace `speedup` times faster, keeping the first `duration_s` seconds (after
    scaling) and at most `max_requests` requests."""
    out = []
    for r in reqs:
        t = r.arrival_s / speedup
        if duration_s is not None and t >= duration_s:
            break
        out.append(replace(r, arrival_s=t))
        if max_requests is not None and len(out) >= max_requests:
            break
    return out


def trace_rate(reqs: Sequence[TraceRequest]) -> float:
    """Mean arrival rate (requests/s) of a workload; inf for a burst."""
    if len(reqs) < 2:
        return 0.0
    span = reqs[-1].arrival_s - reqs[0].arrival_s
    return float("inf") if span <= 0 else (len(reqs) - 1) / span


def save_jsonl(reqs: Sequence[TraceRequest], path: Path) -> None:
    """Write a workload so that another instrument replays exactly the same requests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in reqs:
            f.write(json.dumps(r.__dict__) + "\n")


def load_jsonl(path: Path) -> list[TraceRequest]:
    return [TraceRequest(**json.loads(line)) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
