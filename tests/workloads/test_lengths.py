"""The length tables the stand-in reads end each benchmark request where the workload says it ends."""

from __future__ import annotations

import json

import numpy as np
import pytest

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


def test_a_prompt_raw_or_chat_templated_gets_the_same_length_and_unknown_ones_their_draw() -> None:
    """With the real tokenizer and template, as `make lengths` keys them and the load tests send them."""
    from runtime.chat_template import single_turn_ids
    from runtime.llama3_tokenizer import load_tokenizer

    tok = load_tokenizer()
    template = lambda p: single_turn_ids(tok, p)  # noqa: E731
    prompts = ("Name three rivers.", "  Describe a sunset.\n")  # the template strips, the raw key does not
    pool = wl.PromptPool("p", prompts, np.array([5, 7]), np.array([40, 90]), ((40,), (90, 130)))
    table = LengthTable.from_samples("t", lengths.pool_samples([pool], tok.encode),
                                     aliases=lengths.chat_aliases(prompts, tok.encode, template))
    for r in wl.text_workload(pool, None, burst=20):
        raw = table.answer_length([tok.bos_id, *tok.encode(r.prompt)], r.seed)
        assert raw == table.answer_length(template(r.prompt), r.seed) == r.output_tokens
    unknown = template("What is the tallest mountain?")
    drawn = table.answer_length(unknown, seed=0)
    assert drawn in table.pooled and all(table.answer_length(unknown, s) == drawn for s in range(5))
    assert table.pooled.tolist() == [40, 90, 130]  # each prompt's lengths counted once


def test_a_dataset_prompt_raw_or_chat_templated_gets_the_same_length() -> None:
    """The real data, where the data folder is at hand: AlpacaEval's and Arena-Hard's prompts whose
    text the template changes (surrounding whitespace) among them."""
    from repo_paths import data_dir
    from runtime.chat_template import single_turn_ids
    from runtime.llama3_tokenizer import load_tokenizer

    try:
        root = data_dir(None)
    except FileNotFoundError:
        pytest.skip("no data folder")
    tok = load_tokenizer()
    template = lambda p: single_turn_ids(tok, p)  # noqa: E731
    pools = [wl.load_alpaca(root), wl.load_arena(root)]
    chosen = [(pool, i) for pool in pools for i in range(len(pool.prompts))
              if pool.prompts[i] != pool.prompts[i].strip()][:3] + [(pools[0], 0), (pools[1], 0)]
    samples = lengths.pool_samples(pools, tok.encode)
    table = LengthTable.from_samples("t", samples, aliases=lengths.chat_aliases(
        [pool.prompts[i] for pool, i in chosen], tok.encode, template))
    for pool, i in chosen:
        prompt = pool.prompts[i]
        for seed in range(3):
            want = table.answer_length([tok.bos_id, *tok.encode(prompt)], seed)
            assert want in pool.samples(i) and table.answer_length(template(prompt), seed) == want
