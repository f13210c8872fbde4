"""Incremental detokenization: streamed chunks never carry a broken UTF-8 character."""

from __future__ import annotations

import pytest

from runtime.detokenize import CONTEXT_TOKENS, chunk_text, incomplete_tail_len
from runtime.llama3_tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()



def test_incomplete_tail_len():
    euro = "€".encode()  # 3 bytes
    assert incomplete_tail_len(b"abc") == 0
    assert incomplete_tail_len(euro) == 0
    assert incomplete_tail_len(euro[:1]) == 1
    assert incomplete_tail_len(b"x" + euro[:2]) == 2


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_streamed_chunks_reassemble_the_exact_text(tokenizer, chunk_size):
    text = "naïve café — 你好, мир! 🚀 done"
    ids = tokenizer.encode(text)
    sent: list[int] = []
    out = []
    for i in range(0, len(ids), chunk_size):
        chunk = ids[i : i + chunk_size]
        piece = chunk_text(tokenizer.decode_bytes, sent[-CONTEXT_TOKENS:], chunk, final=False)
        assert "\ufffd" not in piece
        out.append(piece)
        sent.extend(chunk)
    out.append(chunk_text(tokenizer.decode_bytes, sent[-CONTEXT_TOKENS:], [], final=True))
    assert "".join(out) == text

