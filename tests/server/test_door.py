"""The door probed through the documented ports of a real `make deploy` (python -m deploy start, on
free loopback ports): direct calls to every internal model are refused over HTTP and gRPC,
streaming and not, while `ltr_bls`, `ensemble` and the OpenAI server answer; a client that closes
its stream at the door frees its slot; direct LLM streams cannot fill the engine; the chunked
oversized POST that kills Triton 2.51 gets 413 and the server keeps serving."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from benchmarks.faults import send_chunked
from deploy.triton import free_ports
from loadtest.abandon import http_stream_close
from loadtest.grpc_stream import ensemble_inputs, stream_infer, tensor
from repo_paths import REPO_ROOT
from tests.server.helpers import TEST_OVERRIDES, wait_for

pytestmark = pytest.mark.server

PUBLIC = ("ltr_bls", "ensemble")
INTERNAL = ("ltr_scheduler", "preprocessing", "length_predictor", "postprocessing", "tensorrt_llm")


@dataclass
class Deployed:
    state: Path
    http: int
    grpc: int
    metrics: int
    openai: int
    banner: str

    def ports_json(self) -> dict:
        return json.loads((self.state / "ports.json").read_text())


def deploy(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy", "--state-dir", str(state), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    state = tmp_path_factory.mktemp("door")
    http, grpc_port, metrics, openai_port, health = free_ports(5)
    overrides = {**TEST_OVERRIDES, "ltr_scheduler": {"max_inflight": "2"},
                 "tensorrt_llm": {**TEST_OVERRIDES["tensorrt_llm"], "max_batch_slots": "4"}}
    sets = [a for model, params in overrides.items() for k, v in params.items() for a in ("--set", f"{model}.{k}={v}")]
    started = deploy(state, "start", "--http-port", str(http), "--grpc-port", str(grpc_port), "--metrics-port",
                     str(metrics), "--openai-port", str(openai_port), "--health-port", str(health), *sets)
    assert started.returncode == 0, started.stdout + started.stderr
    yield Deployed(state, http, grpc_port, metrics, openai_port, started.stdout)
    deploy(state, "stop", "--grace", "2")  # by the PIDs in the state dir


@pytest.fixture()
def client(deployed):
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{deployed.grpc}")
    yield c
    c.close()


def http(deployed: Deployed, method: str, path: str, body: dict | bytes | None = None, port: int | None = None,
         headers: dict | None = None) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port or deployed.http}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def llm_inputs(tokens: int, score: bool = True) -> list:
    """TensorRT-LLM's inputs (and the scheduler's `score`): what a direct call to an internal model sends."""
    return [tensor("input_ids", np.array([[1, 2, 3]], dtype=np.int32)),
            tensor("input_lengths", np.array([[3]], dtype=np.int32)),
            tensor("request_output_len", np.array([[tokens]], dtype=np.int32)),
            tensor("streaming", np.array([[True]]))] + ([tensor("score", np.zeros((1, 1), dtype=np.float32))] if score else [])


def scheduler_busy(deployed: Deployed) -> float:
    """Waiting + in-flight requests, read through the door's /metrics."""
    status, text = http(deployed, "GET", "/metrics")
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith(("ltr_scheduler_waiting_requests{", "ltr_scheduler_inflight_requests{")))


def test_the_banner_names_the_door_and_triton_is_elsewhere(deployed):
    assert f"http://127.0.0.1:{deployed.http}" in deployed.banner and f"127.0.0.1:{deployed.grpc}" in deployed.banner
    private = deployed.ports_json()
    assert {private["http"], private["grpc"]}.isdisjoint({deployed.http, deployed.grpc})


