"""Kendall's tau of the exported ONNX predictor on an interchange JSONL file.

Runs the shipped artifact through onnxruntime with exactly the server's preprocessing
(runtime.length_predictor: the version folder's tokenizer.json, truncation to its max_length, padding
to the longest in a batch). The last line printed is `kendall_tau=<value> n=<rows>`.

    python -m predictor.evaluate --data build/predictor/data/arena_hard_target.jsonl --model model_repository/length_predictor
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.stats import kendalltau

from predictor.interchange import read_jsonl
from predictor.paths import MODEL_DIR
from runtime.length_predictor import LengthRanker


def kendall_tau(scores: Sequence[float], lengths: Sequence[float]) -> float:
    """Kendall's tau-b (scipy), the rank agreement between scores and true lengths: the one
    definition every figure of this project uses (predictor tables, simulator, served runs)."""
    return float(kendalltau(scores, lengths).statistic)


def evaluate_file(data: Path, model: Path, batch_size: int = 16, threads: int = 2) -> tuple[float, int]:
    rows = read_jsonl(data)
    ranker = LengthRanker(model, intra_op_threads=threads)
    scores = ranker.score_texts([r.prompt for r in rows], batch_size=batch_size)
    return kendall_tau(scores, np.array([r.output_tokens for r in rows])), len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="interchange JSONL: {prompt, output_tokens} per line")
    ap.add_argument("--model", type=Path, default=MODEL_DIR, help="model.onnx, its version folder, or the model folder")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    value, n = evaluate_file(args.data, args.model, args.batch_size, args.threads)
    print(f"kendall_tau={value:.4f} n={n}")


if __name__ == "__main__":
    main()
