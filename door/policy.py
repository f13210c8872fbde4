"""What the door forwards, decided from the request alone (no I/O): an HTTP method and path, or a
gRPC method and the model named in its message, either maps to what is sent to Triton or to a
refusal with its reason.

Only the public models are reachable (`ltr_bls`, `ensemble`): their inference, readiness, metadata
and config; server health and metadata; the metrics page. Everything else, the internal models
above all, is refused. HTTP paths are matched exactly as sent, never decoded or normalised, and
the path forwarded is rebuilt from the parts matched (the query string is dropped), so that no
spelling reaches Triton that the door did not understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PUBLIC_MODELS = ("ltr_bls", "ensemble")
GRPC_SERVICE = "inference.GRPCInferenceService"

Upstream = Literal["triton", "metrics"]


@dataclass(frozen=True)
class Forward:
    """Send `method path` to `upstream`; `streams`: relay the response as it arrives (SSE)."""

    method: str
    path: str
    upstream: Upstream = "triton"
    has_body: bool = False
    streams: bool = False


@dataclass(frozen=True)
class Refusal:
    reason: str


_MODEL = r"(?P<model>[^/?#]+)(?:/versions/(?P<version>[^/?#]+))?"
_MODEL_ROUTE = re.compile(rf"^/v2/models/{_MODEL}(?:/(?P<action>ready|config|infer|generate|generate_stream))?$")
_GET_ACTIONS = {None, "ready", "config"}
_POST_ACTIONS = {"infer", "generate", "generate_stream"}
_PLAIN_GETS = {"/v2/health/live", "/v2/health/ready", "/v2"}
_VERSION = re.compile(r"^[0-9]{1,9}$")


def refused_model(model: str) -> Refusal:
    return Refusal(f"model '{model[:64]}' is not served here: only {', '.join(PUBLIC_MODELS)} are public")


def http_route(method: str, raw_path: str) -> Forward | Refusal:
    """What to do with `method raw_path` (the path as sent, query string included)."""
    path = raw_path.split("?", 1)[0]
    if method == "GET" and path in _PLAIN_GETS:
        return Forward("GET", path)
    if method == "GET" and path == "/metrics":
        return Forward("GET", "/metrics", upstream="metrics")
    match = _MODEL_ROUTE.match(path)
    if match is None:
        return Refusal(f"{method} {path[:128]} is not served here (inference on {', '.join(PUBLIC_MODELS)}, "
                       "health and their metadata are)")
    model, version, action = match["model"], match["version"], match["action"]
    if model not in PUBLIC_MODELS:
        return refused_model(model)
    if version is not None and not _VERSION.match(version):
        return Refusal(f"model version '{version[:16]}' is not a number")
    upstream_path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + (f"/{action}" if action else "")
    if method == "GET" and action in _GET_ACTIONS:
        return Forward("GET", upstream_path)
    if method == "POST" and action in _POST_ACTIONS:
        return Forward("POST", upstream_path, has_body=True, streams=action == "generate_stream")
    return Refusal(f"{method} {path[:128]} is not served here")


# gRPC: the methods forwarded, by what names the model (None: no model).
NO_MODEL_METHODS = frozenset({"ServerLive", "ServerReady", "ServerMetadata"})
MODEL_METHODS = frozenset({"ModelReady", "ModelMetadata", "ModelConfig", "ModelInfer", "ModelStreamInfer"})
STREAM_METHODS = frozenset({"ModelStreamInfer"})


def grpc_method_name(full_method: str) -> str | None:
    """`/inference.GRPCInferenceService/ModelInfer` -> `ModelInfer`; None for another service."""
    service, _, name = full_method.lstrip("/").partition("/")
    return name if service == GRPC_SERVICE and name else None


def grpc_method_refusal(full_method: str) -> Refusal | None:
    """None when the method may be forwarded (its model still to be checked per message)."""
    name = grpc_method_name(full_method)
    if name in NO_MODEL_METHODS or name in MODEL_METHODS:
        return None
    return Refusal(f"{full_method[:128]} is not served here (inference on {', '.join(PUBLIC_MODELS)}, "
                   "health and their metadata are)")


def grpc_model_refusal(model: str, version: str) -> Refusal | None:
    if model not in PUBLIC_MODELS:
        return refused_model(model)
    if version and not _VERSION.match(version):
        return Refusal(f"model version '{version[:16]}' is not a number")
    return None
