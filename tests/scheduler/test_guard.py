"""The ranking guard: censored Kendall's tau, trust only past the floor by two standard errors,
distrust as soon as tau falls below it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scheduler.guard import GuardConfig, RankingGuard, censored_kendall_tau, null_tau_se


def test_tau_of_complete_answers_is_kendalls():
    tau, pairs = censored_kendall_tau(np.array([1.0, 2.0, 3.0]), np.array([10, 20, 30]), np.zeros(3, bool))
    assert (tau, pairs) == (1.0, 3)
    tau, _ = censored_kendall_tau(np.array([3.0, 2.0, 1.0]), np.array([10, 20, 30]), np.zeros(3, bool))
    assert tau == -1.0


def test_a_cut_answer_is_a_lower_bound_and_two_cut_answers_are_not_compared():
    scores = np.array([1.0, 2.0, 3.0])
    # row 0 was cut at 50 tokens: it is longer than row 1 (20, complete), unknown against row 2 (80)
    tau, pairs = censored_kendall_tau(scores, np.array([50, 20, 80]), np.array([True, False, False]))
    # known pairs: (0 > 1): scores say 0 < 1, discordant; (2 > 1) concordant; (0, 2) unknown
    assert pairs == 2 and tau == 0.0
    tau, pairs = censored_kendall_tau(scores, np.array([50, 20, 80]), np.array([True, False, True]))
    assert pairs == 2  # (2 > 1) still known: 2 generated 80 > 20, and 1 is complete; (0, 2) both cut
    assert math.isnan(censored_kendall_tau(scores[:2], np.array([5, 9]), np.array([True, True]))[0])


def test_score_ties_count_half_each_way():
    tau, pairs = censored_kendall_tau(np.array([1.0, 1.0]), np.array([10, 20]), np.zeros(2, bool))
    assert (tau, pairs) == (0.0, 1)


def feed(guard: RankingGuard, scores: np.ndarray, lengths: np.ndarray) -> None:
    for s, n in zip(scores, lengths):
        guard.observe(float(s), int(n), "stop")


def test_guard_distrusts_until_the_ranking_is_shown_good_and_never_trusts_random_scores():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1000, size=400)
    random_guard = RankingGuard(GuardConfig(floor=0.1, window=200, min_samples=50, every=10))
    assert not random_guard.trusted  # starts in arrival order
    feed(random_guard, rng.standard_normal(400), lengths)
    assert not random_guard.trusted and random_guard.recoveries_total == 0
    assert abs(random_guard.tau) < 4 * null_tau_se(200)
    good = RankingGuard(GuardConfig(floor=0.1, window=200, min_samples=50, every=10))
    feed(good, lengths + rng.normal(0, 200, size=400), lengths)
    assert good.trusted and good.tau > 0.5 and good.stats().samples == 200


def test_guard_falls_back_when_the_ranking_breaks_and_recovers():
    rng = np.random.default_rng(1)
    guard = RankingGuard(GuardConfig(floor=0.2, window=100, min_samples=50, every=5))
    lengths = rng.integers(1, 1000, size=300)
    feed(guard, lengths.astype(float), lengths)
    assert guard.trusted
    feed(guard, -lengths.astype(float), lengths)  # the predictor turns upside down
    assert not guard.trusted and guard.fallbacks_total == 1
    feed(guard, lengths.astype(float), lengths)
    assert guard.trusted and guard.recoveries_total == 2  # the first trust counts as a recovery too


def test_floor_zero_turns_the_guard_off():
    guard = RankingGuard(GuardConfig(floor=0.0))
    assert guard.trusted
    feed(guard, np.zeros(50), np.arange(50))
    assert guard.trusted and math.isnan(guard.tau)


def test_bad_settings_fail():
    with pytest.raises(ValueError):
        GuardConfig(window=10, min_samples=20)
