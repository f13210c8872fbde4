"""`ltr_bls` on a real tritonserver whose `ltr_scheduler` stub is killed (-9) under load: Triton 2.51
neither answers nor ends the BLS streams that were on the dead stub, so without `ltr_bls`'s probe
the clients would hang until the supervisor restarts the server. Here every stream, generating or
still waiting in the queue, ends within seconds with the retryable error, a request that arrives
afterwards gets the same error at once, and nothing else in the server is touched."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
import tritonclient.grpc as grpcclient

from deploy.triton import process_tree
from loadtest.grpc_stream import generate
from tests.server.helpers import metric_value, start_server, wait_for

pytestmark = pytest.mark.server

DIED = "the scheduler's process died; the deployment is recovering: retry"
PROMPT = "Tell me a long story."


def _command_lines(server_pid: int) -> dict[int, bytes]:
    lines = {}
    for pid in process_tree(server_pid):
        try:
            lines[pid] = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            pass
    return lines


def _generate_stream(http_url: str, body: dict) -> tuple[int, list[dict]]:
    """The status and SSE events of one `generate_stream`. An error before the first event comes with
    status 400 (Triton 2.51's generate endpoints drop the error's code: docs/faults.md)."""
    request = urllib.request.Request(f"http://{http_url}/v2/models/ltr_bls/generate_stream",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            text = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as err:
        text, status = err.read().decode(), err.code
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    return status, events or [json.loads(text)]


def test_streams_on_a_killed_scheduler_end_with_a_retryable_error_and_nothing_else_is_touched(tmp_path):
    server = start_server(tmp_path, {"ltr_scheduler": {"max_inflight": "2"}})
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        assert generate(client, PROMPT, 4, model="ltr_bls").error is None  # warm
        client.close()
        ended: list[tuple[float, int, list[dict]]] = []

        def stream() -> None:  # 1,000 tokens: ~12 s if nothing happened, far longer for the waiting ones
            status, events = _generate_stream(server.http_url, {"text_input": PROMPT, "max_tokens": 1000, "stream": True})
            ended.append((time.monotonic(), status, events))

        clients = [threading.Thread(target=stream) for _ in range(4)]
        for c in clients:
            c.start()
        assert wait_for(lambda: metric_value(server, "ltr_scheduler_inflight_requests") == 2
                        and metric_value(server, "ltr_scheduler_waiting_requests") == 2, 15)
        time.sleep(0.5)  # the admitted ones are streaming tokens

        repo = str(server.model_repository.resolve())
        before = _command_lines(server.process.pid)
        (victim,) = [pid for pid, cmd in before.items()
                     if f"{repo}/ltr_scheduler/1/model.py".encode() in cmd]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        for c in clients:
            c.join(30)
        assert len(ended) == 4, "a stream hung"
        seconds = sorted(round(at - killed_at, 2) for at, _, _ in ended)
        print(f"streams ended {seconds} s after the kill")
        assert seconds[-1] < 5.0
        for _, status, events in ended:
            assert events[-1].get("error") == DIED, events[-3:]
        # the admitted two had tokens first (200); the waiting two had nothing before the error (400)
        assert sorted((status, len(events) > 1) for _, status, events in ended) == [(200, True)] * 2 + [(400, False)] * 2

        # a request arriving now gets the same error at once, over gRPC too
        started = time.monotonic()
        client = grpcclient.InferenceServerClient(server.grpc_url)
        late = generate(client, PROMPT, 8, model="ltr_bls")
        client.close()
        assert late.error is not None and DIED in late.error, late.error
        print(f"a request sent after the kill: its error came in {time.monotonic() - started:.2f} s")
        assert time.monotonic() - started < 3.0

        assert wait_for(lambda: metric_value(server, "ltr_bls_live_requests") == 0, 5)
        assert metric_value(server, "ltr_bls_requests_total", outcome="failed") == 0
        after = _command_lines(server.process.pid)
        after.pop(victim, None)  # a zombie until Triton reaps it
        assert after == {pid: cmd for pid, cmd in before.items() if pid != victim}  # the rest as they were
    finally:
        server.stop(timeout_s=5)
