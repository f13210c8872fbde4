"""train_model's censored path: cut answers train as lower bounds (ListMLE only), on the real
MiniLM backbone with a handful of prompts (one epoch, one thread)."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.train import TrainConfig, train_model

PROMPTS = [f"Write {'a very long ' * (i % 5)}story number {i} about {w}." for i, w in enumerate(["cats", "ships", "rain", "code"] * 4)]


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "threads": 1, "list_size": 8, "freeze_layers": 6, **kw})


def test_censored_labels_train_with_listmle_and_are_counted():
    lengths = np.arange(len(PROMPTS), dtype=np.float64) * 10
    censored = np.zeros(len(PROMPTS), dtype=bool)
    censored[[3, 7]] = True
    _, _, facts = train_model(cfg(), PROMPTS, lengths, progress=False, censored=censored)
    assert facts["censored_prompts"] == 2 and facts["steps"] == 2 and np.isfinite(facts["final_loss"])
    _, _, plain = train_model(cfg(), PROMPTS, lengths, progress=False, censored=np.zeros(len(PROMPTS), dtype=bool))
    assert plain["censored_prompts"] == 0


def test_censored_labels_refuse_other_objectives():
    censored = np.ones(len(PROMPTS), dtype=bool)
    with pytest.raises(ValueError, match="listmle"):
        train_model(cfg(objective="regression"), PROMPTS, np.ones(len(PROMPTS)), progress=False, censored=censored)
