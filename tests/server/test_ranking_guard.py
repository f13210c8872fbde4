"""The ranking guard on the real server: with a predictor that scores at chance (length_predictor
`score_mode: random`), the guarded policy measures tau near 0 over its window, never trusts the
ranking, publishes it on /metrics, and admits in arrival order."""

from __future__ import annotations


import pytest
import tritonclient.grpc as grpcclient

from engine.lengths import LengthTable, prompt_key
from loadtest.grpc_stream import generate
from runtime.llama3_tokenizer import load_tokenizer
from tests.server.helpers import metric_value, start_server, wait_for
from tests.server.test_scheduling import BLOCKER, BURST_TOKENS, Sent, burst_completion_order

PROMPTS = [f"Question {i}: tell me something about the number {i}." for i in range(60)]
WINDOW = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    encode = load_tokenizer().encode
    table_path = tmp_path_factory.mktemp("lengths") / "guard.json"
    # natural lengths 2-21 tokens: answers end on their own ("stop"), so every pair's order is known
    lengths = {prompt_key(encode(p)): [2 + i % 20] for i, p in enumerate(PROMPTS)}
    lengths[prompt_key(encode(BLOCKER))] = [1024]  # holds the slot until the test stops it
    LengthTable.from_samples("guard", lengths).save(table_path)
    srv = start_server(tmp_path_factory.mktemp("guard"), {
        "tensorrt_llm": {"length_table": str(table_path)},
        "ltr_scheduler": {"policy": "guarded", "max_inflight": "1", "guard_window": str(WINDOW),
                          "guard_min_samples": "20", "guard_every": "5", "guarded_short_quantile": "1"},
        "length_predictor": {"score_mode": "random"},
    })
    yield srv
    srv.stop()


def test_random_scores_keep_the_guard_distrusting_and_on_metrics(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        for prompt in PROMPTS:
            gen = generate(client, prompt, 50, model="ensemble")
            assert gen.error is None, gen.error
    finally:
        client.close()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_ranking_tau_samples") == WINDOW)
    assert metric_value(server, "ltr_scheduler_ranking_tau_window") == WINDOW
    assert abs(metric_value(server, "ltr_scheduler_ranking_tau")) < 0.5  # chance, measured over the window
    assert metric_value(server, "ltr_scheduler_ranking_trusted") == 0.0
    assert metric_value(server, "ltr_scheduler_requests_total", event="ranking_recovered") == 0.0


def test_random_scores_give_arrival_order(server):
    burst = [Sent(p, BURST_TOKENS) for p in PROMPTS[10:16]]  # natural lengths 12-17: all cut at 8
    order = burst_completion_order(server, burst)
    assert order == [s.prompt for s in burst]
    assert metric_value(server, "ltr_scheduler_requests_total", event="oldest_first") >= len(burst)
