"""Cross-fitted scores: every AlpacaEval and Arena-Hard prompt scored by a predictor that never saw it.

The shipped predictor trained on the AlpacaEval prompts, so its scores there are in-sample
(optimistic: tau 0.72 against 0.52 cross-validated). A benchmark that wants LTR as a user would get
it ranks by out-of-sample scores instead: the union of both prompt sets is split into k folds by
prompt; fold model k is trained with the shipped recipe (`TrainConfig()`, family-median labels) on
the other folds, exported through the shipped ONNX path (int8 weights) and run with
`runtime.length_predictor.LengthRanker` (what the server runs) on its own fold.

Fold models are cached under build/crossfit/<key>/ (key: recipe, folds, seed, data), so a rerun
only rescores; the scores go to build/crossfit/scores.json, which `make bench-sim` and
`make bench-serve` read (`workloads.scores.cross_fitted_pool_scores`).

    python -m predictor.crossfit        # ~5 trainings of ~2 min each on 2 quiet cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from predictor.data import ARENA_TARGET, ensure_prepared, llama3_counter, load_arena_hard
from predictor.interchange import Example, read_jsonl
from repo_paths import BUILD_DIR, default_data_dir

CROSSFIT_DIR = BUILD_DIR / "crossfit"
SCORES_FILE = CROSSFIT_DIR / "scores.json"
# Arena-Hard answers of the Llama-3 family: the median over them is the label, as the 25
# AlpacaEval generators' median is for AlpacaEval prompts.
ARENA_LABEL_MODELS = (ARENA_TARGET, f"{ARENA_TARGET}_sample2", "llama-3-70b-instruct")


def prompt_key(prompt: str) -> str:
    """The key a score file uses for a prompt (its text may be long and is not needed)."""
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:16]


def folds_by_prompt(n: int, k: int, seed: int) -> np.ndarray:
    """Fold id per distinct prompt: a seeded permutation dealt round-robin into k folds."""
    return np.random.RandomState(seed).permutation(n) % k


def training_rows(data_dir: Path) -> list[Example]:
    """AlpacaEval's generator family and Arena-Hard's Llama-3 answers, one row per (prompt, answer)."""
    rows = read_jsonl(ensure_prepared(data_dir)["alpaca_family"])
    count = llama3_counter()
    for model in ARENA_LABEL_MODELS:
        if (data_dir / "arena_hard_v0.1" / f"v0.1_{model}.jsonl").is_file():
            rows += load_arena_hard(data_dir, count, model)
    return rows


def crossfit(data_dir: Path, folds: int = 5, seed: int = 0, epochs: int | None = None) -> dict:
    """Train (or reuse) the fold models and score every prompt with the one that left it out."""
    import torch

    from predictor.export import export_checkpoint
    from runtime.length_predictor import LengthRanker
    from predictor.train import TrainConfig, aggregate_labels, backbone_tokenizer_json, train_model

    cfg = TrainConfig() if epochs is None else TrainConfig(epochs=epochs)
    rows = training_rows(data_dir)
    prompts = sorted({e.prompt for e in rows})
    fold_of = dict(zip(prompts, folds_by_prompt(len(prompts), folds, seed).tolist()))
    blob = json.dumps({"cfg": asdict(cfg), "folds": folds, "seed": seed,
                       "rows": hashlib.sha1("\n".join(f"{e.prompt}\t{e.output_tokens}\t{e.generator}" for e in rows)
                                            .encode()).hexdigest()}, sort_keys=True)
    work = CROSSFIT_DIR / hashlib.sha1(blob.encode()).hexdigest()[:12]
    scores: dict[str, dict] = {}
    seconds: list[float] = []
    for k in tqdm(range(folds), desc="cross-fitting", unit="fold"):
        version_dir = work / f"fold{k}" / "1"
        held = [p for p in prompts if fold_of[p] == k]
        if not (version_dir / "model.onnx").is_file():
            train_prompts, labels = aggregate_labels([e for e in rows if fold_of[e.prompt] != k], cfg.labels)
            assert not set(train_prompts) & set(held), "a held-out prompt leaked into training"
            t0 = time.time()
            model, tok, facts = train_model(cfg, train_prompts, labels, progress=False)
            seconds.append(time.time() - t0)
            ckpt = work / f"fold{k}" / "checkpoint"
            model.save(ckpt, {"train_config": asdict(cfg), "facts": facts, "pad_id": tok.pad_id})
            (ckpt / "tokenizer.json").write_bytes(backbone_tokenizer_json(cfg.resolved_backbone())[0].read_bytes())
            export_checkpoint(ckpt, version_dir)
            del model
            torch.set_num_threads(cfg.threads)
        fold_scores = LengthRanker(version_dir, intra_op_threads=2).score_texts(held, batch_size=32)
        for p, s in zip(held, fold_scores):
            scores[prompt_key(p)] = {"score": float(s), "fold": k}
    out = {"score_source": "cross_fitted", "folds": folds, "seed": seed, "fold_dir": str(work),
           "recipe": asdict(cfg), "n_prompts": len(prompts), "train_seconds": seconds, "scores": scores}
    SCORES_FILE.parent.mkdir(parents=True, exist_ok=True)
    SCORES_FILE.write_text(json.dumps(out) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke tests)")
    args = ap.parse_args(argv)
    out = crossfit(args.data_dir or default_data_dir(), args.folds, args.seed, args.epochs)
    print(f"{out['n_prompts']} prompts scored by {args.folds} fold models ({out['fold_dir']}) -> {SCORES_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
