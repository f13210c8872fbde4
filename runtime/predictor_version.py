"""Which length-predictor version is serving, as the scheduler sees it (request log, metrics).

The ensemble routes every request to the predictor's latest loaded version (`model_version: -1`).
A hot swap (deploy/swap.py) loads a new version beside the old one and, once Triton serves only
the new one, writes its number to `SERVING_VERSION` in the model's folder; before any swap the
highest version folder is the one serving. The scheduler reads that, at most every `interval_s`
as requests arrive, and never asks Triton: model-state calls from inside the scheduler's stub
while its BLS streams were being read crashed the stub (a segfault in libpython under load).
A request scored within one `interval_s` (0.25 s) after a swap may be logged with the previous
version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

SERVING_FILE = "SERVING_VERSION"


def version_folders(model_dir: str | Path) -> list[str]:
    """A Triton model folder's numeric version folders, highest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted((p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=int, reverse=True)


def serving_version(model_dir: str | Path) -> str | None:
    """The version the last swap put in service, else the highest version folder (what the first
    load serves), else None."""
    try:
        marked = (Path(model_dir) / SERVING_FILE).read_text().strip()
        if marked.isdigit():
            return marked
    except OSError:
        pass
    folders = version_folders(model_dir)
    return folders[0] if folders else None


def mark_serving(model_dir: str | Path, version: str) -> None:
    """Record the version Triton now serves (deploy.swap, once it has checked)."""
    tmp = Path(model_dir) / (SERVING_FILE + ".tmp")
    tmp.write_text(f"{version}\n")
    tmp.replace(Path(model_dir) / SERVING_FILE)  # atomic: a reader never sees half a number


class ServingVersionWatch:
    """Keeps `current` (the serving version, or None) up to date, read from the model's folder at
    most once per `interval_s` when the scheduler calls `maybe_refresh` (no thread of its own)."""

    def __init__(
        self, model_dir: str | Path, interval_s: float = 0.25, on_change: Callable[[str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.interval_s = interval_s
        self.on_change = on_change
        self.clock = clock
        self.current: str | None = None
        self._last: float | None = None

    def refresh(self) -> str | None:
        self._last = self.clock()
        version = serving_version(self.model_dir)
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
