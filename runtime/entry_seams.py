"""The Triton seams of the `ltr_bls` entry model: the steps it calls by BLS, the client it answers,
and what they answer with. `ltr_bls/1/model.py` fills them; the tests fake them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from runtime.contracts import ENGINE_OUTPUTS_TO_ENTRY, Scheduler
from runtime.triton_tensors import first_value


class StepError(Exception):
    """An error a step answered with. `code` is the step's Triton error code, kept as it came so that
    the client gets the code the ensemble would pass on (INVALID_ARG → 400, UNAVAILABLE → 503)."""

    def __init__(self, message: str, code: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class SchedulerReply:
    """One `ltr_scheduler` response, read from its tensors."""

    token_ids: list[int]  # the new tokens (cut to sequence_length)
    context_ids: list[int]  # tokens sent before, for incremental detokenization
    final: bool
    finish_reason: str = ""  # "stop" | "length" | "cancelled" on the final response
    # the engine's other outputs (log-probs, logits, indices) by the entry's names, for the client as they came
    engine_outputs: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_tensors(cls, tensor: Callable[[str], np.ndarray | None]) -> SchedulerReply | None:
        """Read one response by its tensors (`tensor(name)`, None when absent); None for an empty
        response (a bare final flag), which has nothing for the client."""
        ids = tensor(Scheduler.OUTPUT_IDS)
        if ids is None:
            return None
        finish = tensor(Scheduler.FINISH_REASON)
        finish = finish.reshape(-1)[0] if finish is not None and finish.size else b""
        return cls(
            token_ids=ids.reshape(-1)[: int(first_value(tensor(Scheduler.SEQUENCE_LENGTH), 0))].tolist(),
            context_ids=tensor(Scheduler.CONTEXT_IDS).reshape(-1).tolist(),
            final=bool(first_value(tensor(Scheduler.IS_FINAL), False)),
            finish_reason=finish.decode() if isinstance(finish, bytes) else str(finish),
            engine_outputs={entry: value for name, entry in ENGINE_OUTPUTS_TO_ENTRY.items()
                            if (value := tensor(name)) is not None},
        )


class Steps(Protocol):
    async def preprocess(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Preprocessing's outputs by name; raises StepError when it refused the request."""
        ...

    async def schedule(self, inputs: Mapping[str, np.ndarray], request_id: str) -> Iterable[Any]:
        """Send the scheduler request; its responses come from a blocking iterator (read on a
        thread). Returns only with the first response (the python backend's `async_exec` does so),
        which a queued request gets when it is admitted: the flow watches the client meanwhile."""
        ...

    def read(self, response: Any) -> SchedulerReply | None:
        """One raw response of `schedule` (on the event loop); None for an empty one (a bare final
        flag); raises StepError for an error response."""
        ...

    async def stop(self, request_id: str) -> bool:
        """`stop` the live scheduler request with this id; False when the scheduler has none (yet)."""
        ...

    async def probe(self) -> str | None:
        """A cheap call to the scheduler (a `stop` for an id nobody has); the error message it got
        (a live scheduler answers "no live request ...", a dead stub's "Stub process ... is not
        healthy"), None when it got none. May raise: the exception's text is read the same way."""
        ...


class ClientSink(Protocol):
    def is_cancelled(self) -> bool: ...

    def send(self, text: str, tokens: int, finish: str, final: bool,
             engine_outputs: Mapping[str, np.ndarray] | None = None) -> None:
        """One response with the ensemble's outputs: text_output, output_token_count, finish_reason,
        and the engine's others as the scheduler sent them (None: their empty defaults)."""
        ...

    def send_error(self, error: StepError) -> None:
        """End the request with an error (final)."""
        ...


TextOf = Callable[[Sequence[int], Sequence[int], bool], str]  # (context ids, new ids, final) -> text
