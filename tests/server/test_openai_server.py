"""The OpenAI-compatible server on the real stack (tritonserver + `python -m openai_server` on free
loopback ports), spoken to with the official `openai` SDK: chat and completions, streamed and not,
usage and finish reasons, stop strings, every error status, concurrent streams, and clients that go
away mid-stream freeing their engine slots for a waiting request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from deploy.openai_frontend import OpenAIFrontend
from openai_server.chat_template import Message, chat_prompt_ids
from openai_server.settings import API_KEY_ENV, DEFAULT_MODEL_NAME
from runtime.llama3_tokenizer import load_tokenizer
from tests.server.helpers import metric_value, start_server

KEY = "test-key"
MODEL = DEFAULT_MODEL_NAME
EXACT_LENGTHS = {"tensorrt_llm": {"length_table": ""}}  # every answer runs to its max_tokens


def stack(tmp: Path, overrides: dict):
    merged = {**EXACT_LENGTHS, **overrides}
    merged["tensorrt_llm"] = {**EXACT_LENGTHS["tensorrt_llm"], **overrides.get("tensorrt_llm", {})}
    triton = start_server(tmp, merged)
    try:
        frontend = OpenAIFrontend(triton.grpc_url, tmp, env={API_KEY_ENV: KEY}).start()
    except Exception:
        triton.stop()
        raise
    return triton, frontend


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    triton, frontend = stack(tmp_path_factory.mktemp("openai"), {})
    yield triton, frontend, openai.OpenAI(base_url=frontend.base_url, api_key=KEY, max_retries=0)
    frontend.stop()
    triton.stop()


def chat(client, content: str = "What is the capital of France?", **kw):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], **kw)


def test_chat_not_streamed_usage_and_finish(served):
    _, _, client = served
    reply = chat(client, max_tokens=7)
    expected_prompt = chat_prompt_ids(load_tokenizer(), [Message("user", "What is the capital of France?")])
    assert reply.object == "chat.completion" and reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(expected_prompt), 7)


def test_chat_streamed_with_usage(served):
    _, _, client = served
    chunks = list(chat(client, max_tokens=6, stream=True, stream_options={"include_usage": True}, seed=5))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert text == chat(client, max_tokens=6, seed=5).choices[0].message.content  # same seed, same answer


def test_completions_streamed_and_not(served):
    _, _, client = served
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, seed=1)
    assert reply.object == "text_completion" and reply.choices[0].finish_reason == "length"
    assert reply.usage.prompt_tokens == 1 + len(load_tokenizer().encode("Once upon a time"))
    assert reply.usage.completion_tokens == 5
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, seed=1, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == reply.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_the_expected_answer_length_header_is_the_shipped_calibrations(served):
    """The scheduler's expected length (the predictor's score of the last user message through the
    serving version's calibration.json) reaches the client as a header, before the first token."""
    from openai_server.generation import EXPECTED_TOKENS_HEADER
    from repo_paths import REPO_ROOT
    from runtime.length_calibration import load_calibration
    from runtime.length_predictor import LengthRanker
    from runtime.triton_tensors import expected_tokens_value

    _, _, client = served
    content, max_tokens = "Write a long essay on the history of Rome.", 1000
    version = REPO_ROOT / "model_repository" / "length_predictor" / "1"
    score = float(LengthRanker(version, intra_op_threads=1).score_texts([content]).reshape(-1)[0])
    want = expected_tokens_value(load_calibration(version).expected_tokens(score, max_tokens))
    with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, stream=True) as resp:
        got = int(resp.headers[EXPECTED_TOKENS_HEADER])  # left after the headers: the server ends the request
    assert abs(got - want) <= 1 and 0 < got <= max_tokens


