"""`python -m predictor.evaluate` prints `kendall_tau=<value> n=<rows>` last, and the value is
the scipy tau of the ONNX artifact's scores; the shipped predictor ranks held-out prompts above a floor."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau

from predictor.evaluate import kendall_tau
from predictor.interchange import Example, write_jsonl
from predictor.paths import MODEL_DIR
from repo_paths import REPO_ROOT
from runtime.length_predictor import LengthRanker

ROWS = [
    Example("Write a long story about a dragon who learns to code, at least 1500 words.", 1400),
    Example("What is the capital of France? One word.", 3),
    Example("List ten tips for better sleep, each with a short explanation.", 450),
    Example("Is 17 prime? Answer yes or no.", 2),
    Example("Explain how a transformer neural network works, step by step, with equations.", 800),
    Example("Give me a synonym for 'happy'.", 8),
    Example("Write a Python script that scrapes a website and stores results in SQLite, with comments.", 650),
    Example("hello", 20),
]


def test_last_line_and_value(tmp_path):
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, ROWS)
    out = subprocess.run([sys.executable, "-m", "predictor.evaluate", "--data", str(data), "--model", str(MODEL_DIR)],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    last = out.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"kendall_tau=(-?\d+\.\d+) n=(\d+)", last)
    assert m, last
    assert int(m.group(2)) == len(ROWS)
    scores = LengthRanker(MODEL_DIR).score_texts([r.prompt for r in ROWS])
    expected = kendalltau(scores, np.array([r.output_tokens for r in ROWS])).statistic
    assert abs(float(m.group(1)) - expected) < 1e-3


# The shipped version 1 ranks the 200-prompt sample at tau 0.373 (0.328 on all 500 Arena-Hard prompts,
# results/predictor_eval.md); a predictor no better than prompt length scores about -0.1. The floor
# leaves room for sampling noise (sd about 0.05 at n=200) and for a retrained version.
TAU_FLOOR = 0.25


def test_shipped_predictor_ranks_held_out_prompts_above_the_floor(arena_sample):
    scores = LengthRanker(MODEL_DIR, intra_op_threads=2).score_texts([r.prompt for r in arena_sample], batch_size=32)
    tau = kendall_tau(scores, [r.output_tokens for r in arena_sample])
    assert tau > TAU_FLOOR, f"Kendall tau {tau:.3f} on {len(arena_sample)} Arena-Hard prompts"


def test_kendall_tau_is_rank_agreement():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [9, 7, 5, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)

