"""The batching core on the wall clock: tokens stream from the engine thread, cancellation is polled."""

from __future__ import annotations

import threading
import time

from engine.batching import BatchingEngine
from engine.realtime import RealtimeEngine
from engine.request import EngineRequest


def req(rid: str, out: int) -> EngineRequest:
    return EngineRequest(rid, prompt_len=4, max_tokens=out)


def test_realtime_engine_streams_and_cancels() -> None:
    eng = BatchingEngine(max_batch_size=1)
    got: dict[str, list[int]] = {}
    done: dict[str, str] = {}
    cancel = threading.Event()
    ev = threading.Event()

    def on_tokens(r: EngineRequest, ids: list[int], final: bool) -> None:
        got.setdefault(r.request_id, []).extend(ids)

    def on_finish(r: EngineRequest) -> None:
        done[r.request_id] = r.finish_reason or ""
        if len(done) == 2:
            ev.set()

    rt = RealtimeEngine(eng, on_tokens, on_finish,
                        is_cancelled=lambda r: r.request_id == "long" and cancel.is_set())
    rt.start()
    try:
        rt.submit(req("long", out=100_000))
        rt.submit(req("short", out=5))
        time.sleep(0.1)
        cancel.set()
        assert ev.wait(5)
    finally:
        rt.stop()
    assert done == {"long": "cancelled", "short": "length"}
    assert len(got["short"]) == 5 and 0 < len(got["long"]) < 100_000
