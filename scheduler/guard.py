"""The ranking guard: the scheduler measures its own ranking quality live and steps aside when the
ranking fails.

Shortest-predicted-first only pays while the predictor ranks: with scores no better than chance it
reorders at random, which buys nothing on the mean and costs the tail. The guard keeps the last
`window` finished requests (score, tokens generated, whether the answer was cut) and computes
Kendall's tau between scores and generated lengths over the pairs whose order is known:

* two answers that ended on their own (`stop`): ordered by their lengths (ties: no information);
* one cut (`length` / `cancelled`: its true length is at least what it generated) and one that
  ended: known only when the cut one already generated more than the other's whole answer;
* two cut answers: unknown, left out.

tau = (concordant - discordant) / (concordant + discordant) over those pairs (score ties count
half each way). The guard starts distrusting (FCFS) and trusts the ranking once it has
`min_samples` rows and tau is above `floor` by two standard errors (under no association tau's
standard error is about sqrt(2(2n+5) / (9n(n-1)))), so a random predictor is not trusted by a lucky
draw; it distrusts again as soon as tau falls below `floor`. Pure and clock-free: the served
scheduler and the simulator feed it the same rows.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

CENSORED_REASONS = frozenset({"length", "cancelled"})


def censored_kendall_tau(scores: np.ndarray, lengths: np.ndarray, censored: np.ndarray) -> tuple[float, int]:
    """Kendall's tau over the pairs whose order of true length is known, and how many pairs that is.
    `censored[i]`: the true length of i is only known to be >= lengths[i]. NaN when no pair is known."""
    s = np.asarray(scores, dtype=float)
    g = np.asarray(lengths, dtype=float)
    c = np.asarray(censored, dtype=bool)
    longer = g[:, None] > g[None, :]  # i generated more than j
    # true_i > true_j is known when i generated more than j and j's answer is complete
    known_longer = longer & ~c[None, :]
    ds = np.sign(s[:, None] - s[None, :])
    concordant = float(((ds > 0) & known_longer).sum()) + 0.5 * float(((ds == 0) & known_longer).sum())
    discordant = float(((ds < 0) & known_longer).sum()) + 0.5 * float(((ds == 0) & known_longer).sum())
    pairs = int(known_longer.sum())
    if pairs == 0:
        return math.nan, 0
    return (concordant - discordant) / pairs, pairs


def null_tau_se(n: int) -> float:
    """Standard error of Kendall's tau over n rows when scores and lengths are unrelated."""
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) if n > 1 else math.inf


@dataclass(frozen=True)
class GuardConfig:
    """`floor`: the tau below which ordering falls back to arrival order (0 turns the guard off:
    always trusted). `window`: finished requests the tau is measured over. `min_samples`: rows
    before the ranking is trusted at all. `every`: recompute tau every this many finishes."""

    floor: float = 0.1
    window: int = 200
    min_samples: int = 50
    every: int = 10

    def __post_init__(self) -> None:
        if self.window < 2 or self.min_samples < 2 or self.min_samples > self.window or self.every < 1:
            raise ValueError("guard needs 2 <= min_samples <= window and every >= 1")

    @property
    def enabled(self) -> bool:
        return self.floor > 0


@dataclass(frozen=True)
class GuardStats:
    """What /metrics shows: tau over how many rows (and known pairs) of which window, and the state."""

    tau: float
    samples: int
    pairs: int
    window: int
    floor: float
    trusted: bool
    fallbacks_total: int  # times the guard went from trusting to distrusting
    recoveries_total: int  # times it went from distrusting to trusting


class RankingGuard:
    """Live Kendall's tau of finished requests' scores against their lengths, and the trust flag."""

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        self._rows: deque[tuple[float, int, bool]] = deque(maxlen=self.config.window)
        self._since = 0
        self.tau = math.nan
        self.pairs = 0
        self.trusted = not self.config.enabled
        self.fallbacks_total = 0
        self.recoveries_total = 0

    def observe(self, score: float, generated: int, finish_reason: str) -> bool | None:
        """Record one finished request. Returns the new trust flag when it changed, else None."""
        self._rows.append((float(score), int(generated), finish_reason in CENSORED_REASONS))
        self._since += 1
        if not self.config.enabled or self._since < self.config.every:
            return None
        self._since = 0
        return self._update()

    def _update(self) -> bool | None:
        rows = np.array(self._rows, dtype=float)
        self.tau, self.pairs = censored_kendall_tau(rows[:, 0], rows[:, 1], rows[:, 2].astype(bool))
        n = len(self._rows)
        if self.trusted and not (self.tau >= self.config.floor):  # NaN distrusts too
            self.trusted = False
            self.fallbacks_total += 1
            return False
        if (not self.trusted and n >= self.config.min_samples
                and self.tau - 2 * null_tau_se(n) >= self.config.floor):
            self.trusted = True
            self.recoveries_total += 1
            return True
        return None

    def stats(self) -> GuardStats:
        return GuardStats(self.tau, len(self._rows), self.pairs, self.config.window, self.config.floor,
                          self.trusted, self.fallbacks_total, self.recoveries_total)
