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


def test_every_row_says_what_it_trained_on():
    from predictor.compare import trained_on

    assert trained_on({"name": "prompt length (Llama-3 tokens)"}) == "nothing (not trained)"
    assert trained_on({"name": "ListMLE, 8B labels [frozen 4]"}).startswith("AlpacaEval (CV")
    assert "CASTILLO Alpaca, Dolly" in trained_on({"name": "default + CASTILLO chat prompts (Alpaca, Dolly: 1,200) as extra lists"})
    assert trained_on({"name": "x", "trained_on": "CASTILLO only"}) == "CASTILLO only"


def test_prior_rows_judge_held_out_sets_and_never_train_on_alpaca_eval():
    from predictor.compare import prior_rows, zscore

    rng = np.random.RandomState(0)
    w = rng.normal(size=8)
    xs = {n: rng.normal(size=(m, 8)) for n, m in (("train", 300), ("alpaca", 60), ("arena", 40), ("DollyDataset", 50), ("Mbpp", 50))}
    true = {n: x @ w for n, x in xs.items()}
    rank = true["train"].argsort().argsort() / 299.0
    cs = {"x_train": xs["train"], "multi": rank, "llama31": rank, "multi_per_set": rank, "n_train": 300,
          "held": {n: {"prompts": [f"{n}{i}" for i in range(50)], "x": xs[n], "y": np.exp(true[n] / 3)} for n in ("DollyDataset", "Mbpp")}}
    y = np.exp(true["alpaca"] / 3)
    rows = prior_rows(None, cs, xs["alpaca"], y, np.arange(60) % 5, xs["arena"])
    assert len(rows) == 5 and all("trained_on" in r and len(r["arena_scores"]) == 40 for r in rows)
    assert all(r["castillo_DollyDataset_tau"] > 0.5 and r["castillo_Mbpp_tau"] > 0.5 for r in rows)  # retrieval is coarser
    assert rows[0]["castillo_DollyDataset_tau"] > 0.8 and rows[4]["castillo_Mbpp_tau"] > 0.8
    assert rows[0]["cv_tau"] > 0.8  # the prior alone is judged on every AlpacaEval prompt: it never trained on them
    assert np.allclose([zscore(np.array([1.0, 2.0, 3.0])).mean(), zscore(np.array([1.0, 2.0, 3.0])).std()], [0.0, 1.0])
