"""Token chunks from LLM responses: what arrived together is merged, the stream ends at None, and
failures (a worker exception, an error response) surface as exceptions. Fake responses, no Triton."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from runtime.llm_stream import DeferredRelease, LLMStalled, merged_chunks, stream_chunks


@dataclass
class Response:
    ids: list[int] = field(default_factory=list)
    error: str | None = None


def token_ids(response: Response) -> list[int]:
    return response.ids


def error_message(response: Response) -> str | None:
    return response.error


def collect(arrivals: list[list]) -> tuple[list[list[int]], BaseException | None]:
    """Chunks yielded, and the exception raised, when each inner list of `arrivals` arrives at once,
    the next one only after the consumer took everything before it."""

    async def arrive(arrived: asyncio.Queue) -> None:
        for group in arrivals:
            while not arrived.empty():
                await asyncio.sleep(0)
            for item in group:
                arrived.put_nowait(item)

    async def scenario():
        arrived: asyncio.Queue = asyncio.Queue()
        producer = asyncio.create_task(arrive(arrived))
        chunks: list[list[int]] = []
        try:
            async for chunk in merged_chunks(arrived, token_ids, error_message):
                chunks.append(chunk)
        except Exception as exc:
            return chunks, exc
        finally:
            producer.cancel()
        return chunks, None

    return asyncio.run(asyncio.wait_for(scenario(), 5))


def test_responses_that_arrived_together_are_one_chunk():
    chunks, error = collect([[Response([1]), Response([2]), Response([3, 4])], [Response([5])], [None]])
    assert chunks == [[1, 2, 3, 4], [5]] and error is None


def test_the_stream_ends_at_none_with_the_tokens_before_it():
    chunks, error = collect([[Response([1]), Response([2]), None, Response([99])]])
    assert chunks == [[1, 2]] and error is None


def test_empty_responses_make_no_empty_chunk():
    chunks, error = collect([[Response([])], [Response([]), Response([7])], [Response([]), None]])
    assert chunks == [[7]] and error is None


def test_a_worker_exception_surfaces_after_the_tokens_before_it():
    failure = ConnectionError("stub died")
    chunks, error = collect([[Response([1])], [Response([2]), failure]])
    assert chunks == [[1], [2]] and error is failure


def test_an_error_response_raises_its_message():
    chunks, error = collect([[Response([1])], [Response(error="tensorrt_llm: bad end_id")]])
    assert chunks == [[1]]
    assert isinstance(error, RuntimeError) and str(error) == "tensorrt_llm: bad end_id"


def test_stream_chunks_reads_a_blocking_iterator_on_a_worker_thread():
    def responses():
        yield Response([1])
        yield Response([2, 3])
        raise TimeoutError("LLM went away")

    async def scenario():
        tokens: list[int] = []
        with ThreadPoolExecutor(1) as executor:
            with pytest.raises(TimeoutError, match="went away"):
                async for chunk in stream_chunks(responses(), executor, token_ids, error_message):
                    tokens.extend(chunk)
        return tokens

    assert asyncio.run(scenario()) == [1, 2, 3]


def test_a_stream_whose_model_died_fails_after_the_stall_timeout_instead_of_hanging():
    class DeadModelStream:
        """A BLS iterator whose model's stub was killed: it gives two tokens, then nothing, ever."""

        def __init__(self) -> None:
            self.unblock = __import__("threading").Event()

        def __iter__(self):
            yield Response([1])
            yield Response([2])
            self.unblock.wait(10)

    async def scenario():
        stream = DeadModelStream()
        chunks: list[list[int]] = []
        with ThreadPoolExecutor(1) as executor:
            try:
                async for chunk in stream_chunks(stream, executor, token_ids, error_message, stall_timeout_s=0.1):
                    chunks.append(chunk)
            except LLMStalled as exc:
                return chunks, str(exc)
            finally:
                stream.unblock.set()
        return chunks, None

    chunks, error = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert sum(chunks, []) == [1, 2]
    assert error == "no response from the LLM for 0.1 s; its model may have died"


def test_deferred_release_holds_iterators_for_the_hold_time_only():
    now = [0.0]
    release = DeferredRelease(clock=lambda: now[0])  # held 10 s by default
    first, second = object(), object()
    release.keep(first)
    now[0] = 9.9
    release.keep(second)
    assert len(release) == 2  # nothing old enough yet
    now[0] = 10.0
    release.keep(object())
    assert len(release) == 2 and first not in [held for _, held in release._held]


def test_a_finished_iterator_is_released_on_the_event_loop_not_the_reader_thread():
    """The python backend frees a BLS iterator Python let go of without the GIL (DeferredRelease)."""
    kept_on: list[tuple[object, str]] = []

    class Recording(DeferredRelease):
        def keep(self, iterator: object) -> None:
            import threading

            kept_on.append((iterator, threading.current_thread().name))

    class Responses:
        def __iter__(self):
            return iter([Response([1]), Response([2])])

    async def main() -> list[list[int]]:
        responses = Responses()
        with ThreadPoolExecutor(1, thread_name_prefix="reader") as pool:
            chunks = [c async for c in stream_chunks(responses, pool, token_ids, error_message, release=Recording())]
        assert kept_on and kept_on[0][0] is responses
        return chunks

    assert sum(asyncio.run(main()), []) == [1, 2]
    assert kept_on[0][1] == "MainThread"


def test_merged_chunks_carry_each_tokens_log_prob_aligned_to_its_ids():
    async def scenario():
        arrived: asyncio.Queue = asyncio.Queue()
        for item in (Response([1]), Response([2, 3]), Response([4]), None):
            arrived.put_nowait(item)
        lps = {1: [-0.5], 2: [-1.0, -2.0, -9.0], 4: []}  # one too many is cut, none is padded with 0.0
        return [c async for c in merged_chunks(arrived, token_ids, error_message,
                                               log_probs=lambda r: lps[r.ids[0]])]

    (chunk,) = asyncio.run(scenario())
    assert chunk == [1, 2, 3, 4] and chunk.log_probs == [-0.5, -1.0, -2.0, 0.0]


def test_the_bls_pool_becomes_the_loops_default_executor_once():
    from runtime.llm_stream import use_bls_executor

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bls-pool") as pool:
            set_calls = []
            original = loop.set_default_executor
            loop.set_default_executor = lambda e: (set_calls.append(e), original(e))  # type: ignore[method-assign]
            use_bls_executor(pool)
            use_bls_executor(pool)  # again: nothing to do
            assert set_calls == [pool] and loop._ltr_bls_executor is pool
            import threading
            name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
            assert name.startswith("bls-pool")  # the default pool is now ours
            other = ThreadPoolExecutor(max_workers=1)
            use_bls_executor(other)  # a different pool replaces it
            assert set_calls == [pool, other] and loop._ltr_bls_executor is other
            other.shutdown()

    asyncio.run(scenario())
