"""Token chunks from a stream of LLM responses, free of Triton.

The responses of a decoupled BLS call come from a blocking iterator, so a worker thread reads them
into an asyncio queue (`read_into`) and the event loop keeps serving the other requests. Tokens
that arrived while the relay was busy go out as one chunk (`merged_chunks`): when the host CPU
falls behind, fewer, larger chunks instead of a growing backlog of one-token ones.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import AsyncIterator, Callable, Iterable, TypeVar

Response = TypeVar("Response")


class LLMStalled(RuntimeError):
    """No response from the LLM model for `stall_timeout_s`: its stub died (Triton then neither
    answers nor ends the BLS stream) or it hangs. The request fails with this instead of waiting
    forever, and its slot is given back."""


def read_into(responses: Iterable, loop: asyncio.AbstractEventLoop, arrived: asyncio.Queue) -> None:
    """Worker-thread side: put every response on `arrived`, then None (end) or the exception that
    ended the iterator (it surfaces in the relay as this request's failure)."""
    end: object = None
    try:
        for response in responses:
            loop.call_soon_threadsafe(arrived.put_nowait, response)
    except Exception as exc:
        end = exc
    loop.call_soon_threadsafe(arrived.put_nowait, end)


async def merged_chunks(
    arrived: asyncio.Queue,
    token_ids: Callable[[Response], list[int]],
    error_message: Callable[[Response], str | None],
    stall_timeout_s: float | None = None,
) -> AsyncIterator[list[int]]:
    """Yield the token ids of the responses on `arrived`, those that arrived together as one chunk,
    never an empty one. Ends at None; raises an exception that arrived (after yielding the tokens
    before it), RuntimeError with the message of an error response, and LLMStalled when nothing
    arrives for `stall_timeout_s` (None: wait forever)."""
    while True:
        try:
            first = await asyncio.wait_for(arrived.get(), stall_timeout_s)
        except asyncio.TimeoutError:
            raise LLMStalled(f"no response from the LLM for {stall_timeout_s:g} s; its model may have died") from None
        batch = [first]
        while not arrived.empty():
            batch.append(arrived.get_nowait())
        tokens: list[int] = []
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
            tokens.extend(token_ids(response))
        if tokens:
            yield tokens


def stream_chunks(
    responses: Iterable[Response],
    executor: Executor,
    token_ids: Callable[[Response], list[int]],
    error_message: Callable[[Response], str | None],
    stall_timeout_s: float | None = None,
) -> AsyncIterator[list[int]]:
    """Read the blocking `responses` on `executor` and yield their tokens as merged chunks."""
    arrived: asyncio.Queue = asyncio.Queue()
    executor.submit(read_into, responses, asyncio.get_running_loop(), arrived)
    return merged_chunks(arrived, token_ids, error_message, stall_timeout_s)
