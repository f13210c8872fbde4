"""The batching core on a virtual clock: slots, FCFS, token counts, end_id, cancellation, KV."""

from __future__ import annotations

import pytest

from engine.batching import BatchingEngine
from engine.cost_model import CostModel
from engine.realtime import RealtimeEngine
from engine.request import EngineRequest
from engine.tokens import WordTokenSource
from engine.vocab import EOT_ID


def req(rid: str, prompt: int = 4, out: int = 3, **kw: object) -> EngineRequest:
    return EngineRequest(rid, prompt_len=prompt, max_tokens=out, **kw)  # type: ignore[arg-type]


def run_all(engine: BatchingEngine, limit: int = 10_000) -> tuple[float, list[str]]:
    clock, order = 0.0, []
    for _ in range(limit):
        if engine.idle:
            break
        res = engine.step()
        clock += res.duration_s
        order += [r.request_id for r in res.finished]
    return clock, order


def test_slot_limit_and_fcfs_admission() -> None:
    eng = BatchingEngine(max_batch_size=2)
    for i in range(5):
        eng.submit(req(f"r{i}", out=2))
    res = eng.step()
    assert [r.request_id for r in res.admitted] == ["r0", "r1"]
    assert res.batch_size == 2 and len(eng.waiting) == 3
    sizes = []
    while not eng.idle:
        sizes.append(eng.step().batch_size)
    assert max(sizes) <= 2


def test_fcfs_inside_engine_finishes_in_arrival_order_for_equal_lengths() -> None:
    eng = BatchingEngine(max_batch_size=1)
    for i in range(4):
        eng.submit(req(f"r{i}", out=3))
    _, order = run_all(eng)
    assert order == ["r0", "r1", "r2", "r3"]


@pytest.mark.parametrize("n", [1, 2, 17])
def test_exact_token_count_and_first_token_from_prefill(n: int) -> None:
    eng = BatchingEngine(max_batch_size=4, token_source=WordTokenSource())
    r = req("a", out=n, end_id=EOT_ID)
    eng.submit(r)
    emitted = []
    steps = 0
    while not eng.idle:
        emitted += [t for q, t in eng.step().emitted if q is r]
        steps += 1
    assert len(emitted) == n == r.generated == steps
    assert r.finish_reason == "length"
    assert EOT_ID not in emitted


def test_end_id_stops_early() -> None:
    class Seq:
        def next_tokens(self, requests):  # noqa: ANN001, ANN201
            return [7 if r.generated < 2 else 99 for r in requests]

        def release(self, request):  # noqa: ANN001, ANN201
            return None

    eng = BatchingEngine(token_source=Seq())
    r = req("a", out=10, end_id=99)
    eng.submit(r)
    run_all(eng)
    assert r.finish_reason == "end_id" and r.generated == 3 and r.output_ids == [7, 7, 99]


def test_stop_words_stop() -> None:
    eng = BatchingEngine(token_source=WordTokenSource())
    probe = req("p", out=6, seed=5)
    eng.submit(probe)
    run_all(eng)
    words = tuple(probe.output_ids[2:4])
    eng2 = BatchingEngine(token_source=WordTokenSource())
    r = req("a", out=6, seed=5, stop_words=(words,))
    eng2.submit(r)
    run_all(eng2)
    assert r.finish_reason == "stop_words" and r.generated == 4


def test_cancellation_frees_slot_and_kv() -> None:
    eng = BatchingEngine(max_batch_size=1)
    eng.submit(req("long", out=1000))
    eng.submit(req("next", out=2))
    eng.step()
    assert eng.kv_used == 4 + 1000
    assert eng.cancel("long") is not None
    assert eng.kv_used == 0 and eng.cancel("long") is None
    res = eng.step()
    assert [r.request_id for r in res.admitted] == ["next"]


def test_cancel_waiting_request() -> None:
    eng = BatchingEngine(max_batch_size=1)
    eng.submit(req("a"))
    eng.submit(req("b"))
    assert eng.cancel("b").finish_reason == "cancelled"  # type: ignore[union-attr]
    _, order = run_all(eng)
    assert order == ["a"]


