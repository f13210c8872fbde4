"""The noisy oracle that stands in for a predictor of a given Kendall's tau."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.evaluate import kendall_tau
from workloads.scores import noisy_oracle_scores


@pytest.mark.parametrize("tau", [0.2, 0.5, 0.8])
def test_noisy_oracle_tau(tau: float) -> None:
    true = np.random.default_rng(0).integers(1, 1000, size=3000)
    got = kendall_tau(noisy_oracle_scores(true, tau, seed=1), true)
    assert abs(got - tau) < 0.04


def test_exact_oracle_at_tau_one() -> None:
    true = [3, 1, 2]
    assert kendall_tau(noisy_oracle_scores(true, 1.0), true) == pytest.approx(1.0)


def test_cross_fitted_scores_are_read_by_prompt_and_missing_ones_refused(tmp_path) -> None:  # noqa: ANN001
    import json

    from predictor.crossfit import prompt_key
    from workloads.scores import cross_fitted_pool_scores, shipped_source
    from workloads.traces import PromptPool

    pool = PromptPool("toy", ("a", "b"), np.array([1, 1]), np.array([5, 9]))
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"scores": {prompt_key("b"): {"score": 2.0, "fold": 1},
                                           prompt_key("a"): {"score": -1.0, "fold": 0}}}))
    assert cross_fitted_pool_scores(pool, path).tolist() == [-1.0, 2.0]
    from workloads.scores import cross_fitted_pool_folds

    assert cross_fitted_pool_folds(pool, path).tolist() == [0, 1]  # the fold model that scored each prompt
    path.write_text(json.dumps({"scores": {prompt_key("a"): {"score": 0.0, "fold": 0}}}))
    with pytest.raises(ValueError, match="1 prompts of 'toy' have no cross-fitted score"):
        cross_fitted_pool_scores(pool, path)
    with pytest.raises(FileNotFoundError, match="make crossfit"):
        cross_fitted_pool_scores(pool, tmp_path / "none.json")
    assert (shipped_source("alpaca"), shipped_source("arena")) == ("in_sample", "held_out")
