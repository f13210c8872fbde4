"""The retrain cycle's decisions: which rows count, the split by prompt, cut rows as lower bounds,
the judge, versions, rollback."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.retrain import (
    install_version,
    judge,
    median_labels,
    next_version,
    prompt_labels,
    prompt_split,
    replay_sample,
    rollback,
    usable_rows,
)


def row(i: int, reason: str = "stop", prompt: str | None = None, tokens: int = 10) -> dict:
    r = {"request_id": f"r{i}", "finish_reason": reason, "output_tokens": tokens, "end_time": float(i)}
    if prompt != "":
        r["prompt"] = prompt or f"prompt {i}"
    return r


def test_censored_rows_are_kept_as_lower_bounds_and_counted():
    rows = [row(3), row(1, "length"), row(2, "cancelled"), row(0), row(4, "error"), row(5, "rejected"), row(6, prompt=""),
            row(7, "length", prompt="")]
    pairs = usable_rows(rows)
    assert [r["request_id"] for r in pairs.rows] == ["r0", "r1", "r2", "r3"]  # time order, cut rows kept
    assert pairs.counts == {"total": 8, "used": 4, "censored_length": 1, "censored_cancelled": 1,
                            "skipped_error": 1, "skipped_rejected": 1, "skipped_no_prompt": 2}


def test_prompt_split_never_splits_a_prompt_and_keeps_repeated_prompts_for_training():
    # the case: 296 prompts asked 10 times each, asks interleaved over time
    rng = np.random.RandomState(0)
    asks = rng.permutation(np.repeat(np.arange(296), 10))
    rows = [row(i, prompt=f"p{p}") for i, p in enumerate(asks)]
    train, held = prompt_split(rows, holdout=0.2)
    train_prompts, held_prompts = {r["prompt"] for r in train}, {r["prompt"] for r in held}
    assert not train_prompts & held_prompts
    assert len(held_prompts) == 59 and len(train_prompts) == 237  # a split by row trained on 36 of them
    assert len(train) == 2370 and len(held) == 590  # every row of a prompt goes where its prompt goes
    # the judge takes the prompts first seen last
    first = {}
    for r in rows:
        first.setdefault(r["prompt"], r["end_time"])
    assert min(first[p] for p in held_prompts) > max(first[p] for p in train_prompts)
    # at least min_holdout prompts, never more than half of them
    train, held = prompt_split([row(i, prompt=f"p{i % 300}") for i in range(300)], holdout=0.1)
    assert len(held) == 50 and len(train) == 250
    train, held = prompt_split([row(i, prompt=f"p{i % 30}") for i in range(100)], holdout=0.2)
    assert len({r["prompt"] for r in held}) == 15 and len({r["prompt"] for r in train}) == 15


def test_prompt_labels_median_of_repeats_and_cut_rows_as_lower_bounds():
    lab = prompt_labels([row(0, prompt="a", tokens=1), row(1, prompt="a", tokens=5), row(2, prompt="b", tokens=3),
                         row(3, prompt="a", tokens=9), row(4, "length", prompt="c", tokens=64),
                         row(5, prompt="d", tokens=10), row(6, "cancelled", prompt="d", tokens=2), row(7, prompt="d", tokens=30)])
    assert lab.prompts == ["a", "b", "c", "d"]
    assert lab.labels.tolist() == [5.0, 3.0, 64.0, 10.0]
    assert lab.censored.tolist() == [False, False, True, True]  # any cut row: the median is only a lower bound
    assert lab.n_rows.tolist() == [3, 1, 1, 3]


def test_median_labels_one_per_prompt():
    prompts, labels = median_labels([row(0, prompt="a", tokens=1), row(1, prompt="a", tokens=5), row(2, prompt="b", tokens=3),
                                     row(3, prompt="a", tokens=9)])
    assert prompts == ["a", "b"] and labels.tolist() == [5.0, 3.0]


def test_replay_sample_avoids_held_out_prompts():
    prompts = [f"p{i}" for i in range(10)]
    chosen, labels = replay_sample(prompts, np.arange(10.0), 20, seed=0, avoid={"p3", "p4"})
    assert len(chosen) == 8 and "p3" not in chosen and labels.tolist() == [float(p[1:]) for p in chosen]
    assert len(replay_sample(prompts, np.arange(10.0), 3, seed=0, avoid=set())[0]) == 3


def test_judge_refuses_a_worse_model_and_ships_a_better_one():
    lengths = np.arange(100.0)
    rng = np.random.RandomState(0)
    good = lengths + rng.normal(0, 10, 100)
    worse = lengths + rng.normal(0, 60, 100)
    refused = judge(good, worse, lengths, margin=0.02)
    assert not refused.ship and refused.tau_new < refused.tau_old and "keeping the old version" in refused.reason
    assert judge(worse, good, lengths, margin=0.02).ship
    assert not judge(good, good + 1e-3, lengths, margin=0.02).ship  # equal is not better by the margin
    assert not judge(good, np.ones(100), lengths, margin=0.0).ship  # constant scores: undefined tau
    assert not judge([1.0], [2.0], [3.0], margin=0.0).ship


def test_versions_install_rollback_and_never_reuse_a_number(tmp_path):
    model_dir = tmp_path / "length_predictor"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.py").write_text("# backend code")
    assert next_version(model_dir) == 2
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "model.onnx").write_text("onnx")
    dest = install_version(staged, model_dir, 2, code_from=model_dir / "1")
    assert (dest / "model.py").read_text() == "# backend code" and (dest / "model.onnx").is_file()
    assert rollback(model_dir, 1) == ["2"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "retired-2"]
    assert next_version(model_dir) == 3
    with pytest.raises(FileNotFoundError):
        rollback(model_dir, 2)


def test_checkpoint_of_a_version(tmp_path, monkeypatch):
    import predictor.retrain as retrain_mod
    from predictor.model import CONFIG_FILE
    from predictor.retrain import checkpoint_of

    first = tmp_path / "checkpoint"
    monkeypatch.setattr(retrain_mod, "FIRST_CHECKPOINT", first)
    with pytest.raises(FileNotFoundError, match="make train"):
        checkpoint_of("1", tmp_path / "checkpoints")
    first.mkdir()
    (first / CONFIG_FILE).write_text("{}")
    assert checkpoint_of("1", tmp_path / "checkpoints") == first
    (tmp_path / "checkpoints" / "2").mkdir(parents=True)
    (tmp_path / "checkpoints" / "2" / CONFIG_FILE).write_text("{}")
    assert checkpoint_of("2", tmp_path / "checkpoints") == tmp_path / "checkpoints" / "2"
    with pytest.raises(FileNotFoundError):
        checkpoint_of("3", tmp_path / "checkpoints")


def test_log_calibration_pairs_each_row_with_its_prompts_score_cut_rows_as_lower_bounds():
    from predictor.retrain import log_calibration

    # prompt k answers ~10*k tokens; prompt 9's rows were all cut at 40 (max_tokens)
    rows = [{"prompt": f"p{k}", "output_tokens": 10 * k, "finish_reason": "stop"} for k in range(1, 9) for _ in range(5)]
    rows += [{"prompt": "p9", "output_tokens": 40, "finish_reason": "length"} for _ in range(5)]
    rows += [{"prompt": "unscored", "output_tokens": 1, "finish_reason": "stop"}]
    score_of = {f"p{k}": float(k) for k in range(1, 10)}
    cal = log_calibration(rows, score_of, bins=9)
    assert cal.fitted_on == 45  # one pair per scored row; the unscored prompt is left out
    assert cal.expected_tokens(3.0) == 30 and cal.expected_tokens(8.0) == 80
    assert cal.expected_tokens(9.0) >= 80  # cut at 40, a lower bound: not pulled below the exact 80s
    with pytest.raises(ValueError):
        log_calibration(rows, {})


def test_retrain_ships_the_new_versions_calibration_in_its_folder(tmp_path, monkeypatch):
    """The whole cycle with the training, export and ONNX scoring faked: the shipped version folder
    holds a calibration fitted on the new version's scores of the held-out rows."""
    import json

    import predictor.export
    import predictor.model
    import predictor.retrain as retrain_mod
    import predictor.train
    import runtime.length_predictor
    from runtime.length_calibration import load_calibration

    model_dir = tmp_path / "length_predictor"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "model.py").write_text("# backend code")
    ckpt = tmp_path / "ckpt1"
    ckpt.mkdir()
    (ckpt / "tokenizer.json").write_text("{}")
    rows = []
    for k in range(300):  # prompt k answers 5*k+1 tokens, asked twice; every tenth cut at its max_tokens
        for ask in range(2):
            cut = k % 10 == 0 and ask == 1
            rows.append({"request_id": f"{k}-{ask}", "prompt": f"p{k}", "end_time": float(k * 2 + ask),
                         "finish_reason": "length" if cut else "stop", "output_tokens": 5 * k + 1 if not cut else 3 * k + 1})
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))

    class FakeModel:
        def save(self, path, meta):
            path.mkdir(parents=True, exist_ok=True)

    class FakeRanker:
        def __init__(self, version_dir, intra_op_threads=1):
            self.new = "staged" in str(version_dir)

        def score_texts(self, texts, batch_size=16):
            return np.array([[float(t[1:]) if self.new else -float(t[1:])] for t in texts], dtype=np.float32)

    def fake_export(ckpt_dir, version_dir, real_prompts=None):
        version_dir.mkdir(parents=True)
        (version_dir / runtime.length_predictor.META_FILE).write_text("{}")

    class Tok:
        pad_id = 0

    monkeypatch.setattr(retrain_mod, "checkpoint_of", lambda version, checkpoints: ckpt)
    monkeypatch.setattr(predictor.model.LengthPredictor, "load", classmethod(lambda cls, path: (None, {"train_config": {}})))
    monkeypatch.setattr(predictor.train, "train_model", lambda *a, **k: (FakeModel(), Tok(), {}))
    monkeypatch.setattr(predictor.export, "export_checkpoint", fake_export)
    monkeypatch.setattr(runtime.length_predictor, "LengthRanker", FakeRanker)
    report = retrain_mod.retrain(log, model_dir, retrain_mod.RetrainSettings(min_rows=10), replay=([], np.zeros(0)),
                                 checkpoints=tmp_path / "checkpoints", work_dir=tmp_path / "work")
    assert report["shipped"], report["reason"]
    cal = load_calibration(model_dir / "2")
    assert cal is not None and load_calibration(model_dir / "1") is None
    assert cal.fitted_on == report["n_holdout"] == report["calibration"]["fitted_on_rows"]
    assert report["calibration"]["censored_rows"] == sum(r["finish_reason"] == "length" for r in rows
                                                         if int(r["prompt"][1:]) >= 240)
    assert cal.expected_tokens(260.0) == pytest.approx(5 * 260 + 1, rel=0.05)  # the held-out prompts' lengths
    assert json.loads((model_dir / "2" / runtime.length_predictor.META_FILE).read_text())["retrain"]["calibration"]
