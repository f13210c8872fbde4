"""Scores the LTR policy ranks by, and where they come from (`ScoreSource`, recorded in every row):

* `cross_fitted`: each prompt scored by a fold model that did not train on it (`predictor.crossfit`);
* `held_out` / `in_sample`: the exported predictor on prompts outside / inside its training data;
* `noisy_oracle`: the true lengths plus noise at a chosen Kendall's tau (text-less traces);
* `oracle`: the true lengths; `none`: no scores (FCFS, MLFQ).

Noisy oracle: the true lengths' normal scores plus Gaussian noise. For a bivariate normal with
correlation rho, Kendall's tau = (2/pi) arcsin(rho) (Greiner's relation), so rho = sin(pi tau / 2)
and the noise scale is sqrt(1/rho^2 - 1). Ties in the lengths pull the realised tau slightly below
the target; `kendall_tau` reports what was achieved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from scipy import stats

from predictor.crossfit import SCORES_FILE as CROSS_FITTED_FILE
from predictor.crossfit import prompt_key
from predictor.paths import MODEL_DIR as DEFAULT_PREDICTOR_DIR
from workloads.traces import CACHE_DIR, PromptPool, TraceRequest

ScoreSource = Literal["cross_fitted", "held_out", "in_sample", "noisy_oracle", "oracle", "none"]
# The text workloads the shipped predictor trained on (`make train`: the AlpacaEval prompts), where
# its scores are in-sample; on any other workload they are held out.
SHIPPED_TRAINED_ON = ("alpaca",)


def shipped_source(workload: str) -> ScoreSource:
    return "in_sample" if workload in SHIPPED_TRAINED_ON else "held_out"


def noisy_oracle_scores(true_lengths: Sequence[float], tau: float, seed: int = 0) -> np.ndarray:
    """Scores whose Kendall's tau against `true_lengths` is about `tau` (1: the oracle order)."""
    x = np.asarray(true_lengths, dtype=float)
    if tau >= 1.0:
        return x.copy()
    ranks = stats.rankdata(x)
    z = stats.norm.ppf(ranks / (len(x) + 1))
    rho = np.sin(np.pi * tau / 2.0)
    if rho <= 0:
        return np.random.default_rng(seed).standard_normal(len(x))
    sigma = np.sqrt(1.0 / rho**2 - 1.0)
    return z + sigma * np.random.default_rng(seed).standard_normal(len(x))


def find_predictor(path: str | Path | None = None) -> Path | None:
    """The version folder of an exported predictor (model.onnx), or None when there is none."""
    from runtime.length_predictor import resolve_version_dir

    root = Path(path) if path else DEFAULT_PREDICTOR_DIR
    try:
        vdir = resolve_version_dir(root)
    except (FileNotFoundError, OSError):
        return None
    return vdir if (vdir / "model.onnx").is_file() else None


def predictor_pool_scores(pool: PromptPool, version_dir: Path) -> np.ndarray:
    """Predictor scores of every distinct prompt of `pool`, cached by model and prompts."""
    h = hashlib.sha1((version_dir / "model.onnx").read_bytes())
    h.update("\x00".join(pool.prompts).encode())
    path = CACHE_DIR / f"scores_{pool.name}_{h.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    from runtime.length_predictor import LengthRanker

    scores = LengthRanker(version_dir, intra_op_threads=2).score_texts(list(pool.prompts), batch_size=32)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, scores)
    return scores


def cross_fitted_pool_scores(pool: PromptPool, path: Path = CROSS_FITTED_FILE) -> np.ndarray:
    """Every prompt of `pool` scored by the fold model that left it out (`make crossfit`)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found: `make crossfit` (python -m predictor.crossfit) writes it")
    scores = json.loads(Path(path).read_text())["scores"]
    missing = [p for p in pool.prompts if prompt_key(p) not in scores]
    if missing:
        raise ValueError(f"{len(missing)} prompts of {pool.name!r} have no cross-fitted score in {path}: rerun make crossfit")
    return np.array([scores[prompt_key(p)]["score"] for p in pool.prompts], dtype=float)


def cross_fitted_pool_folds(pool: PromptPool, path: Path = CROSS_FITTED_FILE) -> np.ndarray:
    """The fold of every prompt of `pool` (the fold model that scored it left that fold out)."""
    scores = json.loads(Path(path).read_text())["scores"]
    return np.array([int(scores[prompt_key(p)]["fold"]) for p in pool.prompts], dtype=np.int64)


def request_scores(reqs: Sequence[TraceRequest], pool_scores: np.ndarray) -> np.ndarray:
    """Per-request scores from per-prompt scores (requests index the pool by `item`)."""
    return np.array([pool_scores[r.item] for r in reqs], dtype=float)
