"""The LLM tensor contract: TensorRT-LLM's `tensorrt_llm` Triton interface as the scheduler uses it.

Declared once, as data, so that the scheduler's BLS client (ltr_scheduler/1/model.py), the CPU
stand-in (tensorrt_llm/1/model.py) and the GPU interface check (deploy/config_checks.py) cannot
drift apart: whatever the scheduler sends or reads is named here, and the check holds the GPU
`tensorrt_llm` config to exactly these names.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

INPUT_IDS = "input_ids"
INPUT_LENGTHS = "input_lengths"
REQUEST_OUTPUT_LEN = "request_output_len"
SENT_ON_EVERY_CALL = (INPUT_IDS, INPUT_LENGTHS, REQUEST_OUTPUT_LEN)

# Sampling and stopping inputs the scheduler forwards when its own client gave them.
PASSED_THROUGH = (
    "end_id", "pad_id", "stop_words_list", "bad_words_list", "temperature", "runtime_top_k", "runtime_top_p", "seed",
)

# Each call carries one of these flags: a generation call streams, a `stop` call (same request id)
# ends a live generation. So neither is sent on every call.
STREAMING = "streaming"
STOP = "stop"

OUTPUT_IDS = "output_ids"
OUTPUTS_READ = (OUTPUT_IDS, "sequence_length")


def call_inputs(
    input_ids: np.ndarray, max_tokens: int, passed: Mapping[str, np.ndarray], flag: str
) -> dict[str, np.ndarray]:
    """The input tensors of one call for a single prompt (batch of one); `flag` is STREAMING or STOP."""
    if flag not in (STREAMING, STOP):
        raise ValueError(f"a call is either {STREAMING!r} or {STOP!r}, not {flag!r}")
    unknown = set(passed) - set(PASSED_THROUGH)
    if unknown:
        raise ValueError(f"not pass-through inputs of the LLM contract: {sorted(unknown)}")
    return {
        INPUT_IDS: input_ids[None, :],
        INPUT_LENGTHS: np.array([[input_ids.size]], dtype=np.int32),
        REQUEST_OUTPUT_LEN: np.array([[max_tokens]], dtype=np.int32),
        **passed,
        flag: np.array([[True]]),
    }
