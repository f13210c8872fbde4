"""`python -m predictor.evaluate` prints `kendall_tau=<value> n=<rows>` last, and the value is
the scipy tau of the ONNX artifact's scores."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from scipy.stats import kendalltau

from predictor.interchange import Example, write_jsonl
from predictor.paths import MODEL_DIR
from predictor.runtime import LengthRanker
from repo_paths import REPO_ROOT

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
