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


# A toy byte-level vocabulary: each id is a few bytes, some of them half a character.
EURO = "€".encode()  # e2 82 ac
TOY_BYTES = {1: b"a", 2: EURO[:1], 3: EURO[1:], 4: EURO[:2], 5: b"\xff"}


def toy_decode(ids) -> bytes:
    return b"".join(TOY_BYTES[i] for i in ids)


def test_a_character_split_across_chunks_waits_for_its_last_byte():
    assert chunk_text(toy_decode, [], [1, 2], final=False) == "a"  # the lead byte of "€" is held back
    assert chunk_text(toy_decode, [1, 2], [3], final=False) == "€"
    assert chunk_text(toy_decode, [1, 4], [], final=False) == ""


def test_the_final_chunk_flushes_a_dangling_tail():
    """The answer ended mid-character: the final chunk must not drop those bytes silently, it ends
    the text with U+FFFD (what decoding the whole answer at once would give), exactly once."""
    assert chunk_text(toy_decode, [1], [2], final=False) == ""
    assert chunk_text(toy_decode, [1, 2], [], final=True) == "\ufffd"
    assert chunk_text(toy_decode, [1], [4], final=True) == "\ufffd"
    assert chunk_text(toy_decode, [], [1, 4], final=True) == "a\ufffd"
    assert chunk_text(toy_decode, [2], [3, 1], final=True) == "€a"  # a complete end flushes nothing extra
    assert chunk_text(toy_decode, [1], [5], final=True) == "\ufffd"  # a stray byte too


def test_incomplete_tail_len_knows_every_lead_byte():
    two, three, four = "é".encode(), "€".encode(), "🚀".encode()
    assert [incomplete_tail_len(two[:1]), incomplete_tail_len(two)] == [1, 0]
    assert [incomplete_tail_len(three[:n]) for n in (1, 2, 3)] == [1, 2, 0]
    assert [incomplete_tail_len(four[:n]) for n in (1, 2, 3, 4)] == [1, 2, 3, 0]
    assert incomplete_tail_len(b"a" + four[:3]) == 3 and incomplete_tail_len(b"") == 0
    assert incomplete_tail_len(b"\x80\x80\x80\x80") == 0  # no lead byte within reach: nothing to hold
    assert incomplete_tail_len(b"\x7f") == 0
    devanagari = "क".encode()  # e0 a4 95: the smallest 3-byte lead byte, 0xE0
    assert [incomplete_tail_len(devanagari[:n]) for n in (1, 2, 3)] == [1, 2, 0]
    assert incomplete_tail_len("߿".encode()[:1]) == 1  # df bf: the largest 2-byte lead byte



def test_special_tokens_are_dropped_only_when_asked():
    from runtime.detokenize import special_token_filter

    skip, keep_all = special_token_filter(128000, True), special_token_filter(128000, False)
    assert skip(127999) and not skip(128000) and not skip(128009)
    assert keep_all(0) and keep_all(128000) and keep_all(128255)


def test_a_response_is_decoded_without_the_ids_the_filter_drops(tokenizer):
    from runtime.detokenize import response_text

    ids = tokenizer.encode("Hello world")
    keep = lambda i: i < 128000  # noqa: E731
    decode = tokenizer.decode_bytes
    # context "Hello" (+ a special id), new " world" (+ a special id): only the new text comes out
    assert response_text(decode, keep, [*ids[:1], 128000], [*ids[1:], 128009], final=True) == " world"
    assert response_text(decode, keep, [], [128000, *ids], final=False) == "Hello world"
    assert response_text(decode, lambda i: True, [], [], final=True) == ""


def test_a_final_response_shows_an_unfinished_character_and_a_middle_one_holds_it_back():
    from runtime.detokenize import response_text

    as_bytes = lambda ids: bytes(ids)  # noqa: E731  (ids standing for bytes)
    euro_start = list("\u20ac".encode())[:2]  # two of the euro sign's three bytes
    assert response_text(as_bytes, lambda i: True, [], [0x61, *euro_start], final=False) == "a"
    assert response_text(as_bytes, lambda i: True, [], [0x61, *euro_start], final=True) == "a\ufffd"
