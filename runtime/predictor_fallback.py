"""Predictor failure is not an outage: score with the length predictor, or fall back.

As an ensemble step, a failed or unloaded `length_predictor` failed every request. Preprocessing
now calls it by BLS through `FallbackScorer`: a failure, or no answer within `timeout_s`, gives the
requests of that batch no score (NaN), counted and logged once per episode ("unavailable" when it
starts, "back" when a call succeeds again). The scheduler turns a missing score into
`FallbackRank`'s position: the running mean of recent real scores, the same for every request of an
episode, so that those requests are served in arrival order (ties break by arrival) at a typical
request's rank, neither jumping the queue nor starving behind it. Ranking resumes by itself with
the first successful call.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


class FallbackScorer:
    """`score(ids, mask)` → float32 scores [n], NaN for every row when the predictor failed."""

    def __init__(
        self,
        call: Callable[[np.ndarray, np.ndarray], np.ndarray],
        timeout_s: float,
        report: Callable[[str], None] = log.warning,
    ) -> None:
        self.call = call
        self.timeout_s = timeout_s
        self.report = report  # where the once-per-episode lines go (the Triton model: its logger)
        self.fallbacks = 0  # requests scored by fallback, for the metric
        self.episodes = 0
        self.failing = False
        # one worker: a hung call makes the next ones time out too, which is the right answer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predictor")

    def score(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        rows = ids.shape[0]
        try:
            scores = self._executor.submit(self.call, ids, mask).result(timeout=self.timeout_s)
            scores = np.asarray(scores, dtype=np.float32).reshape(-1)
            if scores.size != rows:
                raise ValueError(f"{scores.size} scores for {rows} prompts")
        except Exception as exc:  # includes the timeout
            self.fallbacks += rows
            if not self.failing:
                self.failing, self.episodes = True, self.episodes + 1
                reason = f"no answer within {self.timeout_s:g} s" if isinstance(exc, FutureTimeout) else repr(exc)
                self.report(f"length predictor unavailable ({reason}): requests queue in arrival order until it is back")
            return np.full(rows, np.nan, dtype=np.float32)
        if self.failing:
            self.failing = False
            self.report(f"length predictor back after {self.fallbacks} fallback requests so far: ranking resumed")
        return scores


class FallbackRank:
    """The scheduler's side: a real score passes (and moves the running mean), a missing one takes
    the running mean, frozen while the predictor is out."""

    def __init__(self, weight: float = 0.05, initial: float = 0.0) -> None:
        self.weight = weight
        self.mean = initial
        self._seen = False

    def __call__(self, score: float) -> float:
        if math.isnan(score):
            return self.mean
        if math.isfinite(score):
            self.mean = score if not self._seen else (1 - self.weight) * self.mean + self.weight * score
            self._seen = True
        return score
