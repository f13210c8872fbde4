"""`make retrain LOG=...`: a new predictor version from the deployment's own request log, shipped
only when it ranks the newest traffic better than the serving version.

1. Rows (runtime/request_log.py): `stop` rows with prompt text are (prompt, natural length) pairs.
   `length` and `cancelled` rows are censored (the answer was cut: its length is only a lower bound)
   and are DROPPED, and counted: ListMLE needs a full order, and a cut answer's place in it is not
   known. Dropping them under-represents long answers when many requests hit `max_tokens` (the report
   says how many there were). `error` / `rejected` rows and rows without text (prompt logging off)
   are skipped and counted too.
2. Split by time: the newest `--holdout` fraction of the usable rows (by end time) is the judge's
   slice; the new version never trains on it.
3. Fine-tune the serving version's checkpoint (`train_model(init=...)`) on the older rows, one label
   per prompt (median of its rows), mixed with a replay sample of the earlier training data
   (`--replay` x as many prompts, labels as `make train` makes them) so it does not forget; one
   epoch with the lower layers frozen by default, which keeps 5,000 logged rows within minutes on
   2 cores.
4. Export through the shipped path (int8 ONNX, predictor.export) into a staging folder and judge
   both ONNX versions with the server's own preprocessing (runtime.length_predictor.LengthRanker): Kendall's
   tau against the held-out lengths. Ship `length_predictor/<N+1>/` only when tau_new >= tau_old +
   `--margin` (default 0.02); otherwise keep the old one and say why.
5. `rollback --version V` retires every version above V (renamed `retired-<v>`: not numeric, so
   Triton ignores it and it can be restored by hand); `python -m deploy.swap` then makes a running
   server serve V.

    python -m predictor.retrain --log .deploy/request_log          # train, judge, maybe ship
    python -m predictor.retrain rollback --version 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from predictor.interchange import read_jsonl
from predictor.paths import MODEL_DIR, PREDICTOR_BUILD_DIR
from runtime.length_predictor import META_FILE, latest_version_dir, read_meta
from runtime.predictor_version import version_folders
from runtime.request_log import CENSORED, read_rows

CHECKPOINTS_DIR = PREDICTOR_BUILD_DIR / "checkpoints"  # one torch checkpoint per exported version: <N>/
FIRST_CHECKPOINT = PREDICTOR_BUILD_DIR / "checkpoint"  # `make train`'s, exported as version 1
MODEL_CODE = "model.py"  # the python backend's code, copied into each new version folder
RETIRED_PREFIX = "retired-"


# ---- the log's rows -----------------------------------------------------------------------------
@dataclass
class LoggedPairs:
    """Usable (prompt, natural length) rows in time order, and why the others were left out."""

    rows: list[dict]
    counts: dict[str, int] = field(default_factory=dict)


def usable_rows(rows: Sequence[dict]) -> LoggedPairs:
    counts: Counter[str] = Counter(total=len(rows))
    kept = []
    for row in rows:
        reason = row.get("finish_reason")
        if reason in CENSORED:
            counts[f"censored_{reason}"] += 1
        elif reason != "stop":
            counts[f"skipped_{reason}"] += 1
        elif not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            counts["skipped_no_prompt"] += 1
        else:
            kept.append(row)
    counts["used"] = len(kept)
    kept.sort(key=lambda r: r.get("end_time") or 0.0)
    return LoggedPairs(kept, dict(counts))


def time_split(rows: Sequence[dict], holdout: float, min_holdout: int = 50) -> tuple[list[dict], list[dict]]:
    """Older rows to train on, the newest `holdout` fraction (at least `min_holdout`) to judge on.
    Rows must be in time order. A prompt seen in both keeps only its held-out rows: the judge
    never scores a prompt the new version trained on."""
    n_hold = min(len(rows), max(min_holdout, int(round(len(rows) * holdout))))
    train, held = list(rows[: len(rows) - n_hold]), list(rows[len(rows) - n_hold :])
    held_prompts = {r["prompt"] for r in held}
    return [r for r in train if r["prompt"] not in held_prompts], held


def median_labels(rows: Sequence[dict]) -> tuple[list[str], np.ndarray]:
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r["prompt"], []).append(int(r["output_tokens"]))
    prompts = list(groups)
    return prompts, np.array([float(np.median(groups[p])) for p in prompts])


def replay_sample(prompts: Sequence[str], labels: np.ndarray, n: int, seed: int, avoid: set[str]) -> tuple[list[str], np.ndarray]:
    """`n` earlier training prompts (fewer if there are not that many), none of `avoid`."""
    idx = [i for i, p in enumerate(prompts) if p not in avoid]
    pick = np.random.RandomState(seed).permutation(len(idx))[: max(0, n)]
    chosen = [idx[i] for i in sorted(pick)]
    return [prompts[i] for i in chosen], np.asarray(labels, dtype=np.float64)[chosen]


# ---- judging and versions -----------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    ship: bool
    tau_old: float
    tau_new: float
    margin: float
    n: int
    reason: str


def judge(old_scores: Sequence[float], new_scores: Sequence[float], lengths: Sequence[float], margin: float) -> Verdict:
    """Ship only when the new version's tau on the held-out rows beats the old one's by `margin`."""
    from predictor.evaluate import kendall_tau

    n = len(lengths)
    if n < 2:
        return Verdict(False, float("nan"), float("nan"), margin, n, "too few held-out rows to judge")
    old, new = kendall_tau(old_scores, lengths), kendall_tau(new_scores, lengths)
    if not np.isfinite(new):
        return Verdict(False, old, new, margin, n, "the new version's tau is undefined (constant scores?)")
    if new >= old + margin:
        return Verdict(True, old, new, margin, n, f"tau {new:.3f} >= {old:.3f} + margin {margin}")
    return Verdict(False, old, new, margin, n, f"tau {new:.3f} < {old:.3f} + margin {margin}: keeping the old version")


def next_version(model_dir: Path) -> int:
    """One above every version ever used here, retired ones included (numbers are never reused)."""
    used = [int(v) for v in version_folders(model_dir)]
    used += [int(p.name[len(RETIRED_PREFIX):]) for p in Path(model_dir).glob(RETIRED_PREFIX + "*")
             if p.name[len(RETIRED_PREFIX):].isdigit()]
    return max(used, default=0) + 1


def checkpoint_of(version: str, checkpoints: Path = CHECKPOINTS_DIR) -> Path:
    """The torch checkpoint a version was exported from (version 1: `make train`'s)."""
    from predictor.model import CONFIG_FILE

    path = checkpoints / version
    if (path / CONFIG_FILE).is_file():
        return path
    if version == "1" and (FIRST_CHECKPOINT / CONFIG_FILE).is_file():
        return FIRST_CHECKPOINT
    raise FileNotFoundError(
        f"no checkpoint for predictor version {version} ({path}{' or ' + str(FIRST_CHECKPOINT) if version == '1' else ''}): "
        "run `make train` (version 1) or retrain from a version this machine exported"
    )


def install_version(staged: Path, model_dir: Path, version: int, code_from: Path) -> Path:
    """Move a staged, judged version folder into the model folder, with the backend's model.py."""
    dest = Path(model_dir) / str(version)
    if dest.exists():
        raise FileExistsError(dest)
    if (code_from / MODEL_CODE).is_file():
        shutil.copy2(code_from / MODEL_CODE, staged / MODEL_CODE)
    shutil.move(str(staged), str(dest))
    return dest


def rollback(model_dir: Path, version: int) -> list[str]:
    """Retire every version above `version`, so that `version` is the latest; returns the retired."""
    model_dir = Path(model_dir)
    if not (model_dir / str(version)).is_dir():
        raise FileNotFoundError(f"no version {version} in {model_dir} (have: {version_folders(model_dir)})")
    retired = []
    for v in version_folders(model_dir):
        if int(v) > version:
            (model_dir / v).rename(model_dir / f"{RETIRED_PREFIX}{v}")
            retired.append(v)
    return retired


# ---- the whole cycle ----------------------------------------------------------------------------
@dataclass
class RetrainSettings:
    holdout: float = 0.2
    min_holdout: int = 50
    replay: float = 0.25  # replay prompts per logged training prompt
    margin: float = 0.02
    epochs: int = 1
    freeze_layers: int = 4
    threads: int = 2
    seed: int = 0
    min_rows: int = 200  # fewer usable rows than this: no retraining


def replay_pool(data_dir: Path | None) -> tuple[list[str], np.ndarray]:
    """The earlier training data, labelled as `make train` labels it (predictor.train)."""
    from predictor.data import ensure_prepared
    from predictor.train import TrainConfig, aggregate_labels

    cfg = TrainConfig()
    return aggregate_labels(read_jsonl(ensure_prepared(data_dir)["alpaca_family"]), cfg.labels, cfg.target_generator)


def retrain(
    log_path: Path, model_dir: Path = MODEL_DIR, settings: RetrainSettings = RetrainSettings(),
    replay: tuple[list[str], np.ndarray] | None = None, checkpoints: Path = CHECKPOINTS_DIR,
    work_dir: Path = PREDICTOR_BUILD_DIR / "retrain", install: bool = True, max_rows: int | None = None,
) -> dict:
    """Train, judge, and install `<N+1>` when it is better; returns the report (also written to
    `work_dir/report.json`). `install=False` only stages and judges (`staged_dir`); `max_rows` uses
    the oldest usable rows alone (a learning curve: what a shorter log would have given)."""
    import torch

    from predictor.export import export_checkpoint
    from predictor.model import LengthPredictor
    from runtime.length_predictor import LengthRanker
    from predictor.train import TrainConfig, train_model

    t0 = time.time()
    serving_dir = latest_version_dir(model_dir)
    pairs = usable_rows(read_rows(log_path))
    if max_rows is not None:
        pairs.rows = pairs.rows[:max_rows]
    report: dict = {"log": str(log_path), "serving_version": serving_dir.name, "rows": pairs.counts,
                    "censored_handling": "dropped (a cut answer's length is only a lower bound)",
                    "settings": asdict(settings)}
    if len(pairs.rows) < settings.min_rows:
        report.update(shipped=False, reason=f"{len(pairs.rows)} usable rows < min_rows {settings.min_rows}")
        return _finish(report, work_dir, t0)
    train_rows, held = time_split(pairs.rows, settings.holdout, settings.min_holdout)
    prompts, labels = median_labels(train_rows)
    old_prompts, old_labels = replay if replay is not None else replay_pool(None)
    held_prompts = {r["prompt"] for r in held}
    r_prompts, r_labels = replay_sample(old_prompts, old_labels, int(len(prompts) * settings.replay), settings.seed, held_prompts)
    report.update(n_train_rows=len(train_rows), n_train_prompts=len(prompts), n_replay=len(r_prompts), n_holdout=len(held))

    ckpt = checkpoint_of(serving_dir.name, checkpoints)
    init, meta = LengthPredictor.load(ckpt)
    cfg = TrainConfig(**{**meta["train_config"], "epochs": settings.epochs, "freeze_layers": settings.freeze_layers,
                         "threads": settings.threads, "seed": settings.seed})
    t_train = time.time()
    model, tok, facts = train_model(cfg, prompts + r_prompts, np.concatenate([labels, r_labels]), progress=False, init=init)
    report["train_seconds"] = round(time.time() - t_train, 1)

    version = next_version(model_dir)
    new_ckpt = checkpoints / str(version)
    if new_ckpt.exists():
        shutil.rmtree(new_ckpt)
    model.save(new_ckpt, {"train_config": asdict(cfg), "facts": {**facts, "retrained_from": serving_dir.name},
                          "pad_id": tok.pad_id})
    shutil.copyfile(ckpt / "tokenizer.json" if (ckpt / "tokenizer.json").is_file() else serving_dir / "tokenizer.json",
                    new_ckpt / "tokenizer.json")
    del model, init
    staged = work_dir / "staged" / str(version)
    if staged.exists():
        shutil.rmtree(staged)
    export_checkpoint(new_ckpt, staged, real_prompts=[r["prompt"] for r in held[:64]])
    torch.set_num_threads(settings.threads)

    texts, lengths = [r["prompt"] for r in held], [float(r["output_tokens"]) for r in held]
    old_scores = LengthRanker(serving_dir, intra_op_threads=settings.threads).score_texts(texts, 32)
    new_scores = LengthRanker(staged, intra_op_threads=settings.threads).score_texts(texts, 32)
    verdict = judge(old_scores, new_scores, lengths, settings.margin)
    report.update(judge=asdict(verdict), candidate_version=version, staged_dir=str(staged))
    if verdict.ship and install:
        meta_new = read_meta(staged)
        meta_new["retrain"] = {k: report[k] for k in ("log", "serving_version", "rows", "n_train_prompts", "n_replay",
                                                       "n_holdout", "censored_handling")} | {"judge": asdict(verdict)}
        (staged / META_FILE).write_text(json.dumps(meta_new, indent=2) + "\n")
        dest = install_version(staged, model_dir, version, serving_dir)
        report.update(shipped=True, version_dir=str(dest), reason=verdict.reason)
    else:
        report.update(shipped=False, reason=verdict.reason if not verdict.ship else f"{verdict.reason}; not installed (install=False)")
    return _finish(report, work_dir, t0)


def _finish(report: dict, work_dir: Path, t0: float) -> dict:
    report["retrain_seconds"] = round(time.time() - t0, 1)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    rb = sub.add_parser("rollback", help="make VERSION the latest again (retire every version above it)")
    rb.add_argument("--version", type=int, required=True)
    rb.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--log", type=Path, help="the request log (its folder or requests.jsonl)")
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    d = RetrainSettings()
    for name, value in asdict(d).items():
        ap.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    args = ap.parse_args(argv)
    if args.command == "rollback":
        retired = rollback(args.model_dir, args.version)
        print(f"version {args.version} is the latest in {args.model_dir}; retired {retired or 'nothing'}")
        print("a running deployment follows with: python -m deploy.swap")
        return 0
    if args.log is None:
        ap.error("--log is required")
    settings = RetrainSettings(**{k: getattr(args, k) for k in asdict(d)})
    report = retrain(args.log, args.model_dir, settings)
    print(json.dumps({k: report.get(k) for k in ("rows", "n_train_prompts", "n_replay", "n_holdout", "judge",
                                                 "shipped", "reason", "retrain_seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
