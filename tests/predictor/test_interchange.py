"""Interchange format: round trip, validation, and per-prompt label aggregation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.interchange import Example, read_jsonl, write_jsonl
from predictor.train import aggregate_labels


def test_round_trip(tmp_path):
    rows = [Example("hi", 3), Example("naïve \n prompt", 0, "gen-a", "src"), Example("", 4096)]
    path = tmp_path / "x.jsonl"
    assert write_jsonl(path, rows) == 3
    assert read_jsonl(path) == rows
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"prompt": "hi", "output_tokens": 3}  # plain: no null keys


@pytest.mark.parametrize("line", ['{"prompt": 1, "output_tokens": 2}', '{"prompt": "a", "output_tokens": "2"}',
                                  '{"prompt": "a"}', '{"prompt": "a", "output_tokens": -1}', '{"prompt": "a", "output_tokens": true}'])
def test_bad_rows_name_their_line(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "output_tokens": 1}\n' + line + "\n")
    with pytest.raises(ValueError, match=":2:"):
        read_jsonl(path)


def test_aggregate_labels_target_and_median():
    rows = [Example("p", 10, "T"), Example("p", 30, "A"), Example("p", 50, "B"),
            Example("q", 7, "A"), Example("q", 9, "T"), Example("r", 5)]
    prompts, labels = aggregate_labels(rows, "target", "T")
    assert dict(zip(prompts, labels)) == {"p": 10, "q": 9, "r": 5}  # rows without generator = target traffic
    prompts, labels = aggregate_labels(rows, "median", "T")
    assert dict(zip(prompts, labels)) == {"p": 30, "q": 8, "r": 5}
    assert isinstance(labels, np.ndarray)
