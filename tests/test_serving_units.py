"""Plain-Python parts of the serving path: detokenization, request checks, rendering, relay."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from scheduler import AdmissionGate, RequestQueue, make_policy
from serving.detokenize import CONTEXT_TOKENS, chunk_text, incomplete_tail_len
from serving.llama3_tokenizer import load_tokenizer
from serving.preprocess import BadRequest, Limits, check_max_tokens, decode_text, encode_prompt, word_list
from serving.relay import Job, Relay
from serving.repository import SOURCE_REPOSITORY, read_config, render_repository


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_llama3_tokenizer_matches_known_ids(tokenizer):
    assert tokenizer.encode("Hello, world!") == [9906, 11, 1917, 0]
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.eot_id, tokenizer.vocab_size) == (128000, 128001, 128009, 128256)


def test_incomplete_tail_len():
    euro = "€".encode()  # 3 bytes
    assert incomplete_tail_len(b"abc") == 0
    assert incomplete_tail_len(euro) == 0
    assert incomplete_tail_len(euro[:1]) == 1
    assert incomplete_tail_len(b"x" + euro[:2]) == 2


@pytest.mark.parametrize("chunk_size", [1, 2, 3])
def test_streamed_chunks_reassemble_the_exact_text(tokenizer, chunk_size):
    text = "naïve café — 你好, мир! 🚀 done"
    ids = tokenizer.encode(text)
    sent: list[int] = []
    out = []
    for i in range(0, len(ids), chunk_size):
        chunk = ids[i : i + chunk_size]
        piece = chunk_text(tokenizer.decode_bytes, sent[-CONTEXT_TOKENS:], chunk, final=False)
        assert "\ufffd" not in piece
        out.append(piece)
        sent.extend(chunk)
    out.append(chunk_text(tokenizer.decode_bytes, sent[-CONTEXT_TOKENS:], [], final=True))
    assert "".join(out) == text


def test_request_checks_give_clear_messages(tokenizer):
    limits = Limits(max_input_len=8, max_output_len=100)
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        decode_text(b"\xff\xfe")
    with pytest.raises(BadRequest, match="empty"):
        decode_text(b"  \n")
    with pytest.raises(BadRequest, match="positive"):
        check_max_tokens(0, limits)
    with pytest.raises(BadRequest, match="exceeds"):
        check_max_tokens(101, limits)
    with pytest.raises(BadRequest, match="input limit of 8"):
        encode_prompt(tokenizer, "one two three four five six seven eight nine", limits)
    ids = encode_prompt(tokenizer, "Hello", limits)
    assert ids.dtype == np.int32 and ids[0] == tokenizer.bos_id


def test_word_list_uses_tensorrt_llm_layout(tokenizer):
    out = word_list(tokenizer, [b"Hello", b" world!"])
    hello, world = tokenizer.encode("Hello"), tokenizer.encode(" world!")
    assert out.shape == (2, len(hello) + len(world))
    assert out[0].tolist() == hello + world
    assert out[1, :2].tolist() == [len(hello), len(hello) + len(world)]
    assert (out[1, 2:] == -1).all()
    assert word_list(tokenizer, []).shape == (2, 0)
    assert word_list(tokenizer, [b"\n"])[0, 0] == tokenizer.encode("\n")[0]  # whitespace stop words are valid
    with pytest.raises(BadRequest, match="not valid UTF-8"):
        word_list(tokenizer, [b"\xff"])


def test_render_overrides_parameters_and_links_versions(tmp_path):
    out = render_repository(tmp_path / "repo", {"ltr_scheduler": {"policy": "fcfs", "max_inflight": "3"}})
    config = read_config(out / "ltr_scheduler" / "config.pbtxt")
    assert config.parameters["policy"].string_value == "fcfs"
    assert config.parameters["max_inflight"].string_value == "3"
    assert (out / "ltr_scheduler" / "1").is_symlink()
    assert read_config(out / "ensemble" / "config.pbtxt") == read_config(SOURCE_REPOSITORY / "ensemble" / "config.pbtxt")
    with pytest.raises(KeyError, match="no parameter"):
        render_repository(tmp_path / "bad", {"ltr_scheduler": {"polcy": "fcfs"}})
    with pytest.raises(KeyError, match="unknown models"):
        render_repository(tmp_path / "bad2", {"no_such_model": {"x": "1"}})


class FakeLLM:
    """Yields `max_tokens` tokens in chunks; records stop calls."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stopped: list[str] = []

    async def stream(self, job: Job):
        for i in range(job.max_tokens):
            await asyncio.sleep(0)
            if self.fail and i == 2:
                raise RuntimeError("engine fell over")
            yield [1000 + i]

    async def stop(self, job: Job) -> None:
        self.stopped.append(job.request_id)


