"""The retrain cycle's decisions: which rows count, the split by time, the judge, versions, rollback."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.retrain import (
    install_version,
    judge,
    median_labels,
    next_version,
    replay_sample,
    rollback,
    time_split,
    usable_rows,
)


def row(i: int, reason: str = "stop", prompt: str | None = None, tokens: int = 10) -> dict:
    r = {"request_id": f"r{i}", "finish_reason": reason, "output_tokens": tokens, "end_time": float(i)}
    if prompt != "":
        r["prompt"] = prompt or f"prompt {i}"
    return r


def test_censored_rows_are_dropped_and_counted():
    rows = [row(3), row(1, "length"), row(2, "cancelled"), row(0), row(4, "error"), row(5, "rejected"), row(6, prompt="")]
    pairs = usable_rows(rows)
    assert [r["request_id"] for r in pairs.rows] == ["r0", "r3"]  # time order
    assert pairs.counts == {"total": 7, "used": 2, "censored_length": 1, "censored_cancelled": 1,
                            "skipped_error": 1, "skipped_rejected": 1, "skipped_no_prompt": 1}


def test_time_split_holds_out_the_newest_and_never_trains_on_a_held_out_prompt():
    rows = [row(i, prompt=f"p{i % 30}") for i in range(100)]
    train, held = time_split(rows, holdout=0.2)
    assert [r["end_time"] for r in held] == [float(i) for i in range(50, 100)]  # min_holdout 50 wins over 20%
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    train, held = time_split([row(i) for i in range(1000)], holdout=0.2)
    assert len(held) == 200 and max(r["end_time"] for r in train) < min(r["end_time"] for r in held)


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
