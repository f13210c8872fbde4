"""The loop benchmark's bookkeeping: disjoint prompt sets, which rows count for tau, synthetic logs."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.loop import served_pairs, split_prompts, synthetic_log
from predictor.data import CASTILLO_FILE
from runtime.request_log import read_rows


def test_split_prompts_is_disjoint_and_seeded():
    prompts = [f"p{i}" for i in range(100)]
    traffic, test = split_prompts(prompts, 60, 30, seed=1)
    assert len(traffic) == 60 and len(test) == 30 and not set(traffic) & set(test)
    assert split_prompts(prompts, 60, 30, seed=1) == (traffic, test) != split_prompts(prompts, 60, 30, seed=2)


def test_served_pairs_takes_completed_rows_of_the_version_asked():
    rows = [
        {"prompt": "a", "finish_reason": "stop", "score": 1.0, "output_tokens": 5, "predictor_version": "1"},
        {"prompt": "a", "finish_reason": "stop", "score": 2.0, "output_tokens": 6, "predictor_version": "2"},
        {"prompt": "b", "finish_reason": "length", "score": 3.0, "output_tokens": 9, "predictor_version": "2"},
        {"prompt": "c", "finish_reason": "cancelled", "score": 4.0, "output_tokens": 1, "predictor_version": "2"},
        {"prompt": "d", "finish_reason": "stop", "score": 5.0, "output_tokens": 2, "predictor_version": "2"},
    ]
    scores, lengths, prompts = served_pairs(rows, {"a", "b", "c"}, "2")
    assert prompts == ["a", "b"] and scores.tolist() == [2.0, 3.0] and lengths.tolist() == [6.0, 9.0]
    assert served_pairs(rows, {"a"})[0].tolist() == [2.0]  # any version: the last row of a prompt


def test_synthetic_log_rows_are_recorded_lengths_of_other_prompts(tmp_path):
    src = tmp_path / CASTILLO_FILE
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps({"prompt": f"p{i}", "output_tokens_samples": [i, i + 1]}) + "\n" for i in range(5)))
    path = synthetic_log(tmp_path, {"p0"}, 50, tmp_path / "log.jsonl", seed=0)
    rows = read_rows(path)
    assert len(rows) == 50 and {r["finish_reason"] for r in rows} == {"stop"}
    assert "p0" not in {r["prompt"] for r in rows}
    assert all(int(r["prompt"][1:]) <= r["output_tokens"] <= int(r["prompt"][1:]) + 1 for r in rows)
    assert np.all(np.diff([r["end_time"] for r in rows]) > 0)


def test_traffic_log_repeats_traffic_prompts_with_lengths_sampled_per_request(tmp_path):
    from benchmarks.loop import traffic_log

    src = tmp_path / CASTILLO_FILE
    src.parent.mkdir(parents=True)
    src.write_text("".join(json.dumps({"prompt": f"p{i}", "output_tokens_samples": [10 * i, 10 * i + 5]}) + "\n" for i in range(9)))
    rows = read_rows(traffic_log(tmp_path, ["p1", "p2", "p3", "absent"], 300, tmp_path / "log.jsonl", seed=0))
    assert len(rows) == 300 and {r["prompt"] for r in rows} == {"p1", "p2", "p3"}  # only traffic, each many times
    lengths = {(r["prompt"], r["output_tokens"]) for r in rows}
    assert lengths == {(f"p{i}", n) for i in (1, 2, 3) for n in (10 * i, 10 * i + 5)}  # both samples drawn


def test_requests_go_chat_templated_and_their_logged_user_turn_counts(monkeypatch):
    """The loop sends CASTILLO prompts as their lengths were recorded (a chat turn); the log keeps the
    turn stripped, which still matches the prompt sent."""
    from benchmarks import loop
    from loadtest.prompts import http_body
    from runtime.contracts import Entry

    sent = []

    class Reply:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def read(self):
            return b'data: {"finish_reason": "stop"}\n'

    def fake_urlopen(req, timeout):
        sent.append(json.loads(req.data))
        return Reply()

    monkeypatch.setattr(loop.urllib.request, "urlopen", fake_urlopen)
    assert loop.generate("h:1", " Sort a list. ", 64) == (True, "stop")
    assert loop.generate("h:1", " Sort a list. ", 64, prompt_format="raw") == (True, "stop")
    assert sent[0] == http_body(" Sort a list. ", 64, **{Entry.STREAM: False}) and Entry.PROMPT_TOKEN_IDS in sent[0]
    assert Entry.PROMPT_TOKEN_IDS not in sent[1]
    rows = [{"prompt": "Sort a list.", "finish_reason": "stop", "score": 1.0, "output_tokens": 5}]
    assert served_pairs(rows, {" Sort a list. "})[2] == ["Sort a list."]
