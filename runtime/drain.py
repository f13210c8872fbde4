"""The graceful-stop signal between `make stop` and the scheduler model: a file holding a deadline.

Triton tells a model nothing when the server is asked to stop (it calls `finalize` only after its
own wait for in-flight requests, or never when that wait times out), so the stop command writes the
end of the grace period (Unix time) into a file the scheduler model knows (`drain_file` parameter).
While the file is there, the scheduler admits nothing new, ends waiting requests at once with a
retryable error, and lets generating requests run until the deadline, then stops them with that
error. A file, not a request: nothing a network client can send turns a server into draining.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable


def begin_drain(path: Path, grace_s: float, clock: Callable[[], float] = time.time) -> float:
    """Write the deadline atomically (a reader never sees half a number); returns it."""
    deadline = clock() + grace_s
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{deadline:.3f}\n")
    os.replace(tmp, path)
    return deadline


class DrainSignal:
    """`signal()` → None while serving normally, else the seconds left in the grace period
    (<= 0 once it is over). Reads the file at most every `recheck_s`: it is asked per chunk."""

    def __init__(self, path: str | Path | None, clock: Callable[[], float] = time.time, recheck_s: float = 0.2) -> None:
        self.path = Path(path) if path else None
        self.clock = clock
        self.recheck_s = recheck_s
        self._checked_at = float("-inf")
        self._deadline: float | None = None

    def __call__(self) -> float | None:
        if self.path is None:
            return None
        now = self.clock()
        if now - self._checked_at >= self.recheck_s:
            self._checked_at = now
            self._deadline = self._read()
        return None if self._deadline is None else self._deadline - now

    def _read(self) -> float | None:
        try:
            return float(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