def test_kv_budget_reserve_blocks_admission() -> None:
    eng = BatchingEngine(max_batch_size=8, kv_budget_tokens=20)
    for i in range(3):
        eng.submit(req(f"r{i}", prompt=4, out=6))  # 10 tokens reserved each
    assert len(eng.step().admitted) == 2 and eng.kv_used == 20
    with pytest.raises(ValueError):
        eng.submit(req("huge", prompt=15, out=6))


def test_max_utilization_preempts_latest_and_resumes() -> None:
    eng = BatchingEngine(max_batch_size=4, kv_budget_tokens=24, kv_policy="max_utilization")
    a, b = req("a", prompt=8, out=8), req("b", prompt=8, out=8)
    eng.submit(a)
    eng.submit(b)
    preempted = []
    while not eng.idle:
        res = eng.step()
        preempted += [r.request_id for r in res.preempted]
        assert eng.kv_used <= eng.kv_budget
    assert preempted and preempted[0] == "b"
    assert a.generated == 8 and b.generated == 8


def test_recompute_prefill_after_preemption_counts_generated_tokens() -> None:
    eng = BatchingEngine(max_batch_size=4, kv_budget_tokens=100, kv_policy="max_utilization",
                         requeue_preempted=False)
    r = req("a", prompt=10, out=50)
    r.generated = 5
    eng.submit(r)
    assert eng.step().prefill_tokens == 15


def test_step_duration_from_cost_model() -> None:
    cm = CostModel()
    eng = BatchingEngine(cost_model=cm, max_batch_size=4)
    eng.submit(req("a", prompt=100, out=3))
    first = eng.step()
    assert first.duration_s == pytest.approx(cm.step_s([100], 0, 0))
    second = eng.step()
    assert second.duration_s == pytest.approx(cm.decode_step_s(1, 101))


def test_preempt_running_with_swap_frees_kv_and_resumes_by_swap_in() -> None:
    cm = CostModel()
    eng = BatchingEngine(cost_model=cm, max_batch_size=4, kv_budget_tokens=100)
    r = req("a", prompt=10, out=5)
    eng.submit(r)
    eng.step()
    eng.step()
    assert eng.preempt("a", swap=True) is r and eng.preempt("a") is None
    assert eng.kv_used == 0 and eng.idle and r.swapped and r.generated == 2 and r.finish_reason is None
    eng.submit(r)
    res = eng.step()  # swap-out and swap-in of 12 tokens, then a decode step, no prefill
    assert res.prefill_tokens == 0 and not r.swapped and r.generated == 3
    assert res.duration_s == pytest.approx(cm.step_s([], 1, 12) + 2 * cm.swap_s(12))


def test_preempt_waiting_request_leaves_the_queue_unswapped() -> None:
    eng = BatchingEngine(max_batch_size=1)
    eng.submit(req("a"))
    eng.submit(req("b"))
    eng.step()
    b = eng.preempt("b", swap=True)
    assert b is not None and not b.swapped and b.finish_reason is None
    _, order = run_all(eng)
    assert order == ["a"]


@pytest.mark.parametrize("bad,message", [
    (req("a", prompt=0), "empty prompt"),
    (req("a", out=0), "request_output_len must be >= 1"),
    (req("a", prompt=90, out=20), "needs 110 KV tokens, more than the cache holds"),
])
def test_bad_requests_rejected_by_both_submit_paths(bad: EngineRequest, message: str) -> None:
    eng = BatchingEngine(kv_budget_tokens=100)
    with pytest.raises(ValueError, match=message):
        eng.submit(bad)
    rt = RealtimeEngine(eng, on_tokens=lambda r, ids, final: None, on_finish=lambda r: None)
    with pytest.raises(ValueError, match=message):
        rt.submit(bad)  # on the caller's thread, before the loop sees it
    assert eng.idle and not rt._incoming


def test_duplicate_request_id_rejected() -> None:
    eng = BatchingEngine()
    eng.submit(req("c"))
    with pytest.raises(ValueError, match="duplicate"):
        eng.submit(req("c"))
