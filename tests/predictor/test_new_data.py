"""The opt-in use of the new data (issue 11): CASTILLO rows and lists drawn within one data set,
blend labels, the denoised Arena-Hard label, and cache keys of earlier rows left unchanged."""

from __future__ import annotations

import json

import numpy as np

from predictor.compare import METHODS, arena_denoised, config_key, normal_ceiling
from predictor.data import CASTILLO_FILE, load_castillo, median_by_source
from predictor.interchange import Example
from predictor.train import TrainConfig, _lists, _sortish_lists, aggregate_labels, with_extra_lists


def _castillo(tmp_path):
    path = tmp_path / CASTILLO_FILE
    path.parent.mkdir(parents=True)
    rows = [{"dataset": "Alpaca", "prompt": "a", "output_tokens_samples": [1, 2, 15000]},
            {"dataset": "Mbpp", "prompt": "b", "output_tokens_samples": [5, 7, 9]},
            {"dataset": "DollyDataset", "prompt": "c", "output_tokens_samples": [4, 4, 4]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def test_castillo_labels_are_medians_per_source_and_chat_selects_two_sets(tmp_path):
    root = _castillo(tmp_path)
    prompts, labels, groups = median_by_source(load_castillo(root))
    assert prompts == ["a", "b", "c"] and labels.tolist() == [2.0, 7.0, 4.0]  # the 15,000-token run does not count
    assert groups == ["castillo/Alpaca", "castillo/Mbpp", "castillo/DollyDataset"]
    p, l, g = with_extra_lists(["x"], np.array([3.0]), "castillo-chat", root)
    assert p == ["x", "a", "c"] and l.tolist() == [3.0, 2.0, 4.0] and g == ["main", "castillo/Alpaca", "castillo/DollyDataset"]


def test_lists_stay_within_one_group_and_no_groups_is_the_old_draw():
    lengths = np.arange(1.0, 101.0)
    groups = ["main"] * 60 + ["castillo/Mbpp"] * 40
    lists = _lists(lengths, 8, 0.25, np.random.RandomState(0), groups)
    assert sorted(np.concatenate(lists).tolist()) == list(range(100))
    assert all(len({groups[i] for i in idx}) == 1 for idx in lists)
    old = _sortish_lists(lengths, 8, 0.25, np.random.RandomState(0))
    new = _lists(lengths, 8, 0.25, np.random.RandomState(0), None)
    assert all((a == b).all() for a, b in zip(old, new))


def test_blend_labels_are_the_geometric_mean_of_own_length_and_the_others_median():
    rows = [Example("p", 99, "T"), Example("p", 9, "A"), Example("p", 9999, "B"), Example("p", 999, "C"),
            Example("q", 9, "A")]
    prompts, labels = aggregate_labels(rows, "blend", "T")
    assert prompts == ["p", "q"]
    np.testing.assert_allclose(labels, [np.expm1((np.log(100) + np.log(1000)) / 2), 9.0])


def test_denoised_arena_label_is_the_mean_of_runs_and_the_ceiling_grows_with_runs():
    a = [Example("p", 10), Example("q", 30)]
    b = [Example("q", 50), Example("p", 20)]
    assert arena_denoised(a, [a, b]).tolist() == [15.0, 40.0]
    assert arena_denoised(a, [a, b[:1]]) is None
    assert 0.68 < normal_ceiling(0.68) < normal_ceiling(0.68, 2) < 1.0
    assert abs(normal_ceiling(1.0) - 1.0) < 1e-9


def test_earlier_rows_keep_their_cache_keys_and_new_rows_do_not_change_the_default():
    name = "ListMLE, family-median labels, 4 trainable layers (default, `make train`)"
    assert METHODS[name] == {}
    assert config_key(name, TrainConfig(), 5, 0) == "b1c63cc25339"  # as in results/predictor_eval.json
    assert config_key(name, TrainConfig(), 5, 0, {}) == "b1c63cc25339"
    assert config_key(name, TrainConfig(), 5, 0, {"_extra_lists": "castillo"}) != "b1c63cc25339"
    assert TrainConfig().labels == "median"  # `make train` stays on family-median labels, no CASTILLO
