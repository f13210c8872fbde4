"""Request checks of the preprocessing model: clear messages for bad input, TensorRT-LLM word lists."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.llama3_tokenizer import load_tokenizer
from runtime.preprocess import (
    BadRequest,
    Limits,
    check_max_tokens,
    check_prompt_ids,
    decode_text,
    encode_prompt,
    word_list,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()



def test_request_checks_give_clear_messages(tokenizer):
    limits = Limits(max_input_len=8, max_output_len=100)
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        decode_text(b"\xff\xfe")
    with pytest.raises(BadRequest, match="empty"):
        decode_text(b"  \n")
    with pytest.raises(BadRequest, match="positive"):
        check_max_tokens(0, limits)
    with pytest.raises(BadRequest, match="exceeds"):
        check_max_tokens(101, limits)
    with pytest.raises(BadRequest, match="input limit of 8"):
        encode_prompt(tokenizer, "one two three four five six seven eight nine", limits)
    ids = encode_prompt(tokenizer, "Hello", limits)
    assert ids.dtype == np.int32 and ids[0] == tokenizer.bos_id


def test_word_list_uses_tensorrt_llm_layout(tokenizer):
    out = word_list(tokenizer, [b"Hello", b" world!"])
    hello, world = tokenizer.encode("Hello"), tokenizer.encode(" world!")
    assert out.shape == (2, len(hello) + len(world))
    assert out[0].tolist() == hello + world
    assert out[1, :2].tolist() == [len(hello), len(hello) + len(world)]
    assert (out[1, 2:] == -1).all()
    assert word_list(tokenizer, []).shape == (2, 0)
    assert word_list(tokenizer, [b"\n"])[0, 0] == tokenizer.encode("\n")[0]  # whitespace stop words are valid
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        word_list(tokenizer, [b"\xff"])



def test_prompt_token_ids_are_used_as_sent_special_ids_included():
    limits = Limits(max_input_len=4, max_output_len=100)
    ids = check_prompt_ids(np.array([[128000, 128006, 882, 128007]], dtype=np.int32), 128256, limits)
    assert ids.dtype == np.int32 and ids.tolist() == [128000, 128006, 882, 128007]  # no BOS added
    with pytest.raises(BadRequest, match="empty"):
        check_prompt_ids(np.zeros((1, 0), dtype=np.int32), 128256, limits)
    with pytest.raises(BadRequest, match="outside the vocabulary"):
        check_prompt_ids(np.array([1, 128256]), 128256, limits)
    with pytest.raises(BadRequest, match="outside the vocabulary"):
        check_prompt_ids(np.array([-1, 5]), 128256, limits)
    with pytest.raises(BadRequest, match="input limit of 4"):
        check_prompt_ids(np.arange(5), 128256, limits)
    with pytest.raises(BadRequest, match="integers"):
        check_prompt_ids(np.array([1.5]), 128256, limits)
