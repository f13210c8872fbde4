"""Small helpers the Triton `model.py` files share to read their config and optional inputs.

Imports `triton_python_backend_utils` lazily: it exists only inside the python backend stub.
"""

from __future__ import annotations

from typing import Any


def model_parameters(model_config: dict) -> dict[str, str]:
    """config.pbtxt `parameters` as a plain {key: string_value} dict."""
    return {key: value["string_value"] for key, value in model_config.get("parameters", {}).items()}


def optional_input(request: Any, name: str, default: Any) -> Any:
    """The scalar value of an optional input tensor, or `default` when the client left it out."""
    import triton_python_backend_utils as pb_utils

    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    return tensor.as_numpy().reshape(-1)[0].item()