@pytest.mark.parametrize("model", PUBLIC)
def test_public_models_answer_over_http(deployed, model):
    status, body = http(deployed, "POST", f"/v2/models/{model}/generate", {"text_input": "Hello there", "max_tokens": 5})
    assert status == 200 and json.loads(body)["output_token_count"] == 5
    status, body = http(deployed, "POST", f"/v2/models/{model}/generate_stream",
                        {"text_input": "Hello there", "max_tokens": 5, "stream": True})
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith(b"data: ")]
    assert status == 200 and sum(e["output_token_count"] for e in events) == 5
    assert http(deployed, "GET", f"/v2/models/{model}")[0] == 200
    assert http(deployed, "GET", f"/v2/models/{model}/ready")[0] == 200
    assert http(deployed, "GET", f"/v2/models/{model}/versions/1/config")[0] == 200


def test_health_answers_over_http(deployed):
    assert http(deployed, "GET", "/v2/health/ready")[0] == 200
    assert http(deployed, "GET", "/v2/health/live")[0] == 200


@pytest.mark.parametrize("model", INTERNAL)
@pytest.mark.parametrize("action", ["generate", "generate_stream", "infer", "ready", "config", ""])
def test_internal_models_are_refused_over_http(deployed, model, action):
    method = "POST" if action in ("generate", "generate_stream", "infer") else "GET"
    path = f"/v2/models/{model}" + (f"/{action}" if action else "")
    status, body = http(deployed, method, path, {"text_input": "x", "max_tokens": 2} if method == "POST" else None)
    assert status == 403 and model in json.loads(body)["error"]


@pytest.mark.parametrize("path", [
    "/v2/repository/index", "/v2/repository/models/ltr_scheduler/load", "/v2/systemsharedmemory/region/x/register",
    "/v2/cudasharedmemory/status", "/v2/trace/setting", "/v2/logging", "/v2/models/stats",
    "/v2/models/ltr_bls/../tensorrt_llm/generate", "/v2/models/ltr%5Fscheduler/generate", "/v2/models/ltr_bls/versions/x/generate",
])
def test_everything_else_is_refused_over_http(deployed, path):
    assert http(deployed, "POST", path, b'{"key": "/other", "byte_size": 1}')[0] == 403


def test_public_models_answer_over_grpc(deployed, client):
    for model in PUBLIC:
        results = list(stream_infer(client, model, ensemble_inputs("Hello there", 4)))
        assert not any(isinstance(r, str) for r in results), results
        assert sum(int(r.as_numpy("output_token_count")[0, 0]) for r in results
                   if r.as_numpy("output_token_count") is not None) == 4
        assert client.is_model_ready(model) and client.get_model_metadata(model).name == model
        assert client.get_model_config(model).config.name == model
    assert client.is_server_live() and client.is_server_ready()
    # unary ModelInfer is forwarded: Triton itself answers that these decoupled models need a stream
    with pytest.raises(InferenceServerException, match="decoupled"):
        client.infer("ltr_bls", ensemble_inputs("Hello there", 4, stream=False))


@pytest.mark.parametrize("model", INTERNAL)
def test_internal_models_are_refused_over_grpc(deployed, client, model):
    with pytest.raises(InferenceServerException) as refused:
        client.infer(model, llm_inputs(2))
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
    for call in (client.get_model_metadata, client.get_model_config, client.is_model_ready):
        with pytest.raises(InferenceServerException, match="PERMISSION_DENIED"):
            call(model)
    results = list(stream_infer(client, model, llm_inputs(2)))
    assert len(results) == 1 and "not served here" in results[0]


def test_administrative_grpc_calls_are_refused(deployed, client):
    for call in (client.get_model_repository_index, lambda: client.load_model("tensorrt_llm"),
                 client.get_system_shared_memory_status, client.get_inference_statistics,
                 client.get_trace_settings, client.get_log_settings):
        with pytest.raises(InferenceServerException, match="PERMISSION_DENIED"):
            call()


