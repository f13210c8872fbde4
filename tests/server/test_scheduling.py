"""Scheduling on the real server: with one LLM slot busy, a burst of short and long requests
finishes shortest-first under `ltr` and `oracle` and in arrival order under `fcfs`; starvation
prevention lets a long request through within its bound; cancelled requests free what they held."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from loadtest.grpc_stream import Generation, generate, stop_request, tensor
from predictor.runtime import LengthRanker, latest_version_dir
from repo_paths import SOURCE_REPOSITORY
from runtime.llama3_tokenizer import load_tokenizer
from tests.server.helpers import metric_value, start_server

SHORT = [
    ("Is 17 a prime number? Answer yes or no.", 4),
    ("What is 2 + 2? Reply with the number only.", 4),
    ("Give me one synonym for 'happy'. One word only.", 4),
]
LONG = [
    ("Write a detailed, multi-section essay on the causes and consequences of the French Revolution.", 40),
    ("Write a complete tutorial, with code examples, on building a REST API in Python with error handling and tests.", 40),
    ("Write a long short story about a lighthouse keeper who discovers a mysterious map, with dialogue.", 40),
]
BLOCKER = ("Write a long, detailed travel guide to Japan covering every region.", 60)


def burst_completion_order(server, burst: list[tuple[str, int]], gap_s: float = 0.05) -> list[str]:
    """Occupy the only slot, send `burst` in order while it is busy, return prompts by finish."""
    finished: list[str] = []
    lock = threading.Lock()

    def run(prompt: str, max_tokens: int) -> None:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        gen = generate(client, prompt, max_tokens)
        client.close()
        assert gen.error is None and gen.tokens == max_tokens, gen.error
        with lock:
            finished.append(prompt)

    blocker = threading.Thread(target=run, args=BLOCKER)
    blocker.start()
    time.sleep(0.3)  # the blocker now holds the slot
    threads = []
    for prompt, max_tokens in burst:
        thread = threading.Thread(target=run, args=(prompt, max_tokens))
        thread.start()
        threads.append(thread)
        time.sleep(gap_s)  # defined arrival order
    for thread in [blocker, *threads]:
        thread.join(timeout=120)
    assert finished[0] == BLOCKER[0]
    return finished[1:]


def interleaved() -> list[tuple[str, int]]:
    return [req for pair in zip(LONG, SHORT) for req in pair]  # long first in each pair


@pytest.mark.parametrize("policy", ["ltr", "oracle"])
def test_short_requests_overtake_long_ones(tmp_path, policy):
    if policy == "ltr":  # the premise: the trained predictor ranks these prompts as a person would
        ranker = LengthRanker(latest_version_dir(SOURCE_REPOSITORY / "length_predictor"))
        short = ranker.score_texts([p for p, _ in SHORT])
        long = ranker.score_texts([p for p, _ in LONG])
        assert short.max() < long.min(), (short, long)
    server = start_server(tmp_path, {"ltr_scheduler": {"policy": policy, "max_inflight": "1"}})
    try:
        order = burst_completion_order(server, interleaved())
    finally:
        server.stop()
    shorts = {p for p, _ in SHORT}
    assert set(order[:3]) == shorts, order


def test_fcfs_serves_in_arrival_order(tmp_path):
    server = start_server(tmp_path, {"ltr_scheduler": {"policy": "fcfs", "max_inflight": "1"}})
    try:
        order = burst_completion_order(server, interleaved())
    finally:
        server.stop()
    assert order == [p for p, _ in interleaved()]


def test_starvation_prevention_admits_a_long_request_within_the_bound(tmp_path):
    threshold = 2
    server = start_server(
        tmp_path,
        {"ltr_scheduler": {"policy": "oracle", "max_inflight": "1", "starvation_threshold": str(threshold)}},
    )
    try:
        burst = [LONG[0]] + [(f"{SHORT[i % 3][0]} ({i})", 4) for i in range(6)]
        order = burst_completion_order(server, burst)
        promoted = metric_value(server, "ltr_scheduler_requests_total", event="promoted")
    finally:
        server.stop()
    assert order.index(LONG[0][0]) == threshold  # overtaken exactly `threshold` times
    assert promoted >= 1


class StreamInBackground:
    """A gRPC streaming request that the test can cancel the way a client would.

    It calls `ltr_scheduler` directly: Triton does not pass a client's cancellation on to a
    composing model that is already running inside an ensemble (core's ensemble scheduler only
    cancels steps not yet scheduled), so only direct callers can cancel a queued or generating
    request. See README, "Cancellation"."""

    def __init__(self, server, prompt: str, max_tokens: int, score: float = 0.0) -> None:
        tokenizer = load_tokenizer()
        ids = np.array([[tokenizer.bos_id] + tokenizer.encode(prompt)], dtype=np.int32)
        inputs = [
            tensor("input_ids", ids),
            tensor("input_lengths", np.array([[ids.shape[1]]], dtype=np.int32)),
            tensor("request_output_len", np.array([[max_tokens]], dtype=np.int32)),
            tensor("score", np.array([[score]], dtype=np.float32)),
            tensor("streaming", np.array([[True]])),
        ]
        self.client = grpcclient.InferenceServerClient(server.grpc_url)
        self.tokens = 0
        self.client.start_stream(callback=self._on_response)
        self.client.async_stream_infer("ltr_scheduler", inputs, enable_empty_final_response=True)

    def _on_response(self, result, error) -> None:
        if error is None and result.as_numpy("sequence_length") is not None:
            self.tokens += int(result.as_numpy("sequence_length").reshape(-1)[0])

    def cancel(self) -> None:
        self.client.stop_stream(cancel_requests=True)
        self.client.close()


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture()
def one_slot_server(tmp_path):
    server = start_server(
        tmp_path,
        {"ltr_scheduler": {"max_inflight": "1", "cancel_poll_ms": "50"}, "tensorrt_llm": {"max_batch_slots": "1"}},
    )
    yield server
    server.stop()


def test_cancelling_a_queued_request_removes_it_from_the_queue(one_slot_server):
    server = one_slot_server
    running = StreamInBackground(server, BLOCKER[0], 300)
    assert wait_for(lambda: running.tokens > 0)
    queued = StreamInBackground(server, SHORT[0][0], 4)
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_waiting_requests") == 1)
    queued.cancel()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="removed") == 1)
    assert metric_value(server, "ltr_scheduler_waiting_requests") == 0
    running.cancel()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0)
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="cancelled") == 2)
    assert metric_value(server, "ltr_scheduler_requests_total", event="completed") == 0


def test_cancelling_a_generating_request_frees_its_slot_and_the_engine(one_slot_server):
    server = one_slot_server
    long_request = StreamInBackground(server, BLOCKER[0], 1000)  # ~10 s of generation
    assert wait_for(lambda: long_request.tokens >= 3)
    long_request.cancel()
    cancelled_at = time.monotonic()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0, 2.0)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    gen = generate(client, SHORT[0][0], 4)
    client.close()
    assert gen.error is None and gen.tokens == 4
    # Had the engine (one slot) kept generating the cancelled 1000 tokens, this would take ~10 s.
    assert time.monotonic() - cancelled_at < 3.0
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="completed") == 1)
    assert metric_value(server, "ltr_scheduler_requests_total", event="cancelled") == 1


def test_stopping_ensemble_requests_by_id_frees_the_queue_and_the_slot(one_slot_server):
    """Ensemble clients end a request the TensorRT-LLM way: `stop` with the same request id."""
    server = one_slot_server
    results: dict[str, Generation] = {}

    def run(request_id: str, max_tokens: int) -> None:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        results[request_id] = generate(client, BLOCKER[0], max_tokens, request_id=request_id)
        client.close()

    threads = [threading.Thread(target=run, args=("generating", 1000))]
    threads[0].start()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 1)
    threads.append(threading.Thread(target=run, args=("queued", 1000)))
    threads[1].start()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_waiting_requests") == 1)

    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert stop_request(client, "queued") is None
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_waiting_requests") == 0, 2.0)
    assert stop_request(client, "generating") is None
    for thread in threads:
        thread.join(timeout=5)
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0, 2.0)
    assert results["queued"].tokens == 0 and 0 < results["generating"].tokens < 1000
    assert "no live request" in stop_request(client, "generating")
    gen = generate(client, SHORT[0][0], 4)  # the one engine slot is free again
    assert gen.error is None and gen.tokens == 4
    client.close()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="completed") == 1)
    assert [metric_value(server, "ltr_scheduler_requests_total", event=e) for e in ("cancelled", "removed", "failed")] == [2, 1, 0]
