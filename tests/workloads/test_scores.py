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
