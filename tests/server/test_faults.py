"""Issue 13 on a real tritonserver: clear 400s for hostile input, a dead predictor that costs
ranking but no request, a dead LLM stub whose streams end with an error instead of hanging, and the
supervisor's detection and recovery by model control."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from deploy.supervisor import (
    DeployedServer,
    Supervisor,
    expected_stubs,
    stub_counts,
)
from deploy.triton import TritonServer
from tests.server.helpers import (
    http_generate,
    http_generate_stream,
    metric_value,
    start_supervised_server,
    wait_for,
)

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    state = tmp_path_factory.mktemp("faults")
    server = start_supervised_server(state, {"ltr_scheduler": {"max_inflight": "2", "llm_stall_timeout_s": "2"}})
    yield server, Supervisor(DeployedServer(state), expected_stubs(server.model_repository))
    server.stop(timeout_s=10)


def _kill_stub(server: TritonServer, model: str) -> None:
    repo = server.model_repository.resolve()
    before = stub_counts(server.process.pid, repo)[model]
    for pid in os.listdir("/proc"):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if f"{repo}/{model}/".encode() in cmdline and b"triton_python_backend_stub" in cmdline:
            os.kill(int(pid), signal.SIGKILL)
    assert wait_for(lambda: stub_counts(server.process.pid, repo).get(model, 0) < before)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"temperature": float("nan")}, "temperature must be a finite number >= 0, got nan"),
        ({"top_k": -1}, "top_k must be >= 0"),
        ({"end_id": 200_000}, "end_id 200000 is outside the vocabulary"),
        ({"stop_words": ["x"] * 65}, "stop_words holds 65 words, over the limit of 64"),
        ({"text_input": "y" * 200_000}, "text_input is 200000 bytes, over the limit of 131072 bytes"),
    ],
)
def test_hostile_input_is_a_400_with_a_clear_message(deployed, body, message):
    server, _ = deployed
    status, out = http_generate(server, {"text_input": "Hello", "max_tokens": 4, **body})
    assert status == 400 and message in out["error"]


def test_a_dead_predictor_costs_ranking_not_requests_and_the_supervisor_reloads_it(deployed):
    server, supervisor = deployed
    assert supervisor.check_once().ready
    _kill_stub(server, "length_predictor")
    status, out = http_generate(server, {"text_input": "Hello", "max_tokens": 4})
    assert status == 200 and out["output_token_count"] == 4  # served, at the fallback rank
    assert metric_value(server, "ltr_predictor_fallback_total") >= 1
    health = supervisor.check_once()  # sees it, reloads it
    assert not health.ready and health.reason == "stub of length_predictor is not running"
    assert supervisor.check_once().ready
    fallbacks = metric_value(server, "ltr_predictor_fallback_total")
    assert http_generate(server, {"text_input": "Hello", "max_tokens": 4})[0] == 200
    assert metric_value(server, "ltr_predictor_fallback_total") == fallbacks  # ranking resumed


def test_streams_on_a_dead_llm_end_with_an_error_and_free_their_slots(deployed):
    server, supervisor = deployed
    results: list = []
    clients = [threading.Thread(target=lambda: results.append(http_generate_stream(
        server, {"text_input": "Hello", "max_tokens": 1000, "stream": True}, timeout=60))) for _ in range(2)]
    for client in clients:
        client.start()
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 2, 10)
    _kill_stub(server, "tensorrt_llm")
    for client in clients:
        client.join(30)
    assert len(results) == 2
    for _, events in results:
        assert "error" in events[-1] and ("no response from the LLM" in events[-1]["error"]
                                          or "not healthy" in events[-1]["error"])
    assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 0)  # slots given back
    assert not supervisor.check_once().ready
    assert supervisor.check_once().ready
    assert http_generate(server, {"text_input": "Hello", "max_tokens": 4})[0] == 200
