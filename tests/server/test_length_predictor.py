"""The length_predictor Triton model on a real tritonserver: scores equal the runtime's, whatever
the padding a request arrives with, and concurrent requests of mixed widths each get their own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from predictor.paths import MODEL_DIR
from runtime.length_predictor import LengthRanker, pad_batch
from tests.server.helpers import post_json, start_server

PROMPTS = [
    "What is the capital of France?",
    "Write a detailed, multi-section essay on the causes of the First World War.",
    "Say hi.",
    "Explain quicksort with a Python example and a complexity analysis.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("predictor"))
    yield srv
    srv.stop()


def infer(server, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    body = {"inputs": [
        {"name": "input_ids", "shape": list(ids.shape), "datatype": "INT64", "data": ids.ravel().tolist()},
        {"name": "attention_mask", "shape": list(mask.shape), "datatype": "INT64", "data": mask.ravel().tolist()},
    ]}
    status, out = post_json(f"http://{server.http_url}/v2/models/length_predictor/infer", body)
    assert status == 200, out
    (score,) = [o for o in out["outputs"] if o["name"] == "score"]
    assert score["shape"] == [ids.shape[0], 1] and score["datatype"] == "FP32"
    return np.array(score["data"], dtype=np.float32)


def test_served_scores_match_runtime_under_any_padding(server):
    ranker = LengthRanker(MODEL_DIR)
    expected = ranker.score_texts(PROMPTS)
    seqs = ranker.tokenizer.encode_ids(PROMPTS)
    for multiple in (1, 32, 128):
        ids, mask = pad_batch(seqs, ranker.tokenizer.pad_id, multiple_of=multiple)
        np.testing.assert_allclose(infer(server, ids, mask), expected, atol=1e-4)


def test_concurrent_requests_of_mixed_widths(server):
    ranker = LengthRanker(MODEL_DIR)
    expected = ranker.score_texts(PROMPTS)
    seqs = ranker.tokenizer.encode_ids(PROMPTS)

    def one(i: int) -> float:
        ids, mask = pad_batch([seqs[i % len(seqs)]], ranker.tokenizer.pad_id, multiple_of=32)
        return float(infer(server, ids, mask)[0])

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(32)))
    np.testing.assert_allclose(got, [expected[i % len(PROMPTS)] for i in range(32)], atol=1e-4)
