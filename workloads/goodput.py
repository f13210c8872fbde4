"""Goodput: the highest request rate at which a service-level objective still holds.

Capacity planning asks "how much traffic can one replica take before users notice?", not "how
much faster is the mean at five times overload?". The SLO chosen here is an interactive chat one:

* p90 TTFT <= 2 s: nine in ten users see their answer start within two seconds;
* p90 latency per output token <= 0.1 s: the whole answer, queueing included, arrives at 10
  tokens/s or faster for nine in ten requests, above reading speed (about 5-7 tokens/s), so a
  streamed answer never makes its reader wait.

A sweep over rates finds the goodput of each policy: the highest rate such that the SLO holds
there and at every lower rate of the sweep (one lucky rate above a failing one does not count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from workloads.metrics import RequestTimes


@dataclass(frozen=True)
class Slo:
    p90_ttft_s: float = 2.0
    p90_latency_per_token_s: float = 0.1

    def met_by(self, row: dict) -> bool:
        """Whether a results row (`workloads.metrics.summarize`) meets the objective."""
        return (
            row.get("n_requests", 0) > 0
            and row["p90_ttft_s"] <= self.p90_ttft_s
            and row["p90_latency_per_token_s"] <= self.p90_latency_per_token_s
        )

    def describe(self) -> str:
        return f"p90 TTFT <= {self.p90_ttft_s:g} s and p90 latency per token <= {self.p90_latency_per_token_s:g} s"

    def to_json(self) -> dict:
        return asdict(self)


CHAT_SLO = Slo()


def goodput(rows: Iterable[dict], slo: Slo = CHAT_SLO) -> dict | None:
    """The row of the highest rate that meets `slo` with every lower rate meeting it too; None when
    even the lowest rate fails. `rows`: one policy's rows at numeric rates."""
    best = None
    for row in sorted(rows, key=lambda r: r["rate"]):
        if not slo.met_by(row):
            break
        best = row
    return best


@dataclass(frozen=True)
class RequestSlo:
    """The operator's per-request SLO (config.pbtxt `slo_ttft_s`, `slo_tpot_s`): a request meets it
    when its first token came within `ttft_s` and its later tokens at `tpot_s` or faster on average.
    Default: the chat SLO's figures, per request (TTFT 2 s, 0.1 s per output token)."""

    ttft_s: float = 2.0
    tpot_s: float = 0.1

    def attainment(self, times: RequestTimes) -> float:
        """Share of the requests meeting both targets (refused or unfinished ones count as missing)."""
        if len(times.arrival) == 0:
            return float("nan")
        ok = (times.ttft <= self.ttft_s) & (times.tpot <= self.tpot_s)
        return float(np.mean(np.nan_to_num(ok, nan=0.0)))

    def describe(self) -> str:
        return f"TTFT <= {self.ttft_s:g} s and TPOT <= {self.tpot_s:g} s per request"

    def to_json(self) -> dict:
        return asdict(self)


DEFAULT_REQUEST_SLO = RequestSlo()
ATTAINMENT_GOAL = 0.9  # goodput: the highest load with at least this share of requests meeting the SLO


def attainment_goodput(rows: Iterable[dict], goal: float = ATTAINMENT_GOAL) -> dict | None:
    """The row of the highest load whose `slo_attainment` is >= `goal`, every lower load too; None
    when even the lowest fails. `rows`: one policy's rows at numeric loads, one arrival seed."""
    best = None
    for row in sorted(rows, key=lambda r: r["load"]):
        if not row.get("slo_attainment", 0.0) >= goal:
            break
        best = row
    return best
