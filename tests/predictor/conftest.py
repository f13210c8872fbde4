"""A fixed sample of held-out prompts for the predictor's quality tests: Arena-Hard v0.1, which the
shipped predictor never trained on (it trained on AlpacaEval), labelled with the Llama-3 token counts
of llama-3-8b-instruct's answers. Skipped when the data folder is absent."""

from __future__ import annotations

import pytest

from predictor.interchange import Example

ARENA_SAMPLE = 200  # the first 200 answered questions, in the file's order


@pytest.fixture(scope="session")
def arena_sample() -> list[Example]:
    from predictor.data import llama3_counter, load_arena_hard
    from repo_paths import data_dir

    try:
        folder = data_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"no data folder: {exc}")
    if not (folder / "arena_hard_v0.1" / "v0.1_question.jsonl").is_file():
        pytest.skip(f"no Arena-Hard v0.1 in {folder}")
    rows = load_arena_hard(folder, llama3_counter())
    assert len(rows) >= ARENA_SAMPLE
    return rows[:ARENA_SAMPLE]
