"""One tokenizer code path for both targets: a Hugging Face checkpoint folder (GPU: tokenizer.json)
gives the same ids, bytes and special ids as Meta's tokenizer.model (CPU). The checkpoint's
tokenizer.json is made here from tokenizer.model with transformers' TikTokenConverter (how Hugging
Face converted Llama-3; Meta's own file is not downloaded), twice: with Llama-3's own special-token
names (Meta-Llama-3-8B-Instruct, which docs/gpu.md downloads: id 128004 is
<|reserved_special_token_2|>) and with Llama-3.1's (<|finetune_right_pad_id|>, <|eom_id|>, ...)."""

from __future__ import annotations

import pytest

from runtime.llama3_tokenizer import _PAT_STR, DEFAULT_TOKENIZER_FILE, LLAMA3_SPECIAL_NAMES, load_tokenizer

TEXTS = [
    "Hello, world!",
    "Grüße 👋🏽 — 東京\n\n  code: x = [1, 2]  # comment",
    "<|eot_id|> typed by a user, and <|begin_of_text|> too",
    "  leading spaces   and\ttabs\r\n",
    "1234567 numbers, don't won't I'll",
    "",
]


# Llama-3.1's tokenizer.json (meta-llama/Llama-3.1-8B-Instruct): 128004 <|finetune_right_pad_id|>,
# 128008 <|eom_id|>, 128010 <|python_tag|>, reserved tokens from 2 at 128005 and from 3 at 128011.
LLAMA31_SPECIAL_NAMES = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)]
CHECKPOINTS = {"Meta-Llama-3-8B-Instruct": LLAMA3_SPECIAL_NAMES, "Llama-3.1-8B-Instruct": LLAMA31_SPECIAL_NAMES}


@pytest.fixture(scope="module", params=sorted(CHECKPOINTS))
def checkpoint_dir(request, tmp_path_factory):
    if not DEFAULT_TOKENIZER_FILE.is_file():
        pytest.skip("build/tokenizer/tokenizer.model missing: run make tokenizer")
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    names = CHECKPOINTS[request.param]
    assert len(names) == len(set(names)) == 256
    tokenizer = TikTokenConverter(vocab_file=str(DEFAULT_TOKENIZER_FILE), pattern=_PAT_STR).converted()
    tokenizer.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in names])
    folder = tmp_path_factory.mktemp(request.param)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_both_releases_names_load_with_the_same_special_ids(checkpoint_dir):
    """Preprocessing, postprocessing, ltr_bls and the scheduler's request log all load it this way."""
    gpu = load_tokenizer(str(checkpoint_dir))
    assert (gpu.bos_id, gpu.eos_id, gpu.eot_id, gpu.pad_id, gpu.vocab_size) == (128000, 128001, 128009, 128004, 128256)


def test_checkpoint_folder_and_tiktoken_file_agree(checkpoint_dir):
    cpu = load_tokenizer(str(DEFAULT_TOKENIZER_FILE))
    gpu = load_tokenizer(str(checkpoint_dir))  # a folder: the GPU form
    assert type(cpu).__name__ == "TiktokenLlama3" and type(gpu).__name__ == "HuggingFaceLlama3"
    for attr in ("vocab_size", "bos_id", "eos_id", "eot_id", "pad_id"):
        assert getattr(cpu, attr) == getattr(gpu, attr), attr
    for text in TEXTS:
        ids = cpu.encode(text)
        assert gpu.encode(text) == ids, text
        assert gpu.decode_bytes(ids) == cpu.decode_bytes(ids) == text.encode()
        assert gpu.decode(ids) == text


def test_special_token_text_in_a_prompt_stays_text(checkpoint_dir):
    gpu = load_tokenizer(str(checkpoint_dir))
    assert gpu.eot_id not in gpu.encode("<|eot_id|>")
    assert gpu.decode([gpu.eot_id]) == "<|eot_id|>"


def test_llama3_tokenizer_matches_known_ids():
    tokenizer = load_tokenizer()
    assert tokenizer.encode("Hello, world!") == [9906, 11, 1917, 0]
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.eot_id, tokenizer.vocab_size) == (128000, 128001, 128009, 128256)



def test_special_ids_by_name_agree_and_match_the_known_ids(checkpoint_dir):
    cpu = load_tokenizer(str(DEFAULT_TOKENIZER_FILE))
    gpu = load_tokenizer(str(checkpoint_dir))
    known = {"<|begin_of_text|>": 128000, "<|start_header_id|>": 128006, "<|end_header_id|>": 128007,
             "<|eot_id|>": 128009}
    for name, token_id in known.items():
        assert cpu.special_id(name) == gpu.special_id(name) == token_id, name
    for tokenizer in (cpu, gpu):
        with pytest.raises(ValueError):
            tokenizer.special_id("<|not_a_special_token|>")
