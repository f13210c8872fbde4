"""Request workloads shared by the simulator, the locust load tests and the served benchmark.

A workload is a list of `TraceRequest`s: arrival time, prompt (text workloads), token counts and
what the client sends. Sources:
* text: AlpacaEval prompts with Llama-3-8B-Instruct's own responses (`alpaca`), Arena-Hard
  (`arena`, two independent samples of the 8B's answers); a request's answer length is one of its
  prompt's recorded lengths, picked by the request's seed as the stand-in engine picks it
  (`engine.lengths.pick_sample`);
* production traces without text: Azure LLM inference traces (`azure_conv`, `azure_code`) and
  Mooncake (`mooncake_conv`, `mooncake_synth`), replayed at their own pace or time-scaled.
Arrivals for text workloads: a Poisson process at a rate for a duration, or a burst (all at t=0).

What a request sends as `max_tokens` (`MaxTokensMode`): `generic`, one cap for every request as
real clients send (`GENERIC_MAX_TOKENS`, the engine's output limit), so that no request carries its
answer length; or `true_length`, its own answer length, the usual serving benchmarks' shortcut
(kept for comparison and labelled so wherever it appears).

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
from typing import Literal, Sequence

import numpy as np

from deploy.repository import source_parameters
from engine.lengths import pick_sample
from predictor.paths import TARGET_GENERATOR
from repo_paths import BUILD_DIR

CACHE_DIR = BUILD_DIR / "cache"
TEXT_WORKLOADS = ("alpaca", "arena")
TRACE_WORKLOADS = ("azure_conv", "azure_code", "mooncake_conv", "mooncake_synth")
MaxTokensMode = Literal["generic", "true_length"]
MAX_TOKENS_MODES: tuple[str, ...] = ("generic", "true_length")
# The engine's output limit (the stand-in's max_output_len, the engine build's on GPU): the cap a
# client sends when it does not know how long the answer will be.
GENERIC_MAX_TOKENS = int(source_parameters("tensorrt_llm")["max_output_len"])


@dataclass(frozen=True)
class TraceRequest:
    """One request of a workload. `output_tokens` is the answer's natural length (where the model
    ends it); `max_tokens` what the client sends as its cap (0: not set yet, see `with_max_tokens`);
    `seed` the sampling seed it sends. `prompt` is None for text-less traces; `item` indexes the
    pool of distinct prompts (for cached predictor scores)."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prompt: str | None = None
    item: int = -1
    max_tokens: int = 0
    seed: int = 0

    @property
    def answer_tokens(self) -> int:
        """Tokens the client will receive: the natural length, cut by the cap."""
        return min(self.output_tokens, self.max_tokens) if self.max_tokens else self.output_tokens


def with_max_tokens(reqs: Sequence[TraceRequest], mode: MaxTokensMode = "generic") -> list[TraceRequest]:
    """The workload as clients send it: one generic cap, or (labelled `true_length`) each answer's length."""
    if mode not in MAX_TOKENS_MODES:
        raise ValueError(f"max_tokens mode must be one of {MAX_TOKENS_MODES}, got {mode!r}")
    if mode == "generic":
        return [replace(r, max_tokens=GENERIC_MAX_TOKENS) for r in reqs]
    return [replace(r, max_tokens=r.output_tokens) for r in reqs]


@dataclass(frozen=True)
class PromptPool:
    """Distinct prompts of a text workload with the target model's answer lengths: `output_tokens`
    one answer per prompt (the first sample), `length_samples` every recorded one."""

    name: str
    prompts: tuple[str, ...]
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    length_samples: tuple[tuple[int, ...], ...] = ()

    def samples(self, item: int) -> tuple[int, ...]:
        return self.length_samples[item] if self.length_samples else (int(self.output_tokens[item]),)


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


# Arena-Hard answer files of the serving target: two independent samples of the same 8B model.
ARENA_SAMPLES = ("llama-3-8b-instruct", "llama-3-8b-instruct_sample2")


def _arena_answers(path: Path) -> dict[str, str]:
    answers = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            a = json.loads(line)
            answers[a["uid"]] = a["messages"][-1]["content"]["answer"]
    return answers


def load_arena(root: Path, answers: Sequence[str] = ARENA_SAMPLES) -> PromptPool:
    """Arena-Hard v0.1's 500 prompts with every available sample of Llama-3-8B-Instruct's answers
    (the first file's are `output_tokens`); a prompt counts when the first file answers it."""
    folder = root / "arena_hard_v0.1"
    qpath = folder / "v0.1_question.jsonl"
    apaths = [folder / f"v0.1_{a}.jsonl" for a in answers]
    apaths = [apaths[0]] + [p for p in apaths[1:] if p.is_file()]
    questions = [json.loads(line) for line in qpath.read_text(encoding="utf-8").splitlines() if line.strip()]
    files = [_arena_answers(p) for p in apaths]
    kept = [q for q in questions if q["uid"] in files[0]]
    prompts = tuple(q["prompt"] for q in kept)
    counts = []
    for i, (path, by_uid) in enumerate(zip(apaths, files)):
        texts = [by_uid.get(q["uid"], "") for q in kept]
        counts.append(np.maximum(_token_counts(texts, f"arena_out{i}_{_file_key(qpath, path)}"), 1))
    samples = tuple(
        tuple(int(c[j]) for c, by_uid in zip(counts, files) if kept[j]["uid"] in by_uid) for j in range(len(kept))
    )
    inp = _token_counts(list(prompts), f"arena_in_{_file_key(qpath)}")
    return PromptPool("arena", prompts, inp + 1, counts[0], samples)


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
    `duration_s`, or `burst` requests all at t=0 (rate None). Request i sends seed i, which picks
    its answer length among its prompt's samples; `max_tokens` is left to `with_max_tokens`."""
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
            output_tokens=pick_sample(pool.samples(int(k)), seed=i),
            prompt=pool.prompts[k],
            item=int(k),
            seed=i,
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
