"""What the door forwards, decided from the request alone."""

from __future__ import annotations

import pytest

from door.policy import Forward, Refusal, grpc_method_refusal, grpc_model_refusal, http_route


@pytest.mark.parametrize("method, path, upstream_path, streams", [
    ("POST", "/v2/models/ltr_bls/generate", "/v2/models/ltr_bls/generate", False),
    ("POST", "/v2/models/ensemble/generate_stream", "/v2/models/ensemble/generate_stream", True),
    ("POST", "/v2/models/ltr_bls/versions/1/infer", "/v2/models/ltr_bls/versions/1/infer", False),
    ("POST", "/v2/models/ltr_bls/generate?x=../tensorrt_llm", "/v2/models/ltr_bls/generate", False),
    ("GET", "/v2/models/ensemble", "/v2/models/ensemble", False),
    ("GET", "/v2/models/ensemble/ready", "/v2/models/ensemble/ready", False),
    ("GET", "/v2/models/ltr_bls/config", "/v2/models/ltr_bls/config", False),
    ("GET", "/v2/health/ready", "/v2/health/ready", False),
    ("GET", "/v2", "/v2", False),
])
def test_public_routes_are_forwarded_as_rebuilt(method, path, upstream_path, streams):
    route = http_route(method, path)
    assert isinstance(route, Forward) and route.path == upstream_path and route.streams is streams
    assert route.has_body is (method == "POST")


def test_metrics_go_to_the_metrics_port():
    assert http_route("GET", "/metrics") == Forward("GET", "/metrics", upstream="metrics")


@pytest.mark.parametrize("method, path", [
    ("POST", "/v2/models/tensorrt_llm/generate_stream"),
    ("POST", "/v2/models/ltr_scheduler/infer"),
    ("GET", "/v2/models/preprocessing"),
    ("POST", "/v2/models/ltr%5Fbls/generate"),          # never decoded
    ("POST", "/v2/models/ltr_bls/../tensorrt_llm/generate"),
    ("POST", "//v2/models/ltr_bls/generate"),
    ("POST", "/v2/models/ltr_bls/versions/-1/generate"),
    ("GET", "/v2/models/ltr_bls/generate"),              # wrong method
    ("POST", "/v2/models/ltr_bls/ready"),
    ("POST", "/v2/repository/models/ltr_bls/load"),
    ("POST", "/v2/systemsharedmemory/region/x/register"),
    ("GET", "/v2/models/stats"),
    ("GET", "/v2/models/ltr_bls/stats"),
    ("POST", "/v2/trace/setting"),
    ("DELETE", "/v2/health/ready"),
])
def test_everything_else_is_refused_with_a_reason(method, path):
    route = http_route(method, path)
    assert isinstance(route, Refusal) and route.reason


@pytest.mark.parametrize("method", ["ModelInfer", "ModelStreamInfer", "ModelReady", "ModelMetadata", "ModelConfig",
                                    "ServerLive", "ServerReady", "ServerMetadata"])
def test_grpc_methods_forwarded(method):
    assert grpc_method_refusal(f"/inference.GRPCInferenceService/{method}") is None


@pytest.mark.parametrize("method", [
    "/inference.GRPCInferenceService/RepositoryModelLoad", "/inference.GRPCInferenceService/RepositoryIndex",
    "/inference.GRPCInferenceService/SystemSharedMemoryRegister", "/inference.GRPCInferenceService/ModelStatistics",
    "/inference.GRPCInferenceService/TraceSetting", "/inference.GRPCInferenceService/LogSettings",
    "/other.Service/ModelInfer", "/inference.GRPCInferenceService/",
])
def test_other_grpc_methods_refused(method):
    assert isinstance(grpc_method_refusal(method), Refusal)


@pytest.mark.parametrize("model, version, allowed", [
    ("ltr_bls", "", True), ("ensemble", "1", True), ("tensorrt_llm", "", False), ("ltr_scheduler", "1", False),
    ("", "", False), ("ltr_bls", "latest", False),
])
def test_grpc_models(model, version, allowed):
    assert (grpc_model_refusal(model, version) is None) is allowed
