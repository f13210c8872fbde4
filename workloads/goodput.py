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
