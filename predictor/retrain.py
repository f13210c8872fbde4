"""`make retrain LOG=...`: a new predictor version from the deployment's own request log, shipped
only when it ranks the newest traffic better than the serving version.

1. Rows (runtime/request_log.py): `stop` rows with prompt text are (prompt, natural length) pairs.
   `length` and `cancelled` rows are censored (the answer was cut: its length is only a lower bound)
   and are KEPT as lower bounds: a prompt with a cut row trains through censored ListMLE
   (losses.censored_list_mle), which uses only the orders the bound makes certain (it is longer
   than every answer no longer than its bound). Dropping them would hide the longest answers.
   `error` / `rejected` rows and rows without text (prompt logging off) are skipped and counted.
2. Split by PROMPT: the prompts first seen most recently (the newest `--holdout` fraction of the
   distinct prompts) are the judge's slice with all their rows; every other prompt trains with all
   of its rows. Traffic repeats itself: a prompt asked ten times gives a ten-row median label, and
   never straddles the split (a split by row lost most repeated prompts to the judge).
3. Fine-tune the serving version's checkpoint (`train_model(init=...)`) on the other prompts, one
   label per prompt (median of its rows, cut rows at their bound), mixed with a replay sample of the earlier training data
   (`--replay` x as many prompts, labels as `make train` makes them) so it does not forget; one
   epoch with the lower layers frozen by default, which keeps 5,000 logged rows within minutes on
   2 cores.
4. Export through the shipped path (int8 ONNX, predictor.export) into a staging folder and judge
   both ONNX versions with the server's own preprocessing (runtime.length_predictor.LengthRanker): Kendall's
   tau against the held-out prompts' median lengths (prompts with an exact label, one item each).
   Ship `length_predictor/<N+1>/` only when tau_new >= tau_old +
   `--margin` (default 0.02); otherwise keep the old one and say why.
   The new version's length calibration (runtime.length_calibration: score -> expected tokens, read by
   the scheduler for the predicted backlog and each request's `expected_output_tokens`) is refitted
   here and shipped in its folder as `calibration.json`: the new version's scores of the held-out
   prompts (ones it never trained on, so the map is not fitted to in-sample scores) against every one
   of their logged rows' lengths, one pair per row; cut rows (`length` / `cancelled`) are KEPT as
   lower bounds (Kaplan-Meier medians per score bin), not counted at their bound nor dropped.
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
from runtime.length_calibration import CALIBRATION_FILE, LengthCalibration
from runtime.request_log import CENSORED, read_rows

CHECKPOINTS_DIR = PREDICTOR_BUILD_DIR / "checkpoints"  # one torch checkpoint per exported version: <N>/
FIRST_CHECKPOINT = PREDICTOR_BUILD_DIR / "checkpoint"  # `make train`'s, exported as version 1
MODEL_CODE = "model.py"  # the python backend's code, copied into each new version folder
RETIRED_PREFIX = "retired-"


# ---- the log's rows -----------------------------------------------------------------------------
@dataclass
class LoggedPairs:
    """Usable rows in time order (`stop`: natural length; `length` / `cancelled`: a lower bound),
    and why the others were left out."""

    rows: list[dict]
    counts: dict[str, int] = field(default_factory=dict)


def usable_rows(rows: Sequence[dict]) -> LoggedPairs:
    counts: Counter[str] = Counter(total=len(rows))
    kept = []
    for row in rows:
        reason = row.get("finish_reason")
        if reason != "stop" and reason not in CENSORED:
            counts[f"skipped_{reason}"] += 1
        elif not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            counts["skipped_no_prompt"] += 1
        else:
            if reason in CENSORED:
                counts[f"censored_{reason}"] += 1
            kept.append(row)
    counts["used"] = len(kept)
    kept.sort(key=lambda r: r.get("end_time") or 0.0)
    return LoggedPairs(kept, dict(counts))


def prompt_split(rows: Sequence[dict], holdout: float, min_holdout: int = 50) -> tuple[list[dict], list[dict]]:
    """Split by prompt, not by row: the prompts first seen most recently (the newest `holdout`
    fraction of distinct prompts, at least `min_holdout` of them, at most half) go to the judge with ALL their
    rows; every other prompt trains with all of its rows. Why: traffic repeats itself, and a split
    by row put one row of nearly every repeated prompt in the judge's slice, which then kept that
    prompt out of training (296 prompts x 10 asks trained on 36 prompts). Rows in time order."""
    first_seen: dict[str, int] = {}
    for i, r in enumerate(rows):
        first_seen.setdefault(r["prompt"], i)
    prompts = sorted(first_seen, key=first_seen.__getitem__)
    n_hold = min(len(prompts) // 2, max(min_holdout, int(round(len(prompts) * holdout))))
    held_prompts = set(prompts[len(prompts) - n_hold :])
    return [r for r in rows if r["prompt"] not in held_prompts], [r for r in rows if r["prompt"] in held_prompts]


@dataclass
class PromptLabels:
    """One label per distinct prompt: the median of its rows' lengths, a cut row counted at its
    lower bound. The median only grows when a cut row's true length is put in, so a prompt with
    any cut row has a lower-bound label (`censored`); one with none has an exact label."""

    prompts: list[str]
    labels: np.ndarray
    censored: np.ndarray  # bool per prompt
    n_rows: np.ndarray  # rows per prompt (repeats are more signal: a less noisy median)


def prompt_labels(rows: Sequence[dict]) -> PromptLabels:
    groups: dict[str, list[tuple[int, bool]]] = {}
    for r in rows:
        groups.setdefault(r["prompt"], []).append((int(r["output_tokens"]), r.get("finish_reason") in CENSORED))
    prompts = list(groups)
    return PromptLabels(
        prompts,
        np.array([float(np.median([n for n, _ in groups[p]])) for p in prompts]),
        np.array([any(c for _, c in groups[p]) for p in prompts], dtype=bool),
        np.array([len(groups[p]) for p in prompts], dtype=np.int64),
    )


def median_labels(rows: Sequence[dict]) -> tuple[list[str], np.ndarray]:
    """Median length per prompt (every row counted as exact; `prompt_labels` knows cut rows)."""
    lab = prompt_labels(rows)
    return lab.prompts, lab.labels


def replay_sample(prompts: Sequence[str], labels: np.ndarray, n: int, seed: int, avoid: set[str]) -> tuple[list[str], np.ndarray]:
    """`n` earlier training prompts (fewer if there are not that many), none of `avoid`."""
    idx = [i for i, p in enumerate(prompts) if p not in avoid]
    pick = np.random.RandomState(seed).permutation(len(idx))[: max(0, n)]
    chosen = [idx[i] for i in sorted(pick)]
    return [prompts[i] for i in chosen], np.asarray(labels, dtype=np.float64)[chosen]


def log_calibration(rows: Sequence[dict], score_of: dict[str, float], bins: int = 20) -> LengthCalibration:
    """A version's length calibration from logged rows: one (its score of the row's prompt, the
    row's length) pair per row, cut rows (`length` / `cancelled`) as lower bounds. Why per row and
    not per prompt: the map predicts one request's length, repeats and all."""
    pairs = [(score_of[r["prompt"]], float(r["output_tokens"]), r.get("finish_reason") in CENSORED)
             for r in rows if r["prompt"] in score_of]
    if not pairs:
        raise ValueError("no scored rows to fit a calibration on")
    scores, lengths, cut = zip(*pairs)
    return LengthCalibration.fit(scores, lengths, bins=bins, censored=cut)


