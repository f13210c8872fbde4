"""The Llama-3 tokenizer behind one small interface, from either of its two published forms.

- On CPU machines: Meta's tiktoken BPE file `tokenizer.model` (128,000 ranks + 256 special tokens
  from id 128000), as shipped in the PyPI package `llama-models==0.3.0`; `make tokenizer` puts it in
  `build/tokenizer/tokenizer.model`.
- On GPU machines: a Hugging Face checkpoint directory holding `tokenizer.json`.

Both give the same ids for the same text; callers never know which one they hold.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

from repo_paths import BUILD_DIR

DEFAULT_TOKENIZER_FILE = BUILD_DIR / "tokenizer" / "tokenizer.model"
TOKENIZER_ENV = "LTR_TOKENIZER"

# Meta's pre-tokenizer pattern and special-token layout (llama_models/llama3/tokenizer.py).
_PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_NAMED_SPECIAL = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
]
_NUM_SPECIAL = 256
# The names of id 128004, the pad id: Llama-3.1 and later call it <|finetune_right_pad_id|>; the
# Llama-3 (3.0) checkpoints, Meta-Llama-3-8B-Instruct among them, <|reserved_special_token_2|>
# (where 3.1's file has reserved_2 at 128005: hence the order, the 3.1 name first).
_PAD_NAMES = ("<|finetune_right_pad_id|>", "<|reserved_special_token_2|>")
# Meta's Llama-3 (3.0) special-token names (meta-llama/llama3, tokenizer.py): ids 128002-128005,
# 128008 and 128010 on are reserved tokens; the rest are named as in 3.1. For tests and fixtures.
LLAMA3_SPECIAL_NAMES = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_4|>", "<|eot_id|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(5, _NUM_SPECIAL - 5)]


class Tokenizer(Protocol):
    """What preprocessing, postprocessing and the predictor's labelling need."""

    vocab_size: int
    bos_id: int
    eos_id: int  # <|end_of_text|>
    eot_id: int  # <|eot_id|>, what Llama-3-Instruct ends a turn with
    pad_id: int

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no BOS/EOS, special-token text encoded as text)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        ...

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Raw bytes of the tokens: a token may end in the middle of a UTF-8 character."""
        ...

    def special_id(self, name: str) -> int:
        """The id of a special token by its text (`<|start_header_id|>`), for chat templates: the
        only way to get a special id, since `encode` keeps special-token text as text."""
        ...


class TiktokenLlama3:
    """Meta's `tokenizer.model` through tiktoken, exactly as llama_models builds it."""

    def __init__(self, model_file: Path) -> None:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(str(model_file))
        names = _NAMED_SPECIAL + [
            f"<|reserved_special_token_{2 + i}|>" for i in range(_NUM_SPECIAL - len(_NAMED_SPECIAL))
        ]
        self.special_tokens = {name: len(ranks) + i for i, name in enumerate(names)}
        self._enc = tiktoken.Encoding(
            name=model_file.name,
            pat_str=_PAT_STR,
            mergeable_ranks=ranks,
            special_tokens=self.special_tokens,
        )
        self.vocab_size = len(ranks) + len(names)
        self.bos_id = self.special_tokens["<|begin_of_text|>"]
        self.eos_id = self.special_tokens["<|end_of_text|>"]
        self.eot_id = self.special_tokens["<|eot_id|>"]
        self.pad_id = self.special_tokens["<|finetune_right_pad_id|>"]

    def encode(self, text: str) -> list[int]:
        return self._enc.encode(text, disallowed_special=())

    def decode(self, ids: Sequence[int]) -> str:
        return self._enc.decode(list(ids))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self._enc.decode_bytes(list(ids))

    def special_id(self, name: str) -> int:
        if name not in self.special_tokens:
            raise ValueError(f"{name!r} is not a Llama-3 special token")
        return self.special_tokens[name]


class HuggingFaceLlama3:
    """A checkpoint's `tokenizer.json` (byte-level BPE) through the `tokenizers` package."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(tokenizer_json))
        # Special-token text typed in a prompt ("<|eot_id|>") stays text, as with tiktoken on CPU;
        # otherwise a user could end the turn on GPU only.
        self._tok.encode_special_tokens = True
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.bos_id = self._special("<|begin_of_text|>")
        self.eos_id = self._special("<|end_of_text|>")
        self.eot_id = self._special("<|eot_id|>")
        self.pad_id = self._first_special(_PAD_NAMES)
        self._byte_of_char = {ch: b for b, ch in _bytes_to_unicode().items()}

    def _special(self, name: str) -> int:
        token_id = self._tok.token_to_id(name)
        if token_id is None:
            raise ValueError(f"tokenizer.json has no {name}: not a Llama-3 tokenizer")
        return token_id

    def _first_special(self, names: Sequence[str]) -> int:
        """The id of the first of `names` the file has (one id, named differently across Llama-3 releases)."""
        for name in names:
            token_id = self._tok.token_to_id(name)
            if token_id is not None:
                return token_id
        raise ValueError(f"tokenizer.json has none of {list(names)}: not a Llama-3 tokenizer")

    def special_id(self, name: str) -> int:
        return self._special(name)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        out = bytearray()
        for token_id in ids:
            piece = self._tok.id_to_token(int(token_id)) or ""
            if piece.startswith("<|") and piece.endswith("|>"):
                out += piece.encode()
            else:
                out += bytes(self._byte_of_char[ch] for ch in piece)
        return bytes(out)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map used by byte-level BPE vocabularies."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def resolve_tokenizer_path(path: str | os.PathLike[str] | None = None) -> Path:
    """`path`, else $LTR_TOKENIZER, else build/tokenizer/tokenizer.model; a directory means a
    Hugging Face checkpoint (its tokenizer.json)."""
    chosen = Path(path or os.environ.get(TOKENIZER_ENV) or DEFAULT_TOKENIZER_FILE)
    if chosen.is_dir():
        chosen = chosen / "tokenizer.json"
    if not chosen.is_file():
        raise FileNotFoundError(
            f"Llama-3 tokenizer not found at {chosen}: run `make tokenizer` (CPU) or point "
            f"{TOKENIZER_ENV} at a Hugging Face checkpoint directory (GPU)"
        )
    return chosen


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None) -> Tokenizer:
    """Load (once per path) the Llama-3 tokenizer from a tiktoken file or a tokenizer.json."""
    resolved = resolve_tokenizer_path(path)
    if resolved.name == "tokenizer.json":
        return HuggingFaceLlama3(resolved)
    return TiktokenLlama3(resolved)
