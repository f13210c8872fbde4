"""Small helpers the Triton `model.py` files share to read their config and single-value inputs.

Imports `triton_python_backend_utils` lazily: it exists only inside the python backend stub.
`first_value` is the numpy-level reader under them, usable where tensors are plain arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.contracts import LLM, Scheduler


def model_parameters(model_config: dict) -> dict[str, str]:
    """config.pbtxt `parameters` as a plain {key: string_value} dict."""
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


SLO_MISS = ("serve", "refuse")


def queue_deadline(params: dict[str, str]) -> float | None:
    """How long a request may wait for a slot (None: as long as it takes). `slo_miss` "refuse" ends
    a request that can no longer meet its TTFT target (`slo_ttft_s`) with the retryable 503 "queue
    timeout" as soon as it has waited that long; "serve" (default) serves it late. An explicit
    `queue_timeout_s` wins."""
    explicit = float(params.get("queue_timeout_s") or 0)
    if explicit > 0:
        return explicit
    miss = params.get("slo_miss", "serve") or "serve"
    if miss not in SLO_MISS:
        raise ValueError(f"slo_miss must be one of {SLO_MISS}, got {miss!r}")
    return float(params.get("slo_ttft_s") or 2.0) if miss == "refuse" else None


def first_value(array: Any, default: Any = None) -> Any:
    """The value of a single-value tensor ([1], [1, 1], ...) as a Python scalar; `default` when
    the tensor is absent (None) or empty."""
    if array is None:
        return default
    array = np.asarray(array)
    if array.size == 0:
        return default
    return array.reshape(-1)[0].item()


def scalar(request: Any, name: str, default: Any = None) -> Any:
    """The value of a request's single-value input `name`, or `default` when the client left it out."""
    import triton_python_backend_utils as pb_utils

    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return first_value(None if tensor is None else tensor.as_numpy(), default)


def stop_requested(request: Any) -> bool:
    """TensorRT-LLM's convention: a request with `stop: true` ends the live request with its id."""
    return bool(scalar(request, LLM.STOP, False))


NO_EXPECTATION = -1  # expected_output_tokens without a calibration (a version shipped before them)


def expected_tokens_value(expected_tokens: float | None) -> int:
    """`expected_output_tokens`' value: the calibrated length rounded to a token count, or
    NO_EXPECTATION."""
    if expected_tokens is None or not np.isfinite(expected_tokens):
        return NO_EXPECTATION
    return max(0, int(round(expected_tokens)))


def engine_outputs(log_probs: list[float] | None, cum_log_prob: float,
                   expected_tokens: float | None = None) -> dict[str, np.ndarray]:
    """The outputs relayed to the client beside the tokens (Scheduler.RELAYED), for one response of
    one sequence (batch 1, beam 1): TensorRT-LLM's log-probs of its tokens and the answer's sum so far
    when the client asked (`log_probs` not None), empty ones otherwise; logits always empty (none are
    relayed); batch and sequence index 0; and the request's expected answer length (`expected_tokens`,
    the calibrated one; None: none known)."""
    wanted = log_probs is not None
    return {
        Scheduler.CUM_LOG_PROBS: np.array([[cum_log_prob]] if wanted else np.zeros((1, 0)), dtype=np.float32),
        Scheduler.OUTPUT_LOG_PROBS: np.array(log_probs or [], dtype=np.float32).reshape(1, 1, -1) if wanted
        else np.zeros((1, 1, 0), dtype=np.float32),
        Scheduler.CONTEXT_LOGITS: np.zeros((1, 0, 0), dtype=np.float32),
        Scheduler.GENERATION_LOGITS: np.zeros((1, 1, 0, 0), dtype=np.float32),
        Scheduler.BATCH_INDEX: np.zeros((1, 1), dtype=np.int32),
        Scheduler.SEQUENCE_INDEX: np.zeros((1, 1), dtype=np.int32),
        Scheduler.EXPECTED_OUTPUT_TOKENS: np.array([[expected_tokens_value(expected_tokens)]], dtype=np.int32),
    }
