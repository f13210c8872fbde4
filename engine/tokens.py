"""Where generated token ids come from: the engine core asks a `TokenSource` once per step.

The `timing` stand-in uses `WordTokenSource` (cheap, readable, deterministic per request seed);
`hf` mode uses `engine.hf_llama.HfLlamaTokenSource`, which really runs a small Llama model.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from engine.request import EngineRequest
from engine.vocab import COMMA_ID, MULTILINGUAL_IDS, PERIOD_ID, WORD_IDS


class TokenSource(Protocol):
    """Produces the next token of every running request for one engine step."""

    def next_tokens(self, requests: Sequence[EngineRequest]) -> list[int]:
        """One token per request, in order. A request with `generated == 0` is in its context phase."""
        ...

    def release(self, request: EngineRequest) -> None:
        """Forget per-request state (finished, cancelled or preempted)."""
        ...


class WordTokenSource:
    """Random common English words with punctuation, never a special token.

    Deterministic per request: the stream depends only on the request's `seed`, so a preempted and
    resumed request continues the same text. It never produces an end id itself: where an answer
    ends is the request's `answer_len` (`EndAtAnswerLength`), or its `max_tokens` cap.
    """

    def __init__(self) -> None:
        self._rngs: dict[int, np.random.Generator] = {}

    def next_tokens(self, requests: Sequence[EngineRequest]) -> list[int]:
        out: list[int] = []
        for req in requests:
            rng = self._rngs.get(id(req))
            if rng is None:
                rng = np.random.default_rng(req.seed)
                rng.random(req.generated)  # keep the stream aligned after a preemption
                self._rngs[id(req)] = rng
            u = rng.random()
            if u < 0.07 and req.generated > 0:
                out.append(PERIOD_ID)
            elif u < 0.12 and req.generated > 0:
                out.append(COMMA_ID)
            else:
                out.append(WORD_IDS[int(u * 1e6) % len(WORD_IDS)])
        return out

    def release(self, request: EngineRequest) -> None:
        self._rngs.pop(id(request), None)


class CyclicTokenSource:
    """Emits a fixed id sequence in a cycle, token `generated` of every request being
    `ids[generated % len(ids)]`: the text of any answer is known in advance. The `timing` stand-in's
    `timing_tokens: multilingual` uses it with ids that split characters across tokens, so tests
    can check streamed text byte for byte."""

    def __init__(self, ids: Sequence[int] = MULTILINGUAL_IDS) -> None:
        if not ids:
            raise ValueError("CyclicTokenSource needs at least one id")
        self.ids = tuple(ids)

    def next_tokens(self, requests: Sequence[EngineRequest]) -> list[int]:
        return [self.ids[req.generated % len(self.ids)] for req in requests]

    def release(self, request: EngineRequest) -> None:
        return None


class EndAtAnswerLength:
    """Ends each answer like the model would: once a request has its `answer_len` tokens (and at
    least its `min_tokens`), the next token is its `end_id`, whatever the inner source would have
    said. The engine wraps every source in it, so the timing stand-in, `hf` mode and the simulator
    end answers the same way."""

    def __init__(self, inner: TokenSource) -> None:
        self.inner = inner

    def next_tokens(self, requests: Sequence[EngineRequest]) -> list[int]:
        tokens = self.inner.next_tokens(requests)
        return [
            req.end_id if req.answer_len is not None and req.end_id is not None
            and req.generated >= max(req.answer_len, req.min_tokens)
            else tok
            for req, tok in zip(requests, tokens)
        ]

    def release(self, request: EngineRequest) -> None:
        self.inner.release(request)


class ConstantTokenSource:
    """Emits one fixed token: the cheapest source, for the simulator and tests."""

    def __init__(self, token_id: int = WORD_IDS[0]) -> None:
        self.token_id = token_id

    def next_tokens(self, requests: Sequence[EngineRequest]) -> list[int]:
        return [self.token_id] * len(requests)

    def release(self, request: EngineRequest) -> None:
        return None
