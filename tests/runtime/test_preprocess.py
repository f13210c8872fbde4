"""Request checks of the preprocessing model: clear messages for bad input, TensorRT-LLM word lists."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.llama3_tokenizer import load_tokenizer
from runtime.preprocess import (
    BadRequest,
    Limits,
    check_max_tokens,
    check_prompt_bytes,
    check_prompt_ids,
    check_sampling,
    check_token_id,
    check_words,
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


def test_prompt_is_bounded_in_bytes_before_it_is_decoded():
    limits = Limits(max_input_len=8, max_output_len=100, max_prompt_bytes=10)
    check_prompt_bytes(b"x" * 10, limits)
    check_prompt_bytes("\u00e9" * 5, limits)  # 10 bytes in UTF-8
    with pytest.raises(BadRequest, match="text_input is 11 bytes, over the limit of 10 bytes"):
        check_prompt_bytes(b"\xff" * 11, limits)  # not even valid UTF-8: the size is checked first
    with pytest.raises(BadRequest, match="12 bytes"):
        check_prompt_bytes("\u00e9" * 6, limits)


@pytest.mark.parametrize(
    "temperature, top_k, top_p, message",
    [
        (float("nan"), None, None, "temperature must be a finite number >= 0, got nan"),
        (-0.1, None, None, "temperature"),
        (float("inf"), None, None, "temperature"),
        (None, -1, None, "top_k must be >= 0"),
        (None, None, 0.0, "top_p must be in \\(0, 1\\]"),
        (None, None, 1.5, "top_p"),
        (None, None, float("nan"), "top_p"),
    ],
)
def test_sampling_parameters_out_of_range_are_bad_requests(temperature, top_k, top_p, message):
    with pytest.raises(BadRequest, match=message):
        check_sampling(temperature, top_k, top_p)


def test_valid_sampling_parameters_and_absent_ones_pass():
    check_sampling(None, None, None)
    check_sampling(0.0, 0, 1.0)  # greedy, top_k off, no nucleus cut
    check_sampling(1.5, 40, 0.9)


def test_token_ids_must_name_a_token():
    assert check_token_id(128009, 128256, "end_id") == 128009
    with pytest.raises(BadRequest, match=r"end_id 128256 is outside the vocabulary \[0, 128256\)"):
        check_token_id(128256, 128256, "end_id")
    with pytest.raises(BadRequest, match="pad_id -1"):
        check_token_id(-1, 128256, "pad_id")


def test_word_lists_are_bounded_in_count_and_bytes():
    limits = Limits(max_input_len=8, max_output_len=100, max_words=3, max_word_bytes=4)
    check_words([b"a", b"bb", b"abcd"], limits)
    with pytest.raises(BadRequest, match="stop_words holds 4 words, over the limit of 3"):
        check_words([b"a"] * 4, limits)
    with pytest.raises(BadRequest, match="bad_words holds a word of 5 bytes, over the limit of 4 bytes"):
        check_words([b"abcde"], limits, "bad_words")


def test_limits_hold_exactly_at_their_boundary(tokenizer):
    """The limits are inclusive: `max_output_len` tokens and a prompt of `max_input_len` tokens pass,
    one more fails (a `>` turned `>=`, or the reverse, breaks this test)."""
    limits = Limits(max_input_len=4, max_output_len=100)
    assert check_max_tokens(100, limits) == 100 and check_max_tokens(1, limits) == 1
    with pytest.raises(BadRequest, match="exceeds the engine limit of 100"):
        check_max_tokens(101, limits)
    words = [" one", " two", " three", " four", " five"]
    assert all(len(tokenizer.encode(w)) == 1 for w in words)
    three_tokens = "".join(words[:3])  # + BOS = 4 tokens
    assert encode_prompt(tokenizer, three_tokens, limits).size == 4
    with pytest.raises(BadRequest, match="prompt is 5 tokens"):
        encode_prompt(tokenizer, "".join(words[:4]), limits)
    assert encode_prompt(tokenizer, "".join(words[:4]), limits, add_bos=False).size == 4
    assert check_prompt_ids(np.arange(4), 128256, limits).size == 4
    assert check_prompt_ids(np.array([128255]), 128256, limits).tolist() == [128255]  # the last id is valid
    assert check_prompt_ids(np.array([0]), 128256, limits).tolist() == [0]


def test_messages_name_the_input_at_fault(tokenizer):
    """The client reads these messages: each names the input it is about, exactly."""
    with pytest.raises(BadRequest, match=r"^text_input is not valid UTF-8 \(byte 0\)$"):
        decode_text(b"\xff")
    with pytest.raises(BadRequest, match=r"^prompt is empty$"):
        decode_text(b" ", "prompt")
    with pytest.raises(BadRequest, match=r"^stop/bad word is not valid UTF-8"):
        word_list(tokenizer, [b"ok", b"\xfe"])
    with pytest.raises(BadRequest, match=r"^prompt_token_ids is empty$"):
        check_prompt_ids(np.zeros(0, dtype=np.int32), 128256, Limits(max_input_len=4, max_output_len=8))


def test_word_list_pads_ids_with_zero_and_offsets_with_minus_one(tokenizer):
    """Empty words add offsets but no ids, so the offsets row is the longer one here."""
    a = tokenizer.encode("a")
    out = word_list(tokenizer, [b"", b"", b"a"])
    assert out.dtype == np.int32
    assert out.tolist() == [a + [0, 0], [0, 0, len(a)]]


def test_range_checks_hold_at_both_ends():
    assert check_token_id(0, 128256, "pad_id") == 0 and check_token_id(128255, 128256, "end_id") == 128255
    check_sampling(None, 2**31 - 1, None)  # the largest int32 top_k is valid
    limits = Limits(max_input_len=8, max_output_len=8, max_word_bytes=4)
    check_words(["\u00e9\u00e9"], limits)  # 4 bytes in UTF-8
    with pytest.raises(BadRequest, match="word of 6 bytes"):
        check_words(["\u00e9\u00e9\u00e9"], limits)  # 3 characters, 6 bytes: bytes are what count



def _preprocessor(tokenizer, **limits):
    from runtime.preprocess import Preprocessor

    return Preprocessor(tokenizer, Limits(**{"max_input_len": 64, "max_output_len": 100, **limits}), add_bos=True,
                        predictor_ids=lambda text: [len(text)])


def _request(**extra):
    return {"QUERY": np.array([[b"Hello there"]], dtype=object), "REQUEST_OUTPUT_LEN": np.array([[16]], np.int32),
            **extra}


def test_the_preprocessor_makes_the_schedulers_tensors_and_the_predictors_ids(tokenizer):
    from runtime.contracts import Preprocessing as P

    prepared = _preprocessor(tokenizer).prepare(_request(STOP_WORDS_DICT=np.array([b"\n", b""], dtype=object)))
    assert set(prepared.tensors) == set(P.OUTPUTS) - {P.SCORE}
    ids = prepared.tensors[P.INPUT_ID].reshape(-1).tolist()
    assert ids == [tokenizer.bos_id, *tokenizer.encode("Hello there")]
    assert prepared.tensors[P.REQUEST_INPUT_LEN].tolist() == [[len(ids)]]
    assert prepared.tensors[P.REQUEST_OUTPUT_LEN].tolist() == [[16]]
    assert prepared.tensors[P.OUT_END_ID].tolist() == [[tokenizer.eot_id]]  # defaults when left out
    assert prepared.tensors[P.OUT_PAD_ID].tolist() == [[tokenizer.pad_id]]
    assert prepared.tensors[P.STOP_WORDS_IDS].shape == (1, 2, 1)  # one word: the empty one is dropped
    assert prepared.tensors[P.BAD_WORDS_IDS].shape == (1, 2, 0)
    assert prepared.predictor_ids == [len("Hello there")]


def test_prompt_token_ids_are_used_as_sent(tokenizer):
    from runtime.contracts import Preprocessing as P

    prepared = _preprocessor(tokenizer).prepare(_request(PROMPT_TOKEN_IDS=np.array([[9, 8, 7]], np.int32)))
    assert prepared.tensors[P.INPUT_ID].tolist() == [[9, 8, 7]]
    assert prepared.predictor_ids == [len("Hello there")]  # the text is still what the predictor scores


@pytest.mark.parametrize(
    "change, message",
    [
        ({"QUERY": np.array([[b"a"], [b"b"]], dtype=object)}, "one prompt per request"),
        ({"QUERY": np.array([[b"x" * 300]], dtype=object)}, "over the limit of 200 bytes"),  # before UTF-8
        ({"QUERY": np.array([[b"\xff" * 10]], dtype=object)}, "not valid UTF-8"),
        ({"REQUEST_OUTPUT_LEN": np.array([[0]], np.int32)}, "max_tokens must be positive"),
        ({"END_ID": np.array([[-1]], np.int32)}, "end_id -1 is outside"),
        ({"PAD_ID": np.array([[1 << 20]], np.int32)}, "^pad_id 1048576 is outside"),
        ({"BAD_WORDS_DICT": np.array([b"w"] * 5, dtype=object)}, "bad_words holds 5 words"),
        ({"STOP_WORDS_DICT": np.array([b"w"] * 5, dtype=object)}, "stop_words holds 5 words"),
    ],
)
def test_the_preprocessor_refuses_a_bad_request_with_its_message(tokenizer, change, message):
    with pytest.raises(BadRequest, match=message):
        _preprocessor(tokenizer, max_prompt_bytes=200, max_words=4).prepare(_request(**change))


def test_embedding_bias_adds_each_words_weight_at_its_tokens(tokenizer):
    from runtime.contracts import Preprocessing as P

    prepared = _preprocessor(tokenizer).prepare(_request(
        EMBEDDING_BIAS_WORDS=np.array([[b"Paris", b" London"]], dtype=object),
        EMBEDDING_BIAS_WEIGHTS=np.array([[2.5, -1.0]], np.float32)))
    bias = prepared.tensors[P.EMBEDDING_BIAS].reshape(-1)
    assert bias.shape == (tokenizer.vocab_size,) and bias.dtype == np.float32
    for word, weight in (("Paris", 2.5), (" London", -1.0)):
        assert all(bias[t] == weight for t in tokenizer.encode(word))
    assert np.count_nonzero(bias) == len(tokenizer.encode("Paris")) + len(tokenizer.encode(" London"))
    assert _preprocessor(tokenizer).prepare(_request()).tensors[P.EMBEDDING_BIAS].shape == (1, 0)


def test_embedding_bias_words_and_weights_must_pair_up(tokenizer):
    with pytest.raises(BadRequest, match="1 words but embedding_bias_weights 2 weights"):
        _preprocessor(tokenizer).prepare(_request(EMBEDDING_BIAS_WORDS=np.array([[b"a"]], dtype=object),
                                                  EMBEDDING_BIAS_WEIGHTS=np.array([[1.0, 2.0]], np.float32)))


def test_the_schedulers_tensors_are_int32_as_its_config_declares(tokenizer):
    from runtime.contracts import Preprocessing as P

    prepared = _preprocessor(tokenizer).prepare(_request())
    for name in (P.INPUT_ID, P.REQUEST_INPUT_LEN, P.REQUEST_OUTPUT_LEN, P.OUT_END_ID, P.OUT_PAD_ID):
        assert prepared.tensors[name].dtype == np.int32, name


def test_without_bos_the_prompt_is_its_tokens_alone_and_words_may_come_as_a_batch_of_one(tokenizer):
    from runtime.contracts import Preprocessing as P
    from runtime.preprocess import Preprocessor

    plain = Preprocessor(tokenizer, Limits(max_input_len=64, max_output_len=100), add_bos=False,
                         predictor_ids=lambda text: [])
    stops = np.array([[b"\n", b"."]], dtype=object)  # [1, words]: Triton's batch dimension
    prepared = plain.prepare(_request(STOP_WORDS_DICT=stops))
    assert prepared.tensors[P.INPUT_ID].reshape(-1).tolist() == tokenizer.encode("Hello there")
    assert prepared.tensors[P.STOP_WORDS_IDS].shape[:2] == (1, 2) and prepared.tensors[P.STOP_WORDS_IDS].shape[2] >= 2