def write_calibration(version_dir: Path, calibration: LengthCalibration) -> Path:
    """Into the version folder, where the scheduler looks for it (runtime.length_calibration)."""
    path = Path(version_dir) / CALIBRATION_FILE
    path.write_text(calibration.to_json())
    return path


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
                    "censored_handling": "lower bounds: a prompt with a cut row (finish length/cancelled) trains with its median "
                                         "as a lower bound (censored ListMLE: only orders known from the bound); not judged",
                    "split": "by prompt: the newest-first-seen prompts and all their rows judge, the rest train",
                    "settings": asdict(settings)}
    if len(pairs.rows) < settings.min_rows:
        report.update(shipped=False, reason=f"{len(pairs.rows)} usable rows < min_rows {settings.min_rows}")
        return _finish(report, work_dir, t0)
    train_rows, held = prompt_split(pairs.rows, settings.holdout, settings.min_holdout)
    lab = prompt_labels(train_rows)
    prompts, labels = lab.prompts, lab.labels
    old_prompts, old_labels = replay if replay is not None else replay_pool(None)
    held_prompts = {r["prompt"] for r in held}
    r_prompts, r_labels = replay_sample(old_prompts, old_labels, int(len(prompts) * settings.replay), settings.seed, held_prompts)
    judged = prompt_labels(held)
    exact = ~judged.censored
    report.update(n_train_rows=len(train_rows), n_train_prompts=len(prompts), n_train_censored_prompts=int(lab.censored.sum()),
                  n_replay=len(r_prompts), n_holdout=len(held), n_holdout_prompts=len(judged.prompts),
                  n_judged_prompts=int(exact.sum()))

    ckpt = checkpoint_of(serving_dir.name, checkpoints)
    init, meta = LengthPredictor.load(ckpt)
    cfg = TrainConfig(**{**meta["train_config"], "epochs": settings.epochs, "freeze_layers": settings.freeze_layers,
                         "threads": settings.threads, "seed": settings.seed})
    t_train = time.time()
    model, tok, facts = train_model(cfg, prompts + r_prompts, np.concatenate([labels, r_labels]), progress=False, init=init,
                                    censored=np.concatenate([lab.censored, np.zeros(len(r_prompts), dtype=bool)]))
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
    export_checkpoint(new_ckpt, staged, real_prompts=judged.prompts[:64])
    torch.set_num_threads(settings.threads)

    # one judged item per held-out prompt with an exact label (median of its rows; prompts with
    # a cut row have only a lower bound and are not judged)
    texts = [p for p, ok in zip(judged.prompts, exact) if ok]
    lengths = judged.labels[exact].tolist()
    old_scores = LengthRanker(serving_dir, intra_op_threads=settings.threads).score_texts(texts, 32)
    held_scores = LengthRanker(staged, intra_op_threads=settings.threads).score_texts(judged.prompts, 32).reshape(-1)
    score_of = dict(zip(judged.prompts, map(float, held_scores)))
    new_scores = [score_of[p] for p in texts]
    verdict = judge(old_scores, new_scores, lengths, settings.margin)
    report.update(judge=asdict(verdict), candidate_version=version, staged_dir=str(staged))
    # the new version's score -> expected tokens, shipped with it (the module docstring says why held-out rows)
    calibration = log_calibration(held, score_of)
    write_calibration(staged, calibration)
    report["calibration"] = {"fitted_on_rows": calibration.fitted_on,
                             "censored_rows": sum(r.get("finish_reason") in CENSORED for r in held),
                             "censored_handling": "lower bounds (Kaplan-Meier median per score bin)",
                             "rows": "held-out prompts' rows (out of sample for the new version)",
                             "knots": len(calibration.scores), "fallback_tokens": calibration.fallback_tokens}
    if verdict.ship and install:
        meta_new = read_meta(staged)
        meta_new["retrain"] = {k: report[k] for k in ("log", "serving_version", "rows", "n_train_prompts", "n_replay",
                                                       "n_holdout", "n_holdout_prompts", "censored_handling",
                                                       "calibration")} | {"judge": asdict(verdict)}
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
    print(json.dumps({k: report.get(k) for k in ("rows", "n_train_prompts", "n_replay", "n_holdout", "n_holdout_prompts", "judge",
                                                 "calibration", "shipped", "reason", "retrain_seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
