"""The timing-mode word ids really are single Llama-3 tokens of those words."""

from __future__ import annotations

import pytest

from engine.vocab import MULTILINGUAL_IDS, MULTILINGUAL_TEXT, WORD_TOKENS


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


def test_multilingual_ids_spell_their_text_and_split_characters() -> None:
    try:
        from runtime.llama3_tokenizer import load_tokenizer

        tok = load_tokenizer()
    except (ImportError, FileNotFoundError, OSError) as exc:
        pytest.skip(f"Llama-3 tokenizer not available: {exc}")
    assert tok.encode(MULTILINGUAL_TEXT) == list(MULTILINGUAL_IDS)
    assert tok.decode_bytes(list(MULTILINGUAL_IDS)).decode("utf-8") == MULTILINGUAL_TEXT
    cut_mid_character = 0
    for end in range(1, len(MULTILINGUAL_IDS)):
        try:
            tok.decode_bytes(list(MULTILINGUAL_IDS[:end])).decode("utf-8")
        except UnicodeDecodeError:
            cut_mid_character += 1
    assert cut_mid_character >= 5  # what makes the stand-in's `multilingual` stream a real test

