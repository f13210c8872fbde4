"""The length tables the stand-in reads end each benchmark request where the workload says it ends."""

from __future__ import annotations

import json

import numpy as np

from engine.lengths import LengthTable, prompt_key
from workloads import lengths
from workloads import traces as wl


def encode(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_served_and_simulated_requests_end_after_the_same_length() -> None:
    pools = [wl.PromptPool("one", ("a", "b"), np.array([2, 2]), np.array([10, 20])),
             wl.PromptPool("two", ("c",), np.array([2]), np.array([30]), ((30, 31, 32),))]
    table = LengthTable.from_samples("t", lengths.pool_samples(pools, encode))
    for p in pools:
        for r in wl.text_workload(p, None, burst=30):
            assert table.answer_length([128000, *encode(r.prompt)], r.seed) == r.output_tokens


def test_castillo_rows_keep_all_their_samples(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": p, "output_tokens_samples": s})
                              for p, s in [("x", [1, 2, 3]), ("y", [4])]) + "\n")
    assert lengths.castillo_samples(path, encode) == {prompt_key(encode("x")): [1, 2, 3], prompt_key(encode("y")): [4]}
