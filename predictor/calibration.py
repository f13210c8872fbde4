"""Fit a predictor version's length calibration (runtime.length_calibration: score -> expected output
tokens) and measure it on prompts it was not fitted on.

The shipped version trained on AlpacaEval prompts, so its scores there are in-sample; Arena-Hard's
500 prompts it never saw, answered by the target model (llama-3-8b-instruct, lengths in Llama-3
tokens). They are split in two halves by prompt hash: the calibration is fitted on one and judged on
the other (Spearman of predicted vs true tokens, median relative error |pred - true| / true), then
refitted on all 500 and written into the version folder as `calibration.json`. A retrain
(predictor.retrain) refits it on its own scored log rows with `LengthCalibration.fit`.

    python -m predictor.calibration [--version-dir model_repository/length_predictor/1] [--report results/predictor_eval.md]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from predictor.data import load_arena_hard, llama3_counter
from repo_paths import REPO_ROOT, default_data_dir
from runtime.length_calibration import CALIBRATION_FILE, LengthCalibration

VERSION_DIR = REPO_ROOT / "model_repository" / "length_predictor" / "1"
REPORT_MARK = "## Length calibration (predicted tokens)"


def held_out_half(prompt: str) -> bool:
    return hashlib.sha1(prompt.encode()).digest()[0] % 2 == 1


def quality(calibration: LengthCalibration, scores: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    predicted = np.array([calibration.expected_tokens(float(s)) for s in scores])
    rel = np.abs(predicted - lengths) / np.maximum(lengths, 1)
    constant = np.abs(np.median(lengths) - lengths) / np.maximum(lengths, 1)
    return {"n": len(lengths), "spearman": float(spearmanr(predicted, lengths).statistic),
            "median_rel_error": float(np.median(rel)), "median_rel_error_constant": float(np.median(constant))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version-dir", type=Path, default=VERSION_DIR)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--report", type=Path, default=REPO_ROOT / "results" / "predictor_eval.md")
    args = parser.parse_args(argv)
    from runtime.length_predictor import LengthRanker

    examples = load_arena_hard(args.data_dir, llama3_counter())
    prompts = [e.prompt for e in examples]
    lengths = np.array([e.output_tokens for e in examples], dtype=float)
    scores = LengthRanker(args.version_dir, intra_op_threads=2).score_texts(prompts, batch_size=32).reshape(-1)
    test = np.array([held_out_half(p) for p in prompts])
    fitted = LengthCalibration.fit(scores[~test], lengths[~test])
    q = quality(fitted, scores[test], lengths[test])
    final = LengthCalibration.fit(scores, lengths)
    (args.version_dir / CALIBRATION_FILE).write_text(final.to_json())
    section = (
        f"\n\n{REPORT_MARK}\n\n"
        f"`python -m predictor.calibration` (the shipped version, {args.version_dir.name}): Arena-Hard prompts it never "
        f"trained on, answered by llama-3-8b-instruct; calibration fitted on {int((~test).sum())} of them, judged on "
        f"the other {q['n']}.\n\n"
        "| held-out prompts | Spearman (predicted vs true tokens) | median relative error | same, constant median guess |\n"
        "|---|---|---|---|\n"
        f"| {q['n']} | {q['spearman']:.3f} | {q['median_rel_error']:.3f} | {q['median_rel_error_constant']:.3f} |\n\n"
        f"Shipped: `{args.version_dir.relative_to(REPO_ROOT) if args.version_dir.is_relative_to(REPO_ROOT) else args.version_dir}"
        f"/{CALIBRATION_FILE}`, refitted on all {final.fitted_on} ({len(final.scores)} knots, "
        f"{final.tokens[0]:.0f} to {final.tokens[-1]:.0f} tokens; a NaN score gets {final.fallback_tokens:.0f}).\n"
    )
    text = args.report.read_text() if args.report.exists() else ""
    text = text.split(f"\n\n{REPORT_MARK}")[0]
    args.report.write_text(text + section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
