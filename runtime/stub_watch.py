"""Noticing that the scheduler's python stub died under the requests waiting on it.

Triton 2.51 neither answers nor ends the BLS streams that were on a dead stub, so the requests
waiting on it would hang until the supervisor restarts the server. `SchedulerWatch` notices instead:
while some request has waited over `after_s` for a response, it asks the scheduler something cheap
(`Steps.probe`, at most once per `every_s`), and when the answer says its process is gone, every
request sent before that probe ends with a retryable (UNAVAILABLE) error (`died_error`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from runtime.entry_seams import StepError

log = logging.getLogger(__name__)

SCHEDULER = "the scheduler"  # the step named in its died_error


def stub_died(message: str) -> bool:
    """Whether an error says the called model's python stub is gone (Triton 2.51's python backend:
    "Stub process '<model>_0_0' is not healthy.")."""
    text = message.lower()
    return "stub" in text and "not healthy" in text


class StubDied(Exception):
    """A step's process died under this request (`EntryFlow.serve` turns it into `died_error`)."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


def died_error(step: str, code: Any) -> StepError:
    return StepError(f"{step}'s process died; the deployment is recovering: retry", code)


class SchedulerWatch:
    """Whether the scheduler's stub has died under the requests waiting on it, found out by probing
    it only while a request waits unusually long, so that a healthy server pays nothing (a busy one:
    one probe a second)."""

    def __init__(self, probe: Callable[[], Awaitable[str | None]], clock: Callable[[], float],
                 after_s: float = 1.0, every_s: float = 1.0, timeout_s: float = 5.0) -> None:
        self.probe, self.clock = probe, clock
        self.after_s = after_s  # a request that has had no response for this long asks for a probe
        self.every_s = every_s  # at most one probe this often
        self.timeout_s = timeout_s  # a probe with no answer by then says nothing
        self.probes = 0
        self.dead_seen_at: float | None = None  # when the last probe that found the stub dead started
        self._probing: asyncio.Task | None = None
        self._last = float("-inf")

    def waiting(self, since: float) -> None:
        """A request has had no response since `since` (on the event loop): probe if it is time."""
        now = self.clock()
        if now - since < self.after_s or self._probing is not None or now - self._last < self.every_s:
            return
        self._last = now
        self._probing = asyncio.get_running_loop().create_task(self._probe(now))

    def died_since(self, sent_at: float) -> bool:
        """Whether a probe that started after `sent_at` found the stub dead: a request sent at
        `sent_at` will never get another response."""
        return self.dead_seen_at is not None and self.dead_seen_at >= sent_at

    async def _probe(self, started: float) -> None:
        try:
            message = await asyncio.wait_for(self.probe(), self.timeout_s)
        except asyncio.TimeoutError:
            message = None  # no answer: nothing learnt (the supervisor still watches the process)
        except Exception as exc:  # noqa: BLE001  (a failed call tells the same as an error answer)
            message = str(exc)
        finally:
            self._probing = None
        self.probes += 1
        if message is not None and stub_died(message):
            if self.dead_seen_at is None:
                log.warning("ltr_bls: the scheduler's stub is dead (%s); ending the requests on it", message)
            self.dead_seen_at = started
        elif self.dead_seen_at is not None:
            log.warning("ltr_bls: the scheduler answers again")
            self.dead_seen_at = None
