"""Token chunks from a stream of LLM responses, free of Triton.

The responses of a decoupled BLS call come from a blocking iterator, so a worker thread reads them
into an asyncio queue (`read_into`) and the event loop keeps serving the other requests. Tokens
that arrived while the relay was busy go out as one chunk (`merged_chunks`): when the host CPU
falls behind, fewer, larger chunks instead of a growing backlog of one-token ones.

A finished iterator is handed to a `DeferredRelease`, which lets it go on the event loop some
seconds later (why: its docstring).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from typing import AsyncIterator, Callable, Iterable, TypeVar

Response = TypeVar("Response")


class TokenChunk(list):
    """Token ids that arrived together, with each one's log-prob in `log_probs` (0.0 where the engine
    sent none: it does only with `return_log_probs`). A list, so that whoever wants only the ids
    (the relay's tests, `answer_tokens`) reads it as one."""

    def __init__(self, ids: Iterable[int] = (), log_probs: Iterable[float] = ()) -> None:
        super().__init__(ids)
        self.log_probs: list[float] = list(log_probs)


def aligned_log_probs(ids: list[int], log_probs: list[float] | None) -> list[float]:
    """One log-prob per id: those sent, cut or padded with 0.0 to the ids' count."""
    values = list(log_probs or [])[: len(ids)]
    return values + [0.0] * (len(ids) - len(values))


class LLMStalled(RuntimeError):
    """No response from the LLM model for `stall_timeout_s`: its stub died (Triton then neither
    answers nor ends the BLS stream) or it hangs. The request fails with this instead of waiting
    forever, and its slot is given back."""


class DeferredRelease:
    """Holds finished BLS response iterators for `hold_s` seconds, then lets them go, on the event
    loop (with the GIL).

    Why: in the python backend of Triton 2.51 (python_backend r24.10) the stub also keeps each
    decoupled BLS iterator in a map, which its cleanup thread erases, without the GIL, shortly after
    the last response. If Python has already let go of the iterator, that erase destroys it, and
    with it the numpy arrays of every response it kept: Python objects freed without the GIL, which
    corrupts pymalloc's free lists. That is the mechanism, read from the backend's source, behind the
    scheduler stub's segfaults in `_PyObject_Malloc` under many concurrent streams (dmesg:
    libpython3.11.so+0x1af854); the crash itself was not reproduced on demand. Held until the erase
    is long done, the iterator's last reference is Python's, dropped here with the GIL. Only as many
    iterators as finish within `hold_s` are held."""

    def __init__(self, hold_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self.clock = clock
        self._held: deque[tuple[float, object]] = deque()

    def keep(self, iterator: object) -> None:
        """Call on the event loop thread."""
        now = self.clock()
        self._held.append((now, iterator))
        while self._held and now - self._held[0][0] >= self.hold_s:
            self._held.popleft()

    def __len__(self) -> int:
        return len(self._held)


def use_bls_executor(executor: Executor) -> None:
    """Make `executor` the running loop's default pool (once): the python backend's `async_exec`
    runs each BLS call there, and a decoupled call holds its thread until its first response, which
    a queued or prefilling request gets late. The default pool (min(32, CPUs + 4) threads) would cap
    the calls waiting for a first response and starve every other call behind them."""
    loop = asyncio.get_running_loop()
    if getattr(loop, "_ltr_bls_executor", None) is not executor:
        loop.set_default_executor(executor)
        loop._ltr_bls_executor = executor  # type: ignore[attr-defined]


def read_into(responses: Iterable, loop: asyncio.AbstractEventLoop, arrived: asyncio.Queue,
              release: DeferredRelease | None = None) -> None:
    """Worker-thread side: put every response on `arrived`, then None (end) or the exception that
    ended the iterator (it surfaces in the relay as this request's failure); the finished iterator
    goes to `release` (on the loop) instead of being dropped on this thread."""
    end: object = None
    try:
        for response in responses:
            loop.call_soon_threadsafe(arrived.put_nowait, response)
    except Exception as exc:
        end = exc
    if release is not None:
        loop.call_soon_threadsafe(release.keep, responses)
    loop.call_soon_threadsafe(arrived.put_nowait, end)


async def merged_chunks(
    arrived: asyncio.Queue,
    token_ids: Callable[[Response], list[int]],
    error_message: Callable[[Response], str | None],
    stall_timeout_s: float | None = None,
    log_probs: Callable[[Response], list[float]] | None = None,
) -> AsyncIterator[TokenChunk]:
    """Yield the token ids of the responses on `arrived`, those that arrived together as one chunk
    (a TokenChunk, with their log-probs when `log_probs` reads them), never an empty one. Ends at
    None; raises an exception that arrived (after yielding the tokens before it), RuntimeError with the message of an error response, and LLMStalled when nothing
    arrives for `stall_timeout_s` (None: wait forever)."""
    while True:
        try:
            first = await asyncio.wait_for(arrived.get(), stall_timeout_s)
        except asyncio.TimeoutError:
            raise LLMStalled(f"no response from the LLM for {stall_timeout_s:g} s; its model may have died") from None
        batch = [first]
        while not arrived.empty():
            batch.append(arrived.get_nowait())
        tokens = TokenChunk()
        for response in batch:
            if response is None or isinstance(response, Exception):
                if tokens:
                    yield tokens
                if response is not None:
                    raise response
                return
            message = error_message(response)
            if message is not None:
                raise RuntimeError(message)
            ids = token_ids(response)
            tokens.extend(ids)
            tokens.log_probs.extend(aligned_log_probs(ids, log_probs(response) if log_probs else None))
        if tokens:
            yield tokens


def stream_chunks(
    responses: Iterable[Response],
    executor: Executor,
    token_ids: Callable[[Response], list[int]],
    error_message: Callable[[Response], str | None],
    stall_timeout_s: float | None = None,
    release: DeferredRelease | None = None,
    log_probs: Callable[[Response], list[float]] | None = None,
) -> AsyncIterator[TokenChunk]:
    """Read the blocking `responses` on `executor` and yield their tokens as merged chunks."""
    arrived: asyncio.Queue = asyncio.Queue()
    executor.submit(read_into, responses, asyncio.get_running_loop(), arrived, release)
    return merged_chunks(arrived, token_ids, error_message, stall_timeout_s, log_probs)
