"""Where an answer ends: the number of tokens the target model gives a prompt before its end token.

A real model decides the length of its answer; clients send one generic `max_tokens` cap. The
stand-in engine and the simulator therefore end each answer with `end_id` after a *natural length*
taken from a `LengthTable`, prepared from the target model's recorded answers
(`python -m workloads.lengths`, `make lengths`):

* a prompt in the table ends after one of its recorded lengths; where there are several samples
  (a sampling model answers differently each time), the request's seed picks one;
* a prompt not in the table ends after a length drawn from the table's pooled lengths, seeded by
  the prompt's token ids, so that the same prompt always gets the same length;
* with `unknown="cap"`, an unknown prompt has no natural length and runs to its `max_tokens`.

`max_tokens` stays a cap everywhere: an answer longer than it ends with finish reason `length`.
Prompts are keyed by their Llama-3 token ids (without the leading BOS), as preprocessing sends them.
A prompt arrives raw (`text_input` tokenized) or chat-templated (`prompt_token_ids`, the Llama-3
instruct template the recorded answers were asked with): the table holds each prompt's templated key
as an alias of its raw one (`make lengths` writes both), so both forms end after the same recorded
length, and an unknown prompt's draw is seeded by the key it arrived with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np

LLAMA3_BOS_ID = 128000  # <|begin_of_text|>
UnknownPrompts = Literal["sample", "cap"]
UNKNOWN_CHOICES: tuple[str, ...] = ("sample", "cap")


def prompt_key(ids: Sequence[int]) -> str:
    """A prompt's key in a length table: a hash of its token ids, a leading BOS dropped."""
    ids = list(ids)
    if ids and ids[0] == LLAMA3_BOS_ID:
        ids = ids[1:]
    return hashlib.sha1(np.asarray(ids, dtype="<i4").tobytes()).hexdigest()[:16]


def pick_sample(samples: Sequence[int], seed: int) -> int:
    """One of a prompt's recorded lengths, chosen by the request's seed (the same seed, the same one)."""
    if len(samples) == 1:
        return int(samples[0])
    return int(samples[np.random.default_rng(abs(int(seed))).integers(len(samples))])


@dataclass(frozen=True)
class LengthTable:
    """Recorded answer lengths of one target model, by prompt, and all of them pooled."""

    name: str
    samples: Mapping[str, tuple[int, ...]]
    pooled: np.ndarray  # every recorded length, the distribution unknown prompts draw from
    unknown: UnknownPrompts = "sample"
    aliases: Mapping[str, str] = field(default_factory=dict)  # another form's key -> the prompt's key in samples

    def __post_init__(self) -> None:
        if self.unknown not in UNKNOWN_CHOICES:
            raise ValueError(f"unknown-prompt handling must be one of {UNKNOWN_CHOICES}, got {self.unknown!r}")
        if self.unknown == "sample" and not len(self.pooled):
            raise ValueError(f"length table {self.name!r} has no lengths to draw from")

    def answer_length(self, prompt_ids: Sequence[int], seed: int) -> int | None:
        """Tokens before the end token for this prompt and seed; None: no natural end (run to the cap)."""
        key = prompt_key(prompt_ids)
        known = self.samples.get(key) or self.samples.get(self.aliases.get(key, ""))
        if known:
            return pick_sample(known, seed)
        if self.unknown == "cap":
            return None
        rng = np.random.default_rng(int(key, 16))
        return int(self.pooled[rng.integers(len(self.pooled))])

    def describe(self) -> str:
        """One line for the deploy banner and logs."""
        unknown = "drawn from its length distribution" if self.unknown == "sample" else "run to max_tokens"
        forms = (f"raw or chat-templated ({len(self.aliases)} templated keys)" if self.aliases
                 else "raw only: no chat-templated keys, rerun `make lengths`")
        return (f"length table {self.name!r}: {len(self.samples)} prompts, {forms}, median answer "
                f"{int(np.median(self.pooled)) if len(self.pooled) else 0} tokens; unknown prompts {unknown}")

    # ---------------------------------------------------------------------------------- files
    def to_json(self) -> dict:
        return {"name": self.name, "samples": {k: list(v) for k, v in self.samples.items()},
                "aliases": dict(self.aliases)}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json()) + "\n")

    @classmethod
    def from_samples(cls, name: str, samples: Mapping[str, Sequence[int]], unknown: UnknownPrompts = "sample",
                     aliases: Mapping[str, str] | None = None) -> "LengthTable":
        """`aliases` add keys without adding lengths: the pooled distribution counts each prompt once."""
        by_key = {k: tuple(int(x) for x in v) for k, v in samples.items() if len(v)}
        pooled = np.array(sorted(x for v in by_key.values() for x in v), dtype=np.int64)
        kept = {a: k for a, k in (aliases or {}).items() if k in by_key and a not in by_key}
        return cls(name, by_key, pooled, unknown, kept)

    @classmethod
    def load(cls, path: str | Path, unknown: UnknownPrompts = "sample") -> "LengthTable":
        data = json.loads(Path(path).read_text())
        return cls.from_samples(data["name"], data["samples"], unknown, data.get("aliases"))
