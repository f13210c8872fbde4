"""From a predictor score (a rank, not a length) to expected output tokens: a monotone map fitted on
(score, answer length) pairs and shipped in the predictor's version folder as `calibration.json`,
so each retrain ships its own (predictor.calibration fits it; predictor.export and predictor.retrain
write it). Serving reads it here, free of Triton.

The map is quantile mapping made monotone: the scores are cut into equal-count bins, each bin's
median score is a knot whose value is the bin's median length, the knot values are made
non-decreasing by pooling adjacent violators (isotonic regression on the bin medians), and scores in
between are interpolated linearly (clamped at the ends). A NaN score (the predictor was out:
runtime.predictor_fallback) gets the median length of all.

Censored pairs (a logged answer cut by `max_tokens` or a cancel: its length is only a lower bound)
enter as lower bounds: each median is then the Kaplan-Meier median, which uses a cut row as "longer
than its bound" instead of dropping it (dropping hides the longest answers, counting it at its bound
pulls the median down). Without censored pairs it is the ordinary median.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

CALIBRATION_FILE = "calibration.json"


def pool_adjacent_violators(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """The non-decreasing sequence closest to `values` in weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, weights):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return [mean for mean, _, count in blocks for _ in range(count)]


def km_median(lengths: Sequence[float], censored: Sequence[bool] | None = None) -> tuple[float, bool]:
    """The Kaplan-Meier median of lengths some of which are lower bounds (`censored`): the first
    length where the estimated share still longer drops to one half or below (midway to the next
    when exactly one half, as np.median), and True. When it never does (too many cut rows): the
    longest length seen, a lower bound only, and False."""
    y = np.asarray(lengths, float)
    c = np.zeros(len(y), bool) if censored is None else np.asarray(censored, bool)
    if len(y) == 0:
        raise ValueError("no lengths")
    events = np.unique(y[~c])
    survival = 1.0
    for i, t in enumerate(events):
        at_risk = int(np.sum(y >= t))  # a row cut at t was still running at t
        survival *= 1.0 - int(np.sum((y == t) & ~c)) / at_risk
        if abs(survival - 0.5) < 1e-12 and i + 1 < len(events):
            return float((t + events[i + 1]) / 2), True
        if survival <= 0.5 + 1e-12:
            return float(t), True
    return float(y.max()), False


def censored_median(lengths: Sequence[float], censored: Sequence[bool] | None = None) -> float:
    """km_median's value (a lower bound where too many rows were cut)."""
    return km_median(lengths, censored)[0]


@dataclass(frozen=True)
class LengthCalibration:
    scores: tuple[float, ...]  # knots, increasing
    tokens: tuple[float, ...]  # expected answer length at each knot, non-decreasing
    fallback_tokens: float  # for a NaN score
    fitted_on: int = 0  # pairs it was fitted on

    @classmethod
    def fit(cls, scores: Sequence[float], lengths: Sequence[float], bins: int = 20,
            censored: Sequence[bool] | None = None) -> "LengthCalibration":
        """`censored`: per pair, whether its length is only a lower bound (Kaplan-Meier medians)."""
        s, y = np.asarray(scores, float), np.asarray(lengths, float)
        c = np.zeros(len(s), bool) if censored is None else np.asarray(censored, bool)
        keep = np.isfinite(s) & np.isfinite(y)
        s, y, c = s[keep], y[keep], c[keep]
        if len(s) == 0:
            raise ValueError("no (score, length) pairs to fit a calibration on")
        order = np.argsort(s, kind="stable")
        parts = [p for p in np.array_split(order, min(bins, len(s))) if len(p)]
        knots = [float(np.median(s[p])) for p in parts]
        medians, floor = [], -math.inf
        for p in parts:  # a bin known only as "at least v" is as long as its shorter-scored neighbours when they are longer
            value, exact = km_median(y[p], c[p])
            medians.append(value if exact else max(value, floor))
            floor = max(floor, medians[-1])
        values = pool_adjacent_violators(medians, [len(p) for p in parts])
        merged: dict[float, list[float]] = {}  # equal knots (tied scores) keep one value
        for knot, value in zip(knots, values):
            merged.setdefault(knot, []).append(value)
        ks = sorted(merged)
        return cls(tuple(ks), tuple(float(np.mean(merged[k])) for k in ks), censored_median(y, c), int(len(s)))

    def expected_tokens(self, score: float, max_tokens: int | None = None) -> float:
        """The expected answer length of a request with this score, at most its `max_tokens`."""
        value = self.fallback_tokens if not math.isfinite(score) else float(np.interp(score, self.scores, self.tokens))
        return min(value, float(max_tokens)) if max_tokens else value

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LengthCalibration":
        data = json.loads(text)
        scores, tokens = tuple(map(float, data["scores"])), tuple(map(float, data["tokens"]))
        if not scores or len(scores) != len(tokens) or any(a >= b for a, b in zip(scores, scores[1:])) \
                or any(a > b for a, b in zip(tokens, tokens[1:])):
            raise ValueError("calibration: knots must increase and their values must not decrease")
        return cls(scores, tokens, float(data["fallback_tokens"]), int(data.get("fitted_on", 0)))


def load_calibration(version_dir: str | Path) -> LengthCalibration | None:
    """The version folder's calibration, or None when it has none (older versions) or it is unreadable."""
    try:
        return LengthCalibration.from_json((Path(version_dir) / CALIBRATION_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


class CalibrationByVersion:
    """The serving version's calibration, loaded once per version (the scheduler asks per request)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self._loaded: dict[str, LengthCalibration | None] = {}

    def __call__(self, version: str | None) -> LengthCalibration | None:
        if version is None:
            return None
        if version not in self._loaded:
            self._loaded[version] = load_calibration(self.model_dir / version)
        return self._loaded[version]
