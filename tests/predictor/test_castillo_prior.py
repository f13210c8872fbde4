"""The CASTILLO prior: a rank target across models with different tokenizers, whole-data-set
holdout, and the light heads (ridge, nearest neighbours)."""

from __future__ import annotations

import json

import numpy as np

from predictor.castillo_prior import (ALL_MODELS_FILE, knn_mean, load_all_models, ridge_fit, split_by_dataset,
                                      typical_length_target)


def test_target_is_a_mean_percentile_that_ignores_tokenizer_scale_and_missing_models():
    med = np.array([[10.0, 1000.0, np.nan],
                    [20.0, 3000.0, 5.0],
                    [30.0, 2000.0, 9.0]])
    t = typical_length_target(med)
    # model 0: 0, .5, 1; model 1: 0, 1, .5; model 2 (answered two): -, 0, 1
    assert np.allclose(t, [0.0, 0.5, 2.5 / 3])
    assert np.allclose(typical_length_target(med * [1, 100, 7]), t)  # per-model scale does not matter


def test_load_and_split_by_whole_data_set(tmp_path):
    f = tmp_path / ALL_MODELS_FILE
    f.parent.mkdir(parents=True)
    rows = [{"dataset": "Alpaca", "prompt": "a", "samples": {"m1": [1, 2, 3], "m2": [5]}},
            {"dataset": "Mbpp", "prompt": "b", "samples": {"m1": [7]}},
            {"dataset": "Alpaca", "prompt": "a", "samples": {"m1": [100]}},  # a repeated prompt: first row wins
            {"dataset": "DollyDataset", "prompt": "c", "samples": {"m2": [4, 6]}}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ps = load_all_models(tmp_path)
    assert ps.prompts == ["a", "b", "c"] and ps.models == ["m1", "m2"]
    assert np.allclose(ps.medians, [[2, 5], [7, np.nan], [np.nan, 5]], equal_nan=True)
    train, held = split_by_dataset(ps)
    assert train.prompts == ["a"] and held.prompts == ["b", "c"] and held.datasets == ["Mbpp", "DollyDataset"]


def test_light_heads_recover_a_linear_target_and_neighbours():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + 3.0
    w, b = ridge_fit(x, y, alpha=1e-6)
    assert np.allclose(x @ w + b, y, atol=1e-4)
    xt = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    assert np.allclose(knn_mean(xt, np.array([10.0, 20.0, 30.0]), np.array([[1.0, 0.05], [0.0, 2.0]]), k=2), [20.0, 25.0])


def test_held_out_labels_are_the_judge_models_medians_of_the_held_out_sets():
    from predictor.castillo_prior import JUDGE_MODEL, PromptSet, held_out_labels

    ps = PromptSet(["a", "b", "c", "d"], ["Alpaca", "Mbpp", "Mbpp", "DollyDataset"], ["m", JUDGE_MODEL],
                   np.array([[1.0, 2.0], [3.0, 4.0], [5.0, np.nan], [7.0, 8.0]]))
    out = held_out_labels(ps)
    assert out["Mbpp"][0] == ["b"] and out["Mbpp"][1].tolist() == [4.0]  # c: the judge model never answered it
    assert out["DollyDataset"][0] == ["d"] and out["DollyDataset"][1].tolist() == [8.0]
