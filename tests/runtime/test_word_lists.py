"""TensorRT-LLM's word-list format: what is packed unpacks to the same words, empty words included."""

from __future__ import annotations

import numpy as np

from runtime.word_lists import pack_words, unpack_words


def test_words_round_trip_through_the_format():
    words = [(7, 8), (), (9,)]
    packed = pack_words(words)
    assert packed.dtype == np.int32 and packed.tolist() == [[7, 8, 9], [2, 2, 3]]
    assert unpack_words(packed) == words and unpack_words(packed[None]) == words  # batch of one too


def test_no_words_is_an_empty_list_either_way():
    assert pack_words([]).shape == (2, 0)
    assert unpack_words(None) == [] and unpack_words(np.zeros((1, 2, 0), np.int32)) == []


def test_padding_ends_the_words():
    assert unpack_words(np.array([[5, 0, 0], [1, -1, -1]], np.int32)) == [(5,)]
    assert pack_words([(), (), (4,)]).tolist() == [[4, 0, 0], [0, 0, 1]]  # the offsets row is the longer
