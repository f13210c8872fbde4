"""Where things live in a checkout, in one place, so every command agrees on its defaults.

The repository root, the folders commands write to (`build/`, `results/`), the source model
repository, and the data folder: `--data-dir`, else $LTR_DATA_DIR, else `../shared/data` beside
the checkout (the data are never committed). Imports nothing of the project.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
BUILD_DIR = REPO_ROOT / "build"
RESULTS_DIR = REPO_ROOT / "results"
SOURCE_REPOSITORY = REPO_ROOT / "model_repository"
DATA_DIR_ENV = "LTR_DATA_DIR"


def default_data_dir() -> Path:
    """$LTR_DATA_DIR, else the shared data folder beside the repository (may not exist)."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """`path`, else `default_data_dir()`; raises with what to do when the folder is missing."""
    chosen = Path(path) if path else default_data_dir()
    if not chosen.is_dir():
        raise FileNotFoundError(f"data folder {chosen} not found: pass --data-dir or set ${DATA_DIR_ENV}")
    return chosen
