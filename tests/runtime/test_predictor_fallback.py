"""Predictor failure costs ranking, not requests: NaN scores on failure or timeout, one log line per
episode, and a frozen fallback rank that keeps such requests in arrival order."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from runtime.predictor_fallback import FallbackRank, FallbackScorer


class FlakyPredictor:
    def __init__(self) -> None:
        self.mode = "ok"
        self.release = threading.Event()

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.mode == "fail":
            raise RuntimeError("Stub process 'length_predictor_0_0' is not healthy.")
        if self.mode == "hang":
            self.release.wait(5)
        return mask.sum(axis=1).astype(np.float32)


def test_scores_pass_through_while_the_predictor_answers():
    lines: list[str] = []
    scorer = FallbackScorer(FlakyPredictor(), timeout_s=1.0, report=lines.append)
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    assert scorer.score(np.zeros_like(mask), mask).tolist() == [2.0, 3.0]
    assert scorer.fallbacks == 0 and not lines


def test_failures_fall_back_count_every_request_and_log_once_per_episode():
    lines: list[str] = []
    predictor = FlakyPredictor()
    scorer = FallbackScorer(predictor, timeout_s=1.0, report=lines.append)
    mask = np.ones((3, 2), dtype=np.int64)
    predictor.mode = "fail"
    for _ in range(4):
        assert np.isnan(scorer.score(mask, mask)).all()
    assert scorer.fallbacks == 12 and scorer.episodes == 1 and len(lines) == 1
    assert "length predictor unavailable" in lines[0] and "not healthy" in lines[0]
    predictor.mode = "ok"
    assert scorer.score(mask, mask).tolist() == [2.0, 2.0, 2.0]  # ranking resumes by itself
    assert len(lines) == 2 and "ranking resumed" in lines[1]
    predictor.mode = "fail"
    scorer.score(mask, mask)
    assert scorer.episodes == 2 and len(lines) == 3


def test_a_predictor_that_does_not_answer_in_time_falls_back():
    lines: list[str] = []
    predictor = FlakyPredictor()
    predictor.mode = "hang"
    scorer = FallbackScorer(predictor, timeout_s=0.05, report=lines.append)
    mask = np.ones((1, 2), dtype=np.int64)
    assert np.isnan(scorer.score(mask, mask)).all()
    assert "no answer within 0.05 s" in lines[0]
    predictor.release.set()


def test_a_wrong_number_of_scores_is_a_failure_too():
    scorer = FallbackScorer(lambda ids, mask: np.zeros(1), timeout_s=1.0, report=lambda line: None)
    assert np.isnan(scorer.score(np.ones((2, 2)), np.ones((2, 2)))).all()


def test_fallback_rank_is_the_running_mean_frozen_during_an_episode():
    rank = FallbackRank(weight=0.5)
    assert rank(float("nan")) == 0.0  # nothing seen yet
    assert rank(4.0) == 4.0 and rank(2.0) == 2.0  # real scores pass through
    assert rank(float("nan")) == 3.0 == rank(float("nan"))  # equal: ties break by arrival
    assert rank(float("-inf")) == float("-inf") and rank(float("nan")) == 3.0  # non-finite never moves it
    assert not math.isnan(rank(float("nan")))


def test_fallback_rank_moves_its_mean_by_a_twentieth_by_default():
    rank = FallbackRank()
    assert rank(float("nan")) == 0.0  # the initial mean
    rank(4.0)  # the first score is the mean
    rank(2.0)
    assert rank(float("nan")) == pytest.approx(0.95 * 4.0 + 0.05 * 2.0)


def test_the_predictor_gets_the_ids_and_its_scores_come_back_flat_float32():
    seen = []

    def predictor(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        seen.append(threading.current_thread().name)
        return (ids * mask).sum(axis=1, keepdims=True).astype(np.float64)  # [n, 1] float64

    scorer = FallbackScorer(predictor, timeout_s=1.0)
    scores = scorer.score(np.array([[3, 4], [5, 6]]), np.array([[1, 1], [1, 0]]))
    assert scores.tolist() == [7.0, 5.0] and scores.dtype == np.float32 and scores.shape == (2,)
    assert seen[0].startswith("predictor")  # its own worker thread, named for thread dumps


def test_a_wrong_count_is_reported_and_failures_are_float32_nans_one_per_row():
    lines: list[str] = []
    scorer = FallbackScorer(lambda ids, mask: np.zeros(1), timeout_s=1.0, report=lines.append)
    scores = scorer.score(np.ones((2, 3)), np.ones((2, 3)))
    assert scores.dtype == np.float32 and scores.shape == (2,) and np.isnan(scores).all()
    assert "1 scores for 2 prompts" in lines[0]


def test_one_worker_a_hung_call_makes_the_next_time_out_too():
    predictor = FlakyPredictor()
    predictor.mode = "hang"
    scorer = FallbackScorer(predictor, timeout_s=0.05, report=lambda line: None)
    mask = np.ones((1, 2))
    assert np.isnan(scorer.score(mask, mask)).all()
    predictor.mode = "ok"  # a fresh call would answer, but the only worker still waits on the hung one
    assert np.isnan(scorer.score(mask, mask)).all()
    predictor.release.set()
    scorer._executor.shutdown(wait=True)
