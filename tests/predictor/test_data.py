"""Loaders: labels are Llama-3 token counts, rows are joined by instruction, Arena joins by uid."""

from __future__ import annotations

import json

import pytest

from predictor.data import llama3_counter, load_alpaca_eval, load_arena_hard
from predictor.paths import TARGET_GENERATOR


@pytest.fixture()
def data_dir(tmp_path):
    alpaca = tmp_path / "alpaca_eval"
    alpaca.mkdir()
    rows = [("Say hi.", "Hi there!"), ("Write a haiku.", "old pond\nfrog jumps in\nsound of water")]
    target = [{"dataset": "d", "instruction": i, "output": o, "generator": TARGET_GENERATOR} for i, o in rows]
    (alpaca / f"{TARGET_GENERATOR}.json").write_text(json.dumps(target))
    # another generator listing the same instructions in another order (as Llama3-PBM-Nova-70B does)
    other = [{"dataset": "d", "instruction": i, "output": o * 3, "generator": "other"} for i, o in reversed(rows)]
    (alpaca / "other.json").write_text(json.dumps(other))
    arena = tmp_path / "arena_hard_v0.1"
    arena.mkdir()
    qs = [{"uid": "u1", "category": "c", "cluster": "k", "prompt": "Explain TCP."},
          {"uid": "u2", "category": "c", "cluster": "k", "prompt": "No answer for me."}]
    (arena / "v0.1_question.jsonl").write_text("\n".join(json.dumps(q) for q in qs) + "\n")
    ans = {"uid": "u1", "model": "llama-3-8b-instruct",
           "messages": [{"role": "user", "content": "Explain TCP."},
                        {"role": "assistant", "content": {"answer": "TCP is a reliable, ordered byte stream."}}]}
    (arena / "v0.1_llama-3-8b-instruct.jsonl").write_text(json.dumps(ans) + "\n")
    return tmp_path


def words(text: str) -> int:
    return len(text.split())


def test_alpaca_rows_join_by_instruction(data_dir):
    rows = load_alpaca_eval(data_dir, words)
    by = {(r.generator, r.prompt): r.output_tokens for r in rows}
    assert by[(TARGET_GENERATOR, "Say hi.")] == 2
    assert by[("other", "Say hi.")] == words("Hi there!" * 3)
    assert by[("other", "Write a haiku.")] == words("old pond\nfrog jumps in\nsound of water" * 3)
    assert [r.prompt for r in rows[:2]] == ["Say hi.", "Write a haiku."]  # target's order


def test_arena_joins_by_uid_and_skips_unanswered(data_dir):
    rows = load_arena_hard(data_dir, words)
    assert [(r.prompt, r.output_tokens) for r in rows] == [("Explain TCP.", 7)]


def test_labels_are_real_llama3_token_counts(data_dir):
    try:
        count = llama3_counter()
    except FileNotFoundError:
        pytest.skip("Llama-3 tokenizer not fetched (make tokenizer)")
    # Known Llama-3 tokenizations: "Hi there!" -> ["Hi", " there", "!"]
    assert count("Hi there!") == 3
    assert count("") == 0
    rows = load_alpaca_eval(data_dir, count)
    from runtime.llama3_tokenizer import load_tokenizer

    tok = load_tokenizer()
    assert rows[0].output_tokens == len(tok.encode("Hi there!"))
