"""Incremental detokenization for streaming: never emit a broken UTF-8 character.

A byte-level BPE token can end in the middle of a multi-byte character, so decoding each streamed
chunk on its own would put U+FFFD into the text. The postprocessing model is stateless, so each
chunk arrives with `context_ids`, the last few tokens already sent; the text of the chunk is what
decoding context + chunk adds to decoding the context alone, each decode stopping before an
incomplete trailing character (which the next chunk completes).
"""

from __future__ import annotations

from typing import Callable, Sequence

# A UTF-8 character is at most 4 bytes and every token is at least one byte, so three tokens of
# context always reach back to before the start of a character split across chunks.
CONTEXT_TOKENS = 3


def incomplete_tail_len(data: bytes) -> int:
    """Bytes at the end of `data` that start a UTF-8 character without finishing it."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0b1100_0000 == 0b1000_0000:  # continuation byte: keep looking for the lead
            continue
        if byte >= 0b1111_0000:
            needed = 4
        elif byte >= 0b1110_0000:
            needed = 3
        elif byte >= 0b1100_0000:
            needed = 2
        else:
            needed = 1
        return back if back < needed else 0
    return 0


def decode_complete(data: bytes) -> str:
    """Decode all complete characters; invalid bytes become U+FFFD as usual."""
    return data[: len(data) - incomplete_tail_len(data)].decode("utf-8", errors="replace")


def chunk_text(
    decode_bytes: Callable[[Sequence[int]], bytes],
    context_ids: Sequence[int],
    new_ids: Sequence[int],
    final: bool,
) -> str:
    """Text that `new_ids` add after `context_ids`; a final chunk also flushes a dangling tail."""
    before = decode_complete(decode_bytes(context_ids))
    all_bytes = decode_bytes(list(context_ids) + list(new_ids))
    after = all_bytes.decode("utf-8", errors="replace") if final else decode_complete(all_bytes)
    return after[len(before):]


def special_token_filter(first_special: int, skip_special: bool) -> Callable[[int], bool]:
    """Which ids reach the text: Llama-3's special tokens all sit at ids >= `first_special` (its BOS)."""
    return (lambda i: i < first_special) if skip_special else (lambda i: True)


def response_text(
    decode_bytes: Callable[[Sequence[int]], bytes],
    keep: Callable[[int], bool],
    context_ids: Sequence[int],
    new_ids: Sequence[int],
    final: bool,
) -> str:
    """One scheduler response as text, the same for the `postprocessing` model (the ensemble's last
    step) and the `ltr_bls` entry model, so their answers cannot differ."""
    return chunk_text(
        decode_bytes, [int(i) for i in context_ids if keep(int(i))], [int(i) for i in new_ids if keep(int(i))], final
    )
