"""Scheduling on the real server: with one LLM slot busy, a burst of requests that all ask for the
same `max_tokens` finishes in the order of the predictor's score under `ltr`, of the experiments-only
`expected_output_len` under `oracle`, and of arrival under `fcfs`; starvation prevention lets a long
request through within its bound; a full queue answers "server overloaded"; cancelled and stopped
requests free what they held, and a stopped request's id can be used again.

Arrival order and the end of the blocker are arranged by the server's own state (the waiting gauge, a
`stop`), never by sleeps, and every client thread's failure is collected and fails the test."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from loadtest.grpc_stream import Generation, generate, stop_request, tensor
from repo_paths import SOURCE_REPOSITORY
from runtime.length_predictor import LengthRanker, latest_version_dir
from runtime.llama3_tokenizer import load_tokenizer
from tests.server.helpers import metric_value, start_server, wait_for

SHORT = [
    "Is 17 a prime number? Answer yes or no.",
    "What is 2 + 2? Reply with the number only.",
    "Give me one synonym for 'happy'. One word only.",
]
LONG = [
    "Write a detailed, multi-section essay on the causes and consequences of the French Revolution.",
    "Write a complete tutorial, with code examples, on building a REST API in Python with error handling and tests.",
    "Write a long short story about a lighthouse keeper who discovers a mysterious map, with dialogue.",
]
BLOCKER = "Write a long, detailed travel guide to Japan covering every region."
BURST_TOKENS = 8  # every burst request asks for as many tokens: a cap cannot order them
# The oracle's hints, the wrong way round for the predictor (which ranks SHORT below LONG): under
# `ltr` they must be ignored, under `oracle` they must decide.
HINT = {**{p: 400 for p in SHORT}, **{p: 10 for p in LONG}}


@dataclass
class Sent:
    prompt: str
    max_tokens: int = BURST_TOKENS
    expected_output_len: int | None = None


@dataclass
class Clients:
    """Client threads against one server: each finished prompt in order, and every failure."""

    server: object
    finished: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    results: dict[str, Generation] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, sent: Sent, request_id: str | None = None, complete: bool = True) -> None:
        """Send `sent` from a thread; unless `complete` is False (a request the test will stop), it
        must end without error and with exactly its max_tokens."""

        def run() -> None:
            try:
                client = grpcclient.InferenceServerClient(self.server.grpc_url)
                try:
                    extra = {} if sent.expected_output_len is None else {"expected_output_len": sent.expected_output_len}
                    gen = generate(client, sent.prompt, sent.max_tokens, request_id=request_id, **extra, model="ensemble")
                finally:
                    client.close()
                with self.lock:
                    self.results[request_id or sent.prompt] = gen
                    if gen.error is not None:
                        self.errors.append(f"{sent.prompt[:40]!r}: {gen.error}")
                    elif complete and gen.tokens != sent.max_tokens:
                        self.errors.append(f"{sent.prompt[:40]!r}: {gen.tokens} of {sent.max_tokens} tokens")
                    else:
                        self.finished.append(sent.prompt)
            except BaseException as exc:  # noqa: BLE001 - reported by join_all, in the test's thread
                with self.lock:
                    self.errors.append(f"{sent.prompt[:40]!r}: {exc!r}")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join_all(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not [t for t in self.threads if t.is_alive()], "client threads still running"
        assert self.errors == []


def waiting(server) -> float:
    return metric_value(server, "ltr_scheduler_waiting_requests")


def inflight(server) -> float:
    return metric_value(server, "ltr_scheduler_inflight_requests")


def burst_completion_order(server, burst: list[Sent]) -> list[str]:
    """Occupy the only slot with a blocker, queue `burst` one by one (each send waits until the
    scheduler holds the one before), end the blocker with `stop`, return the prompts by finish."""
    clients = Clients(server)
    clients.start(Sent(BLOCKER, 1000), request_id="blocker", complete=False)
    assert wait_for(lambda: inflight(server) == 1)
    for queued, sent in enumerate(burst, start=1):
        clients.start(sent)
        assert wait_for(lambda: waiting(server) == queued), f"request {queued} never reached the queue"
    control = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        assert stop_request(control, "blocker") is None
    finally:
        control.close()
    clients.join_all()
    assert clients.finished[0] == BLOCKER and clients.results["blocker"].tokens < 1000
    return clients.finished[1:]


def interleaved(hints: dict[str, int] | None = None) -> list[Sent]:
    """LONG and SHORT prompts alternating, a long one first in each pair."""
    prompts = [p for pair in zip(LONG, SHORT) for p in pair]
    return [Sent(p, expected_output_len=None if hints is None else hints[p]) for p in prompts]


def test_the_premise_the_shipped_predictor_ranks_these_prompts_as_a_person_would():
    ranker = LengthRanker(latest_version_dir(SOURCE_REPOSITORY / "length_predictor"))
    short, long = ranker.score_texts(SHORT), ranker.score_texts(LONG)
    assert short.max() < long.min(), (short, long)


@pytest.mark.parametrize("policy,first", [("ltr", SHORT), ("oracle", LONG)])
def test_each_policy_serves_by_its_own_key(tmp_path, policy, first):
    """Same max_tokens for all, oracle hints against the predictor: `ltr` must follow the score
    (SHORT first) and `oracle` the hints (LONG first); a scheduler ranking by max_tokens would serve
    in arrival order and fail both."""
    server = start_server(tmp_path, {"ltr_scheduler": {"policy": policy, "max_inflight": "1"}})
    try:
        order = burst_completion_order(server, interleaved(HINT))
    finally:
        server.stop()
    assert set(order[:3]) == set(first), order


def test_fcfs_serves_in_arrival_order(tmp_path):
    server = start_server(tmp_path, {"ltr_scheduler": {"policy": "fcfs", "max_inflight": "1"}})
    try:
        order = burst_completion_order(server, interleaved(HINT))
    finally:
        server.stop()
    assert order == [s.prompt for s in interleaved()]


def test_starvation_prevention_admits_a_long_request_within_the_bound(tmp_path):
    threshold = 2
    server = start_server(
        tmp_path,
        {"ltr_scheduler": {"policy": "oracle", "max_inflight": "1", "starvation_threshold": str(threshold)}},
    )
    try:
        burst = [Sent(LONG[0], expected_output_len=400)] + [
            Sent(f"{SHORT[i % 3]} ({i})", expected_output_len=10) for i in range(6)
        ]
        order = burst_completion_order(server, burst)
        promoted = metric_value(server, "ltr_scheduler_requests_total", event="promoted")
    finally:
        server.stop()
    assert order.index(LONG[0]) == threshold  # overtaken exactly `threshold` times
    assert promoted >= 1  # the long request, then each older short one reaching the bound


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


@pytest.fixture()
def one_slot_server(tmp_path):
    server = start_server(
        tmp_path,
        {"ltr_scheduler": {"max_inflight": "1", "max_queue_size": "1", "cancel_poll_ms": "50"},
         "tensorrt_llm": {"max_batch_slots": "1"}},
    )
    yield server
    server.stop()


def test_a_full_queue_answers_server_overloaded_and_serves_the_rest(one_slot_server):
    """One slot, room for one waiting request (`max_queue_size` 1): the next is refused at once."""
    server = one_slot_server
    clients = Clients(server)
    clients.start(Sent(BLOCKER, 1000), request_id="blocker", complete=False)
    assert wait_for(lambda: inflight(server) == 1)
    clients.start(Sent(SHORT[0], 4))
    assert wait_for(lambda: waiting(server) == 1)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        refused = generate(client, SHORT[1], 4, model="ensemble")
        assert refused.error is not None and "server overloaded" in refused.error, refused.error
        assert refused.tokens == 0
        assert metric_value(server, "ltr_scheduler_requests_total", event="rejected") == 1
        assert waiting(server) == 1  # the waiting request kept its place
        assert stop_request(client, "blocker") is None
    finally:
        client.close()
    clients.join_all()
    assert clients.finished == [BLOCKER, SHORT[0]]
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="completed") == 1)


def test_cancelling_a_queued_request_removes_it_from_the_queue(one_slot_server):
    server = one_slot_server
    running = StreamInBackground(server, BLOCKER, 300)
    assert wait_for(lambda: running.tokens > 0)
    queued = StreamInBackground(server, SHORT[0], 4)
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
    long_request = StreamInBackground(server, BLOCKER, 1000)  # ~10 s of generation
    assert wait_for(lambda: long_request.tokens >= 3)
    long_request.cancel()
    cancelled_at = time.monotonic()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0, 2.0)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    gen = generate(client, SHORT[0], 4, model="ensemble")
    client.close()
    assert gen.error is None and gen.tokens == 4
    # Had the engine (one slot) kept generating the cancelled 1000 tokens, this would take ~10 s.
    assert time.monotonic() - cancelled_at < 3.0
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="completed") == 1)
    assert metric_value(server, "ltr_scheduler_requests_total", event="cancelled") == 1


def test_stopping_ensemble_requests_by_id_frees_the_queue_and_the_slot(one_slot_server):
    """Ensemble clients end a request the TensorRT-LLM way: `stop` with the same request id; once
    ended, the id is forgotten, so a later request that reuses it runs to its end."""
    server = one_slot_server
    clients = Clients(server)
    clients.start(Sent(BLOCKER, 1000), request_id="generating", complete=False)
    assert wait_for(lambda: inflight(server) == 1)
    clients.start(Sent(BLOCKER, 1000), request_id="queued", complete=False)
    assert wait_for(lambda: waiting(server) == 1)

    client = grpcclient.InferenceServerClient(server.grpc_url)
    assert stop_request(client, "queued") is None
    assert wait_for(lambda: waiting(server) == 0, 2.0)
    assert stop_request(client, "generating") is None
    clients.join_all(timeout_s=10)
    assert wait_for(lambda: inflight(server) == 0, 2.0)
    assert clients.results["queued"].tokens == 0 and 0 < clients.results["generating"].tokens < 1000
    assert "no live request" in stop_request(client, "generating")
    for reused in ("generating", "queued"):  # the one engine slot is free again, the ids too
        gen = generate(client, SHORT[0], 4, request_id=reused, model="ensemble")
        assert gen.error is None and gen.tokens == 4, (reused, gen.error, gen.tokens)
    client.close()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_requests_total", event="completed") == 2)
    assert [metric_value(server, "ltr_scheduler_requests_total", event=e) for e in ("cancelled", "removed", "failed")] == [2, 1, 0]
