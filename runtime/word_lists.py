"""TensorRT-LLM's word-list format (`stop_words_list`, `bad_words_list`), packed and unpacked in one
place: `[2, N]` INT32, row 0 the concatenated token ids of all words (0-padded), row 1 the end
offset of each word (-1-padded). Preprocessing packs the client's words, the scheduler appends its
end tokens, the CPU stand-in unpacks what it got."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pack_words(words: Sequence[Sequence[int]]) -> np.ndarray:
    """`[2, N]` for `words` (each a token-id sequence; an empty word adds an offset and no id).
    No words: shape [2, 0]."""
    ids: list[int] = []
    offsets: list[int] = []
    for word in words:
        ids.extend(int(t) for t in word)
        offsets.append(len(ids))
    width = max(len(ids), len(offsets))
    out = np.full((2, width), -1, dtype=np.int32)
    out[0, : len(ids)] = ids
    out[0, len(ids):] = 0
    out[1, : len(offsets)] = offsets
    return out


def unpack_words(packed: np.ndarray | None) -> list[tuple[int, ...]]:
    """The words of a packed list (a leading batch dimension of one allowed), empty words included;
    None or empty: none."""
    if packed is None or np.asarray(packed).size == 0:
        return []
    a = np.asarray(packed)
    rows = a.reshape(-1, 2, a.shape[-1])[0]
    words: list[tuple[int, ...]] = []
    start = 0
    for end in rows[1]:
        if int(end) < 0:
            break
        words.append(tuple(int(t) for t in rows[0, start:int(end)]))
        start = int(end)
    return words
