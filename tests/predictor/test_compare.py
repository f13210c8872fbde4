"""Evaluation-table helpers: folds split by prompt, balanced and seeded; ridge baseline is exact."""

from __future__ import annotations

import numpy as np

from predictor.compare import folds_by_prompt, ridge_fit_predict, subsample_prompts
from predictor.evaluate import kendall_tau
from predictor.interchange import Example


def test_folds_are_balanced_seeded_and_cover_every_prompt():
    f = folds_by_prompt(805, 5, seed=0)
    assert sorted(np.bincount(f).tolist()) == [161] * 5
    assert (f == folds_by_prompt(805, 5, seed=0)).all()
    assert not (f == folds_by_prompt(805, 5, seed=1)).all()


def test_ridge_recovers_a_linear_target():
    rng = np.random.RandomState(0)
    x = rng.randn(200, 5)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 4.0
    pred = ridge_fit_predict(x[:150], y[:150], x[150:], alpha=1e-6)
    np.testing.assert_allclose(pred, y[150:], atol=1e-4)


def test_tau_is_scipy_kendall_tau_b():
    assert kendall_tau(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == 1.0
    assert kendall_tau(np.array([1, 2, 3, 4]), np.array([40, 30, 20, 10])) == -1.0
    assert abs(kendall_tau(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) - 2 / 3) < 1e-9


def test_subsample_keeps_every_row_of_a_seeded_fraction_of_the_prompts():
    rows = [Example(f"p{i % 20}", i, f"g{i // 20}", "s") for i in range(100)]  # 20 prompts x 5 generators
    half = subsample_prompts(rows, 0.5, seed=3)
    prompts = {e.prompt for e in half}
    assert len(prompts) == 10 and len(half) == 50  # all five generators' rows of each chosen prompt
    assert half == subsample_prompts(rows, 0.5, seed=3)
    assert prompts != {e.prompt for e in subsample_prompts(rows, 0.5, seed=4)}
    assert subsample_prompts(rows, 1.0, seed=3) is rows
