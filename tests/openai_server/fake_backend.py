"""A scripted stand-in for Triton behind the OpenAI server's Backend seam."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from openai_server.ensemble_client import EnsembleChunk, EnsembleError, EnsembleRequest, RequestLimits


class FakeStream:
    def __init__(self, items: list[EnsembleChunk | EnsembleError], delay_s: float) -> None:
        self.items = list(items)
        self.delay_s = delay_s

    def __aiter__(self) -> "FakeStream":
        return self

    async def __anext__(self) -> EnsembleChunk:
        if not self.items:
            raise StopAsyncIteration
        await asyncio.sleep(self.delay_s)
        item = self.items.pop(0)
        if isinstance(item, EnsembleError):
            raise item
        return item


def words(n: int, word: str = " w", final_reason: str | None = None) -> list[EnsembleChunk]:
    """n one-token chunks, then the ensemble's empty final response."""
    return [EnsembleChunk(word, 1, False) for _ in range(n)] + [EnsembleChunk("", 0, True, final_reason)]


@dataclass
class FakeBackend:
    script: list[EnsembleChunk | EnsembleError] = field(default_factory=lambda: words(3))
    delay_s: float = 0.0
    limits: RequestLimits = RequestLimits(max_input_len=64, max_output_len=100)
    is_ready: bool = True
    opened: list[EnsembleRequest] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    async def ready(self) -> bool:
        return self.is_ready

    async def request_limits(self) -> RequestLimits:
        return self.limits

    def open(self, request: EnsembleRequest) -> FakeStream:
        self.opened.append(request)
        return FakeStream(self.script, self.delay_s)

    def end(self, request_id: str, stream) -> None:
        self.ended.append(request_id)
