"""The timing-mode word ids really are single Llama-3 tokens of those words."""

from __future__ import annotations

import pytest

from engine.vocab import WORD_TOKENS


def test_word_ids_match_llama3_tokenizer() -> None:
    try:
        from runtime.llama3_tokenizer import load_tokenizer

        tok = load_tokenizer()
    except (ImportError, FileNotFoundError, OSError) as exc:
        pytest.skip(f"Llama-3 tokenizer not available: {exc}")
    for word, tid in WORD_TOKENS.items():
        assert tok.encode(word) == [tid], word


def test_ids_are_distinct_and_below_special_range() -> None:
    ids = list(WORD_TOKENS.values())
    assert len(set(ids)) == len(ids) and max(ids) < 128000