def test_stop_strings_cut_the_answer(served):
    _, _, client = served
    seed, full = next((s, t) for s in range(50)
                      if "." in (t := chat(client, max_tokens=40, seed=s).choices[0].message.content)[1:])
    cut = chat(client, max_tokens=40, seed=seed, stop=["."])
    assert cut.choices[0].message.content == full[: full.index(".", 1)]
    assert cut.choices[0].finish_reason == "stop" and cut.usage.completion_tokens < 40
    streamed = chat(client, max_tokens=40, seed=seed, stop=".", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut.choices[0].message.content


def test_error_statuses(served):
    triton, frontend, client = served
    with pytest.raises(openai.AuthenticationError):
        chat(openai.OpenAI(base_url=frontend.base_url, api_key="wrong", max_retries=0), max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="exceeds the engine limit"):  # the ensemble's message
        chat(client, max_tokens=5000)
    with pytest.raises(openai.BadRequestError, match="n=1"):
        chat(client, max_tokens=2, n=2)
    with pytest.raises(openai.BadRequestError, match="over the limit of 256"):  # checked before Triton
        chat(client, "word " * 300, max_tokens=2)
    with pytest.raises(openai.APIStatusError) as info:
        chat(client, "x" * (2 << 20), max_tokens=2)
    assert info.value.status_code == 413


def test_models_health_and_metrics(served):
    _, frontend, client = served
    assert [m.id for m in client.models.list().data] == [MODEL]
    import urllib.request

    with urllib.request.urlopen(frontend.url + "/health", timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(frontend.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'openai_server_requests_total{endpoint="chat.completions"}' in text
    assert 'openai_server_errors_total{status="401",type="authentication_error"}' in text
    assert "openai_server_open_streams 0.0" in text


def test_concurrent_streams_complete_with_their_token_counts(served):
    _, _, client = served
    lengths = [4 + (i % 7) * 3 for i in range(16)]

    def one(max_tokens: int) -> tuple[int, str | None, int]:
        chunks = list(chat(client, max_tokens=max_tokens, stream=True, stream_options={"include_usage": True}))
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        return max_tokens, finish, chunks[-1].usage.completion_tokens

    with ThreadPoolExecutor(len(lengths)) as pool:
        results = list(pool.map(one, lengths))
    assert results == [(n, "length", n) for n in lengths]


def test_clients_that_go_away_free_their_slots(tmp_path):
    """N streams fill the engine's N slots; one short request waits, one more is refused (queue
    full: 503). The N clients close their streams mid-answer: the slots are free again within the
    bound below and the waiting request runs."""
    n, bound_s = 3, 2.0
    triton, frontend = stack(tmp_path, {"ltr_scheduler": {"max_inflight": str(n), "max_queue_size": "1"},
                                        "tensorrt_llm": {"max_batch_slots": str(n)}})
    client = openai.OpenAI(base_url=frontend.base_url, api_key=KEY, max_retries=0)
    inflight = lambda: metric_value(triton, "ltr_scheduler_inflight_requests")  # noqa: E731
    try:
        streams = [chat(client, f"Write a long story number {i}.", max_tokens=1000, stream=True) for i in range(n)]
        for stream in streams:  # each is mid-answer
            assert next(iter(stream)).choices[0].delta.role == "assistant"
        assert inflight() == n
        short: dict = {}

        def run_short() -> None:
            reply = chat(client, "Is 17 prime?", max_tokens=4)
            short.update(done=time.monotonic(), tokens=reply.usage.completion_tokens)

        waiting = threading.Thread(target=run_short)
        waiting.start()
        deadline = time.monotonic() + 10
        while metric_value(triton, "ltr_scheduler_waiting_requests") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(openai.APIStatusError) as info:
            chat(client, "One more?", max_tokens=4)
        assert info.value.status_code == 503 and info.value.response.headers["retry-after"] == "1"
        assert "server overloaded" in info.value.message

        closed_at = time.monotonic()
        for stream in streams:
            stream.close()
        while inflight() > 0 and time.monotonic() < closed_at + 10:
            time.sleep(0.01)
        freed_s = time.monotonic() - closed_at
        waiting.join(timeout=10)
        assert freed_s < bound_s, f"slots freed after {freed_s:.2f}s"
        assert short["tokens"] == 4 and short["done"] - closed_at < bound_s
        counts = {e: metric_value(triton, "ltr_scheduler_requests_total", event=e) for e in ("cancelled", "completed")}
        assert counts["cancelled"] == n
        print(f"\n{n} clients gone: slots free after {freed_s * 1000:.0f} ms, "
              f"the waiting request done {(short['done'] - closed_at) * 1000:.0f} ms after the close")
    finally:
        frontend.stop()
        triton.stop()
