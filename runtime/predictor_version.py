"""Which length-predictor version is serving, as the scheduler sees it (request log, metrics).

The ensemble routes every request to the predictor's latest loaded version (`model_version: -1`),
and a hot swap (deploy/swap.py) loads a new version beside the old one, after which Triton
unloads the old. The scheduler cannot ask which version scored one request (the GPU bundle's
native ONNX predictor outputs nothing but the score), so it watches instead: as requests arrive it
asks Triton, at most every `interval_s`, which on-disk versions are ready and takes the highest,
which is the one the ensemble's `-1` picks. A request scored within one `interval_s` (0.25 s) after a swap may be logged
with the previous version (measured in results/loop.md with a 1 s interval: the rows logged as v1
during the swap mixed both versions' scores).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def version_folders(model_dir: str | Path) -> list[str]:
    """A Triton model folder's numeric version folders, highest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted((p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=int, reverse=True)


def highest_ready(candidates: list[str], is_ready: Callable[[str], bool]) -> str | None:
    """The first (highest) candidate version that Triton reports ready."""
    for version in candidates:
        try:
            if is_ready(version):
                return version
        except Exception as exc:  # an unanswerable question is "not known", never a failed request
            log.warning("predictor version check failed for %s: %s", version, exc)
    return None


class ServingVersionWatch:
    """Keeps `current` (the serving version, or None before the first answer) up to date.

    No thread of its own: the scheduler calls `maybe_refresh` on its event loop as requests
    arrive (at most once per `interval_s`), so Triton is only asked from the stub's own thread,
    as every other model-state call is.
    """

    def __init__(
        self, model_dir: str | Path, is_ready: Callable[[str], bool], interval_s: float = 0.25,
        on_change: Callable[[str | None], None] | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.is_ready = is_ready
        self.interval_s = interval_s
        self.on_change = on_change
        self.clock = clock
        self.current: str | None = None
        self._last: float | None = None

    def refresh(self) -> str | None:
        self._last = self.clock()
        version = highest_ready(version_folders(self.model_dir), self.is_ready)
        if version is not None and version != self.current:
            self.current = version
            if self.on_change is not None:
                self.on_change(version)
        return self.current

    def maybe_refresh(self) -> str | None:
        """`refresh` if the last one is `interval_s` old (or there was none), else the known version."""
        if self._last is None or self.clock() - self._last >= self.interval_s:
            return self.refresh()
        return self.current
