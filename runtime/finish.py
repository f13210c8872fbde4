"""Why a response ended, in the client's words, and the one rule that infers it.

Its own module, free of the scheduler, so that the relay (which writes the ensemble's
`finish_reason`) and the OpenAI server (which infers it when the ensemble reports none) share the
rule rather than each writing it down.
"""

from __future__ import annotations

from typing import Literal

# Why a response ended, as the OpenAI API and the ensemble's `finish_reason` output say it: the
# model's end token or a stop word, the `max_tokens` cap, or the client (or a `stop`) ended it.
# The engine's own reasons (`engine.request.EngineFinish`) are finer: end_id and stop_words are `stop`.
FinishReason = Literal["stop", "length", "cancelled"]


def finish_reason(tokens: int, max_tokens: int) -> FinishReason:
    """A finished generation's reason. TensorRT-LLM reports none, so it is inferred as its OpenAI
    front end does: an answer that used its whole budget was cut by the cap."""
    return "length" if tokens >= max_tokens else "stop"