class FakeSink:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.tokens: list[int] = []
        self.finals = 0
        self.errors: list[str] = []
        self.closed = False
        self.cancel_after = cancel_after

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.tokens) >= self.cancel_after

    def send_tokens(self, token_ids, context_ids, final):
        assert context_ids == self.tokens[-CONTEXT_TOKENS:] or not token_ids
        self.tokens.extend(token_ids)
        self.finals += final

    def send_error(self, message):
        self.errors.append(message)

    def close(self):
        self.closed = True


def run_relay(jobs_and_sinks, llm, max_inflight=2, max_size=None):
    async def scenario():
        gate = AdmissionGate(RequestQueue(make_policy("ltr"), max_size=max_size), max_inflight)
        relay = Relay(gate, llm, cancel_poll_s=0.001)
        await asyncio.gather(*(relay.serve(job, sink) for job, sink in jobs_and_sinks))
        assert gate.inflight == 0 and len(gate.queue) == 0
        return relay.stats

    return asyncio.run(scenario())


def job(rid: str, n: int, streaming: bool = True) -> Job:
    return Job(rid, np.array([1, 2, 3], np.int32), n, score=float(n), streaming=streaming)


def test_relay_streams_and_completes_every_job():
    pairs = [(job(f"j{i}", 5 + i, streaming=i % 2 == 0), FakeSink()) for i in range(6)]
    stats = run_relay(pairs, FakeLLM())
    for (j, sink) in pairs:
        assert len(sink.tokens) == j.max_tokens and sink.finals == 1 and not sink.errors
    assert stats.completed == 6


def test_relay_failure_errors_that_request_and_frees_the_slot():
    sinks = [FakeSink(), FakeSink()]
    stats = run_relay([(job("a", 5), sinks[0]), (job("b", 5), sinks[1])], FakeLLM(fail=True), max_inflight=1)
    assert all("engine fell over" in s.errors[0] for s in sinks)
    assert stats.failed == 2


def test_relay_cancellation_stops_the_engine_and_frees_the_slot():
    llm = FakeLLM()
    cancelled, normal = FakeSink(cancel_after=3), FakeSink()
    stats = run_relay([(job("c", 50), cancelled), (job("n", 4), normal)], llm, max_inflight=1)
    assert llm.stopped == ["c"] and cancelled.closed and len(normal.tokens) == 4
    assert stats.cancelled == 1


def test_relay_rejects_past_the_queue_bound_with_overloaded_error():
    sinks = [FakeSink() for _ in range(4)]
    stats = run_relay([(job(f"q{i}", 3), s) for i, s in enumerate(sinks)], FakeLLM(), max_inflight=1, max_size=1)
    assert stats.rejected == 2
    assert sum("overloaded" in e for s in sinks for e in s.errors) == 2


def test_stop_by_client_id_ends_a_waiting_and_a_generating_job():
    async def scenario():
        llm = FakeLLM()
        gate = AdmissionGate(RequestQueue(make_policy("ltr")), 1)
        relay = Relay(gate, llm, cancel_poll_s=0.001)
        running, waiting = FakeSink(), FakeSink()
        slow = job("run", 10_000)
        slow.client_id = "client-a"
        queued = job("wait", 5)
        queued.client_id = "client-b"
        tasks = [asyncio.create_task(relay.serve(slow, running)), asyncio.create_task(relay.serve(queued, waiting))]
        await asyncio.sleep(0.01)
        assert len(gate.queue) == 1
        assert relay.request_stop("client-b") and relay.request_stop("client-a")
        assert not relay.request_stop("nobody")
        await asyncio.gather(*tasks)
        assert waiting.closed and not waiting.tokens
        assert running.closed and llm.stopped == ["run"] and len(running.tokens) < 10_000
        assert gate.inflight == 0 and len(gate.queue) == 0
        assert not relay.request_stop("client-a")  # forgotten once ended

    asyncio.run(scenario())
