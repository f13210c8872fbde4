"""Score -> expected tokens: monotone, interpolated between knots, clamped at the ends, capped at
max_tokens, the median for a NaN score; the file round-trips and a bad one is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.length_calibration import (
    CALIBRATION_FILE, CalibrationByVersion, LengthCalibration, censored_median, load_calibration,
    pool_adjacent_violators,
)


def test_pool_adjacent_violators_makes_values_non_decreasing():
    assert pool_adjacent_violators([1, 3, 2, 4], [1, 1, 1, 1]) == [1, 2.5, 2.5, 4]
    assert pool_adjacent_violators([5, 1], [3, 1]) == [4, 4]
    assert pool_adjacent_violators([], []) == []


def test_fit_is_monotone_and_follows_the_lengths():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=2000)
    lengths = np.exp(5 + scores + rng.normal(scale=0.5, size=2000))
    cal = LengthCalibration.fit(scores, lengths, bins=20)
    assert all(a <= b for a, b in zip(cal.tokens, cal.tokens[1:]))
    assert cal.expected_tokens(-3) < cal.expected_tokens(0) < cal.expected_tokens(3)
    assert cal.expected_tokens(0) == pytest.approx(math.exp(5), rel=0.25)
    assert cal.expected_tokens(100) == cal.tokens[-1] and cal.expected_tokens(-100) == cal.tokens[0]
    assert cal.expected_tokens(3, max_tokens=50) == 50
    assert cal.expected_tokens(float("nan")) == cal.fallback_tokens == pytest.approx(np.median(lengths))
    assert cal.fitted_on == 2000


def test_tied_scores_and_nan_pairs():
    cal = LengthCalibration.fit([1.0, 1.0, 1.0, float("nan"), 2.0], [10, 20, 30, 99, 40], bins=5)
    assert list(cal.scores) == [1.0, 2.0] and cal.expected_tokens(1.0) == 20
    with pytest.raises(ValueError):
        LengthCalibration.fit([float("nan")], [1])


def test_the_file_round_trips_and_bad_or_missing_ones_give_none(tmp_path):
    cal = LengthCalibration.fit([0, 1, 2, 3], [10, 20, 30, 40], bins=4)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / CALIBRATION_FILE).write_text(cal.to_json())
    assert load_calibration(tmp_path / "1") == cal
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / CALIBRATION_FILE).write_text('{"scores": [1, 0], "tokens": [1, 2], "fallback_tokens": 1}')
    assert load_calibration(tmp_path / "2") is None
    by_version = CalibrationByVersion(tmp_path)
    assert by_version("1") == cal and by_version("2") is None and by_version("3") is None and by_version(None) is None


def test_censored_median_is_the_plain_median_without_cut_rows():
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 10, 101):
        y = rng.integers(1, 50, size=n).astype(float)
        assert censored_median(y) == pytest.approx(np.median(y))
        assert censored_median(y, np.zeros(n, bool)) == pytest.approx(np.median(y))


def test_censored_median_counts_cut_rows_as_longer_than_their_bound():
    # four exact answers of 10..40, four cut at 5 tokens (early cancels) and four cut at 100 (max_tokens)
    y = [10, 20, 30, 40, 5, 5, 5, 5, 100, 100, 100, 100]
    c = [False] * 4 + [True] * 8
    at_bound = float(np.median(y))  # counting cut rows as exact lengths
    dropped = float(np.median(y[:4]))  # leaving them out
    km = censored_median(y, c)
    assert km > dropped and km >= at_bound
    # every answer cut long: the median is at least the bound, and we say no more than the bound
    assert censored_median([100, 100, 100], [True] * 3) == 100


def test_fit_with_censored_pairs_raises_the_long_end():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=3000)
    true = np.exp(5 + scores + rng.normal(scale=0.3, size=3000))
    cut = true > 400  # max_tokens 400
    observed = np.minimum(true, 400)
    naive = LengthCalibration.fit(scores, observed)
    aware = LengthCalibration.fit(scores, observed, censored=cut)
    assert aware.expected_tokens(1.0) == pytest.approx(float(np.exp(6)), rel=0.2)
    assert aware.tokens[-1] >= naive.tokens[-1]
    assert aware.expected_tokens(-1.0) == pytest.approx(naive.expected_tokens(-1.0))  # no cut rows there
