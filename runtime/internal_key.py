"""The deploy's internal key: the second wall around the models only our own models call.

The door (door/) keeps clients away from every internal model; this key keeps away whoever reaches
Triton's private ports anyway (another process on the host, a pod whose arguments someone
changed). The deploy makes one key per deploy (per pod in Kubernetes) and hands it to tritonserver
as a file named by `LTR_INTERNAL_KEY_FILE`; each BLS caller sends it as the request parameter
`ltr-internal-key` (pb_utils.InferenceRequest(parameters=...)), and a model that requires it refuses
a request without it before doing any work. No file configured: no check (tests that start
their own servers call the models directly).

What it covers: the models reached only by BLS, the CPU `tensorrt_llm` stand-in (ltr_scheduler's
calls and stops) and `length_predictor` (preprocessing's call). Not `preprocessing`,
`ltr_scheduler` or `postprocessing`: they are also steps of the `ensemble`, whose requests come from
clients, not from our code; an ensemble step receives what the client sent (tensors, and at most
the client's own parameters), never a parameter our code adds, so a key check there would refuse
every ensemble request. They are behind the door alone. (The real TensorRT-LLM backend on GPUs does
not check the key either.)
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Mapping

ENV_FILE = "LTR_INTERNAL_KEY_FILE"
PARAMETER = "ltr-internal-key"
FILE_NAME = "internal_key"


def load_key(environ: Mapping[str, str] = os.environ) -> str | None:
    """The key from the file `LTR_INTERNAL_KEY_FILE` names; None when no file is configured.
    A configured file that cannot be read raises: a model must not start open by accident."""
    path = environ.get(ENV_FILE, "")
    if not path:
        return None
    key = Path(path).read_text().strip()
    if not key:
        raise ValueError(f"{ENV_FILE}={path} is empty")
    return key


def write_key(state_dir: Path) -> Path:
    """A new key in `<state_dir>/internal_key`, readable by its owner only."""
    path = Path(state_dir) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return path


def bls_parameters(key: str | None) -> dict[str, str]:
    """What a BLS caller passes as `parameters=` so that the callee lets the call in."""
    return {PARAMETER: key} if key else {}


def carries_key(parameters_json: str, key: str | None) -> bool:
    """Whether a request whose `request.parameters()` is `parameters_json` may be served."""
    if key is None:
        return True
    try:
        sent = json.loads(parameters_json or "{}").get(PARAMETER, "")
    except (ValueError, AttributeError):
        return False
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), key.encode())


def refusal(model: str) -> str:
    return (f"{model} is internal: only this deployment's own models may call it "
            "(clients call ltr_bls or ensemble)")
