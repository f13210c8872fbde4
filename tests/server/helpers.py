"""Helpers for the integration tests: a real tritonserver on free loopback ports, and clients."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from deploy.repository import render_repository
from deploy.supervisor import PORTS_FILE
from deploy.triton import RepositoryAccess, TritonServer

# Small, fast settings shared by the integration tests (timing stand-in LLM).
TEST_OVERRIDES: dict[str, dict[str, str]] = {
    # length_table "": every answer runs to its max_tokens, so tests choose lengths (natural lengths:
    # test_ensemble.py builds its own table)
    "tensorrt_llm": {"mode": "timing", "max_input_len": "256", "max_output_len": "1024", "length_table": ""},
    "preprocessing": {"max_input_len": "256", "max_output_len": "1024"},
}


def test_repository(work_dir: Path, overrides: dict[str, dict[str, str]] | None = None) -> Path:
    """The model repository rendered with TEST_OVERRIDES, then `overrides` on top."""
    merged = {model: dict(params) for model, params in TEST_OVERRIDES.items()}
    for model, params in (overrides or {}).items():
        merged.setdefault(model, {}).update(params)
    return render_repository(work_dir / "model_repository", merged)


def start_server(work_dir: Path, overrides: dict[str, dict[str, str]] | None = None) -> TritonServer:
    return TritonServer(test_repository(work_dir, overrides), work_dir).start()


def start_supervised_server(state: Path, overrides: dict[str, dict[str, str]] | None = None) -> TritonServer:
    """A server as `make deploy` leaves it for the supervisor: the repository API keyed, its ports
    and PID in the state folder."""
    access = RepositoryAccess.generate()
    access.save(state)
    server = TritonServer(test_repository(state, overrides), state, repository_access=access).start()
    (state / PORTS_FILE).write_text(json.dumps(vars(server.ports)))
    (state / "tritonserver.pid").write_text(str(server.process.pid))
    return server


def post_json(url: str, body: Any, timeout: float = 60) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def http_generate(server: TritonServer, body: Any, model: str = "ensemble") -> tuple[int, Any]:
    return post_json(f"http://{server.http_url}/v2/models/{model}/generate", body)


def http_generate_stream(
    server: TritonServer, body: Any, timeout: float = 120, model: str = "ensemble"
) -> tuple[int, list[dict]]:
    """POST generate_stream and collect the SSE events (`data: {...}` lines)."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{model}/generate_stream", data=data,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            events = [
                json.loads(line[len(b"data: "):])
                for line in resp.read().splitlines()
                if line.startswith(b"data: ")
            ]
            return resp.status, events
    except urllib.error.HTTPError as err:
        return err.code, [json.loads(err.read() or b"{}")]


def metric_value(server: TritonServer, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include `labels`."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in sample for k, v in labels.items()):
            total += float(value)
    return total


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes: for state the server publishes just
    after a client has its answer (a request's slot and counters are released after its last response)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
