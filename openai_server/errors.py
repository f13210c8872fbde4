"""OpenAI's error shape, and which HTTP status an ensemble error deserves.

The ensemble answers a bad request with an error message and no code (a gRPC stream carries only
the message), so the status comes from the message: the client errors that preprocessing and the
scheduler report are listed here and become 400, "server overloaded" becomes 503 with Retry-After,
and anything else is a 500, because it is the server's fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Fragments of the ensemble's client-error messages (runtime/preprocess.py, the scheduler's checks,
# Triton's own input checks), each enough to tell a bad request from a fault.
CLIENT_ERROR_FRAGMENTS = (
    "text_input is empty",
    "prompt_token_ids is empty",
    "is not valid UTF-8",
    "max_tokens must be positive",
    "exceeds the engine limit",
    "over the engine's input limit",
    "outside the vocabulary",
    "must be integers",
    "send one prompt per request",
    "missing required input",
    "unexpected inference input",
    "more than the cache holds",  # prompt + max_tokens over the KV cache
    "exceeds max_input_len",  # the engine's own checks, as the stand-in words them
    "exceeds max_output_len",
    "over the limit of",  # prompt bytes, stop/bad word counts and sizes (runtime/preprocess.py)
    "must be a finite number",  # temperature
    "top_k must be",
    "top_p must be",
    "no live request with id",
)
OVERLOADED_FRAGMENT = "server overloaded"
RETRYABLE_FRAGMENTS = (OVERLOADED_FRAGMENT, "queue timeout")


@dataclass
class APIError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    status: int
    message: str
    type: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": None, "code": self.code}}

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"


def bad_request(message: str) -> APIError:
    return APIError(400, message, "invalid_request_error")


def too_large(limit: int) -> APIError:
    return APIError(413, f"request body over {limit} bytes", "invalid_request_error", "request_too_large")


def unauthorized() -> APIError:
    return APIError(401, "missing or wrong API key (Authorization: Bearer <key>)", "authentication_error",
                    "invalid_api_key")


def unknown_model(name: str, served: str) -> APIError:
    return APIError(404, f"the model {name!r} does not exist; this server serves {served!r}",
                    "invalid_request_error", "model_not_found")


def backend_unavailable(detail: str, retry_after_s: int) -> APIError:
    return APIError(503, f"Triton is not reachable: {detail}", "service_unavailable",
                    headers={"Retry-After": str(retry_after_s)})


def internal(message: str) -> APIError:
    return APIError(500, message, "internal_error")


def from_ensemble(message: str, retry_after_s: int = 1) -> APIError:
    """The status a client deserves for an error message from the ensemble."""
    if any(fragment in message for fragment in RETRYABLE_FRAGMENTS):
        return APIError(503, message, "server_overloaded", headers={"Retry-After": str(retry_after_s)})
    if any(fragment in message for fragment in CLIENT_ERROR_FRAGMENTS):
        return bad_request(message)
    return internal(message)
