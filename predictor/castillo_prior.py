"""A prior from other models: how long do instruction models typically answer this prompt?

Why: another model's answer length ranks the 8B's far better (tau 0.65-0.78) than any text-only
predictor trained on 805 AlpacaEval prompts does on unseen traffic (0.20-0.33). CASTILLO
(`castillo/all_models_length_samples.jsonl`) gives 7,268 chat and code prompts answered by up to
13 instruction models, 10 samples each. Counts are in each model's own tokenizer, so the target
is built by rank: per model, the percentile of a prompt's median length among the prompts that
model answered; the target is the mean percentile over the models that answered it. A light head
(ridge on the frozen encoder's mean-pooled embedding, or the mean target of the nearest CASTILLO
prompts) then learns it from text.

Whole data sets are held out (`HELD_OUT_SETS`: Dolly, chat; MBPP, code) so that a predictor
trained on the rest can be judged on traffic it never saw, against Llama-3.1-8B's median length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

ALL_MODELS_FILE = Path("castillo") / "all_models_length_samples.jsonl"
HELD_OUT_SETS: tuple[str, ...] = ("DollyDataset", "Mbpp")
JUDGE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # the truth on the held-out sets (closest to the target)


@dataclass
class PromptSet:
    """CASTILLO prompts with their data set and each model's median length (NaN: not answered)."""

    prompts: list[str]
    datasets: list[str]
    models: list[str]
    medians: np.ndarray  # (prompts, models)

    def subset(self, keep: np.ndarray) -> "PromptSet":
        idx = np.flatnonzero(keep)
        return PromptSet([self.prompts[i] for i in idx], [self.datasets[i] for i in idx], self.models, self.medians[idx])


def load_all_models(data_dir: Path) -> PromptSet:
    """Every distinct prompt of the file (first row wins), medians of 10 samples per model."""
    rows, seen = [], set()
    for line in (Path(data_dir) / ALL_MODELS_FILE).open(encoding="utf-8"):
        if line.strip():
            r = json.loads(line)
            if r["prompt"] not in seen:
                seen.add(r["prompt"])
                rows.append(r)
    models = sorted({m for r in rows for m in r["samples"]})
    med = np.full((len(rows), len(models)), np.nan)
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            if m in r["samples"] and r["samples"][m]:
                med[i, j] = float(np.median(r["samples"][m]))
    return PromptSet([r["prompt"] for r in rows], [r["dataset"] for r in rows], models, med)


def typical_length_target(medians: np.ndarray) -> np.ndarray:
    """Mean over models of the prompt's percentile (0-1) within that model's own lengths; models
    that did not answer a prompt are left out of its mean. Rank-based, so tokenizers do not mix."""
    pct = np.full(medians.shape, np.nan)
    for j in range(medians.shape[1]):
        have = np.flatnonzero(~np.isnan(medians[:, j]))
        if len(have) > 1:
            ranks = medians[have, j].argsort(kind="stable").argsort(kind="stable")
            pct[have, j] = ranks / (len(have) - 1)
    return np.nanmean(pct, axis=1)


def split_by_dataset(ps: PromptSet, held_out: Sequence[str] = HELD_OUT_SETS) -> tuple[PromptSet, PromptSet]:
    """(training prompts, held-out prompts): whole data sets, never one prompt in both."""
    hold = np.array([d in held_out for d in ps.datasets])
    return ps.subset(~hold), ps.subset(hold)


def held_out_labels(ps: PromptSet, held_out: Sequence[str] = HELD_OUT_SETS) -> dict[str, tuple[list[str], np.ndarray]]:
    """Per held-out data set: its prompts that `JUDGE_MODEL` answered, and that model's median length."""
    j = ps.models.index(JUDGE_MODEL)
    out = {}
    for name in held_out:
        keep = [i for i, d in enumerate(ps.datasets) if d == name and not np.isnan(ps.medians[i, j])]
        out[name] = ([ps.prompts[i] for i in keep], ps.medians[keep, j])
    return out


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Weights and bias of ridge regression (centred; the bias is not penalised)."""
    mu, ym = x.mean(0), float(y.mean())
    xc = x - mu
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - float(mu @ w)


def knn_mean(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Mean target of the `k` most cosine-similar training prompts (retrieval)."""
    a = x_train / np.linalg.norm(x_train, axis=1, keepdims=True)
    b = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty(len(b))
    for i in range(0, len(b), 512):
        sim = b[i : i + 512] @ a.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        out[i : i + 512] = y_train[top].mean(1)
    return out