def test_a_stream_that_turns_to_an_internal_model_is_ended(deployed):
    """One ModelStreamInfer stream may name a model per message: each is checked."""
    public = service_pb2.ModelInferRequest(model_name="ltr_bls", id="a")
    internal = service_pb2.ModelInferRequest(model_name="tensorrt_llm", id="b")
    with grpc.insecure_channel(f"127.0.0.1:{deployed.grpc}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as ended:
            list(stub.ModelStreamInfer(iter([public, internal]), timeout=30))
    assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_openai_server_answers(deployed):
    status, body = http(deployed, "POST", "/v1/chat/completions", {
        "model": "llama-3-8b-instruct", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        port=deployed.openai)
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 4


def test_direct_llm_streams_cannot_fill_the_engine(deployed, client):
    """The bypass of the issue, bounded: 8 direct tensorrt_llm streams (twice the engine's 4 slots)
    are all refused, so the scheduler's normal request is admitted and answered."""
    refused = [list(stream_infer(client, "tensorrt_llm", llm_inputs(1000)))[0] for _ in range(8)]
    assert all(isinstance(r, str) and "not served here" in r for r in refused)
    results = list(stream_infer(client, "ltr_bls", ensemble_inputs("A normal request", 16)))
    assert sum(int(r.as_numpy("output_token_count")[0, 0]) for r in results
               if not isinstance(r, str) and r.as_numpy("output_token_count") is not None) == 16


def test_a_client_that_closes_its_stream_at_the_door_frees_its_slot(deployed):
    assert wait_for(lambda: scheduler_busy(deployed) == 0)
    http_stream_close("127.0.0.1", deployed.http, "Tell me a long story.", 1000, model="ltr_bls", after_events=2)
    assert wait_for(lambda: scheduler_busy(deployed) == 0, timeout_s=2.0)


def test_a_grpc_client_that_cancels_at_the_door_frees_its_slot(deployed):
    from loadtest.abandon import grpc_cancel

    assert wait_for(lambda: scheduler_busy(deployed) == 0)
    grpc_cancel(f"127.0.0.1:{deployed.grpc}", "Tell me a long story.", 1000, model="ltr_bls", after_tokens=2)
    assert wait_for(lambda: scheduler_busy(deployed) == 0, timeout_s=2.0)


def test_the_chunked_oversized_post_gets_413_and_the_server_keeps_serving(deployed):
    # 3.6 MB in 64 KiB chunks (over the body limit), then 5,000 one-byte chunks (over the chunk count);
    # the door may stop reading once it has answered, so what the sending met is not checked
    for body, chunk in ((b"A" * 3_600_000, 65536), (b" " * 5000, 1)):
        with socket.create_connection(("127.0.0.1", deployed.http), timeout=30) as sock:
            send_chunked(sock, "/v2/models/ltr_bls/generate", body, chunk)
            assert sock.recv(200).split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Request Entity Too Large"
    status, body = http(deployed, "POST", "/v2/models/ltr_bls/generate", {"text_input": "Still there?", "max_tokens": 3})
    assert status == 200 and json.loads(body)["output_token_count"] == 3


def test_internal_models_refuse_a_call_without_the_deploys_key_on_tritons_private_port(deployed):
    """The second wall: whoever reaches Triton's private port still cannot drive the LLM or the
    predictor without the key the deploy handed to its own models (runtime/internal_key.py)."""
    private = grpcclient.InferenceServerClient(f"127.0.0.1:{deployed.ports_json()['grpc']}")
    try:
        results = list(stream_infer(private, "tensorrt_llm", llm_inputs(1000, score=False)))
        assert len(results) == 1 and "is internal" in results[0]
        predictor_inputs = [tensor("input_ids", np.ones((1, 16), dtype=np.int64)),
                            tensor("attention_mask", np.ones((1, 16), dtype=np.int64))]
        with pytest.raises(InferenceServerException, match="is internal"):
            private.infer("length_predictor", predictor_inputs)
        with pytest.raises(InferenceServerException, match="is internal"):
            private.infer("length_predictor", predictor_inputs, parameters={"ltr-internal-key": "a guess"})
        # our own callers carry it: the pipeline answers, with a predictor score (no fallback)
        results = list(stream_infer(private, "ltr_bls", ensemble_inputs("Still served", 3)))
        assert not any(isinstance(r, str) for r in results), results
    finally:
        private.close()
    status, text = http(deployed, "GET", "/metrics")
    assert sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith("ltr_predictor_fallback_total")) == 0
