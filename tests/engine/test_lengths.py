"""Length tables: known prompts end after a recorded length, unknown ones after a seeded draw."""

from __future__ import annotations

import numpy as np
import pytest

from engine.batching import BatchingEngine
from engine.lengths import LLAMA3_BOS_ID, LengthTable, pick_sample, prompt_key
from engine.request import EngineRequest
from engine.tokens import WordTokenSource
from engine.vocab import EOT_ID

KNOWN = [9906, 1917, 0]
TWO_SAMPLES = [791, 6460]


def table(unknown: str = "sample") -> LengthTable:
    return LengthTable.from_samples(
        "toy", {prompt_key(KNOWN): [7], prompt_key(TWO_SAMPLES): [100, 300]}, unknown  # type: ignore[arg-type]
    )


def test_prompt_key_ignores_a_leading_bos_only() -> None:
    assert prompt_key([LLAMA3_BOS_ID, *KNOWN]) == prompt_key(KNOWN)
    assert prompt_key(KNOWN) != prompt_key(KNOWN[:-1]) != prompt_key(list(reversed(KNOWN)))


def test_known_prompts_end_after_a_recorded_length_picked_by_the_seed() -> None:
    t = table()
    assert t.answer_length(KNOWN, seed=5) == 7
    picks = {t.answer_length(TWO_SAMPLES, seed=s) for s in range(40)}
    assert picks == {100, 300}, "a sampling model answers differently across seeds"
    assert all(t.answer_length(TWO_SAMPLES, s) == pick_sample((100, 300), s) for s in range(10))


def test_unknown_prompts_draw_from_the_distribution_seeded_by_their_ids() -> None:
    t = table()
    lengths = [t.answer_length([5, i, 9], seed=0) for i in range(200)]
    assert set(lengths) <= {7, 100, 300} and len(set(lengths)) == 3
    assert [t.answer_length([5, i, 9], seed=123) for i in range(200)] == lengths, "the same prompt, the same length"
    assert table("cap").answer_length([5, 5, 5], seed=0) is None


def test_round_trip_and_bad_settings(tmp_path) -> None:  # noqa: ANN001
    table().save(tmp_path / "t.json")
    loaded = LengthTable.load(tmp_path / "t.json")
    assert loaded.samples == table().samples and list(loaded.pooled) == [7, 100, 300]
    with pytest.raises(ValueError, match="sample, cap|'sample', 'cap'"):
        LengthTable.load(tmp_path / "t.json", "guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no lengths"):
        LengthTable.from_samples("empty", {})
    assert "2 prompts" in table().describe()


@pytest.mark.parametrize("answer_len,cap,sent,reason", [(5, 50, 5, "end_id"), (50, 8, 8, "length"), (None, 6, 6, "length")])
def test_engine_ends_the_answer_with_end_id_at_its_natural_length(answer_len, cap, sent, reason) -> None:  # noqa: ANN001
    eng = BatchingEngine(token_source=WordTokenSource())
    r = EngineRequest("r", prompt_len=4, max_tokens=cap, answer_len=answer_len, end_id=EOT_ID)
    eng.submit(r)
    emitted: list[int] = []
    while not eng.idle:
        emitted += [tok for _, tok in eng.step().emitted]
    assert r.finish_reason == reason and r.output_tokens == sent
    assert (emitted[-1] == EOT_ID) == (reason == "end_id") and EOT_ID not in emitted[:sent]
    assert len(emitted) == sent + (reason == "end_id")


def test_pooled_lengths_are_every_sample() -> None:
    assert np.array_equal(table().pooled, [7, 100, 300])


TEMPLATED = [128006, 882, 128007, 271, *KNOWN, 128009, 128006, 78191, 128007, 271]  # the chat form of KNOWN


def aliased(unknown: str = "sample") -> LengthTable:
    return LengthTable.from_samples(
        "toy", {prompt_key(KNOWN): [7], prompt_key(TWO_SAMPLES): [100, 300]}, unknown,  # type: ignore[arg-type]
        aliases={prompt_key(TEMPLATED): prompt_key(KNOWN), prompt_key([1, 2]): "no-such-key"},
    )


def test_an_alias_finds_the_prompts_lengths_in_either_form() -> None:
    t = aliased()
    for seed in range(5):
        assert t.answer_length([LLAMA3_BOS_ID, *TEMPLATED], seed) == t.answer_length(KNOWN, seed) == 7
    assert t.aliases == {prompt_key(TEMPLATED): prompt_key(KNOWN)}  # an alias of nothing is dropped


def test_aliases_add_no_lengths_and_unknown_prompts_keep_their_seeded_draw() -> None:
    plain, t = table(), aliased()
    assert t.pooled.tolist() == plain.pooled.tolist()
    for i in range(50):
        ids = [5, i, 9]
        assert t.answer_length(ids, seed=3) == plain.answer_length(ids, seed=3) == t.answer_length(ids, seed=4)
    assert aliased("cap").answer_length([5, 9], seed=0) is None


def test_aliases_survive_a_save_and_load_and_old_files_still_load(tmp_path) -> None:  # noqa: ANN001
    t = aliased()
    t.save(tmp_path / "t.json")
    back = LengthTable.load(tmp_path / "t.json")
    assert back.aliases == t.aliases and back.answer_length(TEMPLATED, 0) == 7
    (tmp_path / "old.json").write_text('{"name": "old", "samples": {"%s": [7]}}' % prompt_key(KNOWN))
    old = LengthTable.load(tmp_path / "old.json")
    assert old.aliases == {} and "rerun `make lengths`" in old.describe()
