"""RequestQueue: policy order, arrival tie-breaks, starvation bound, removal, bounds, cost."""

from __future__ import annotations

import random
import time

import pytest

from scheduler import QueuedRequest, QueueFull, QueueStats, RequestQueue, StarvationConfig, make_policy


def req(rid: str, score: float = 0.0, max_tokens: int = 10, arrival: float = 0.0) -> QueuedRequest:
    return QueuedRequest(rid, score=score, max_tokens=max_tokens, arrival=arrival)


def drain(queue: RequestQueue) -> list[str]:
    out = []
    while (r := queue.pop()) is not None:
        out.append(r.request_id)
    return out


def test_fcfs_keeps_arrival_order_whatever_the_scores():
    q = RequestQueue(make_policy("fcfs"))
    for i, score in enumerate([5.0, 1.0, 3.0, 0.0]):
        q.push(req(f"r{i}", score=score))
    assert drain(q) == ["r0", "r1", "r2", "r3"]


def test_ltr_orders_by_score_and_breaks_ties_by_arrival():
    q = RequestQueue(make_policy("ltr"))
    for rid, score in [("a", 2.0), ("b", 1.0), ("c", 2.0), ("d", -1.0), ("e", 1.0)]:
        q.push(req(rid, score=score))
    assert drain(q) == ["d", "b", "e", "a", "c"]


def test_oracle_orders_by_remaining_tokens():
    q = RequestQueue(make_policy("oracle"))
    q.push(req("long", max_tokens=500))
    q.push(req("short", max_tokens=5))
    resumed = req("resumed", max_tokens=500)
    resumed.attained = 499  # one token left after a preemption
    q.push(resumed)
    assert drain(q) == ["resumed", "short", "long"]


def test_starvation_promotes_a_request_after_threshold_admissions():
    threshold = 5
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=threshold, quantum=3))
    q.push(req("long", score=100.0))
    admitted = []
    for i in range(20):  # a steady stream of short requests that would overtake it forever
        q.push(req(f"s{i}", score=0.0))
        admitted.append(q.pop().request_id)
    assert "long" in admitted
    assert admitted.index("long") == threshold  # overtaken exactly `threshold` times
    assert q.stats().promoted_total == 1
    q.push(req("long2", score=100.0))
    for i in range(threshold + 1):
        q.push(req(f"t{i}", score=0.0))
        q.pop()
    assert q.stats().promoted_total == 2  # counted, not just flagged


def test_promoted_request_carries_its_quantum():
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=1, quantum=7))
    q.push(req("long", score=9.0))
    q.push(req("short", score=0.0))
    assert q.pop().request_id == "short"
    promoted = q.pop()
    assert promoted.request_id == "long" and promoted.promoted_for == 7


def test_starvation_disabled_lets_ltr_starve():
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=0))
    q.push(req("long", score=100.0))
    for i in range(50):
        q.push(req(f"s{i}", score=0.0))
        assert q.pop().request_id != "long"


def test_starvation_bound_holds_for_every_request_under_random_load():
    """Once overtaken `threshold` times a request is promoted; only older requests (promoted
    first) can still go before it. So wait <= threshold + requests older than it still waiting."""
    threshold = 8
    rng = random.Random(0)
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=threshold))
    pushed_at: dict[str, int] = {}
    older_waiting: dict[str, int] = {}
    worst_excess = -threshold
    admissions = 0
    for i in range(3000):
        for _ in range(rng.choice([0, 0, 1, 2])):
            rid = f"r{i}-{rng.random()}"
            older_waiting[rid] = len(q)
            q.push(req(rid, score=rng.random()))
            pushed_at[rid] = admissions
        if len(q):
            r = q.pop()
            waited = admissions - pushed_at[r.request_id]
            worst_excess = max(worst_excess, waited - older_waiting[r.request_id])
            admissions += 1
    assert worst_excess <= threshold
    assert q.stats().promoted_total > 0


def test_remove_takes_a_request_out_and_the_rest_keep_order():
    q = RequestQueue(make_policy("ltr"))
    for rid, score in [("a", 1.0), ("b", 2.0), ("c", 3.0)]:
        q.push(req(rid, score=score))
    assert q.remove("a").request_id == "a"
    assert q.remove("a") is None
    assert "a" not in q and len(q) == 2
    assert drain(q) == ["b", "c"]
    assert q.stats().removed_total == 1


def test_bounded_queue_rejects_with_overloaded_error_and_recovers():
    q = RequestQueue(make_policy("fcfs"), max_size=2)
    q.push(req("a"))
    q.push(req("b"))
    with pytest.raises(QueueFull, match="overloaded"):
        q.push(req("c"))
    q.pop()
    q.push(req("c"))  # room again
    assert q.stats().rejected_total == 1


def test_duplicate_ids_are_refused():
    q = RequestQueue(make_policy("fcfs"))
    q.push(req("a"))
    with pytest.raises(ValueError, match="already queued"):
        q.push(req("a"))


def test_peek_matches_pop():
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=2))
    rng = random.Random(1)
    for i in range(200):
        q.push(req(f"r{i}", score=rng.random()))
        if i % 3 == 0:
            q.remove(f"r{rng.randrange(i + 1)}")
        if i % 2 == 0 and len(q):
            expected = q.peek()
            assert q.pop() is expected


def test_heap_stays_compact_after_many_removals():
    q = RequestQueue(make_policy("ltr"))
    for i in range(10_000):
        q.push(req(f"r{i}", score=float(i)))
    for i in range(0, 10_000, 2):
        q.remove(f"r{i}")
    assert len(q._heap) <= 2 * len(q) + 64


def test_operations_stay_cheap_with_ten_thousand_waiting():
    """Not a timing assertion on a noisy machine: a generous bound that an O(n) scan per
    operation (10,000 x 10,000 steps) could not meet."""
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=200))
    rng = random.Random(2)
    for i in range(10_000):
        q.push(req(f"w{i}", score=rng.random()))
    start = time.perf_counter()
    for i in range(10_000):
        q.push(req(f"n{i}", score=rng.random()))
        q.pop()
    assert time.perf_counter() - start < 5.0
    assert len(q) == 10_000


def test_stats_and_wait_counts_describe_the_queue():
    q = RequestQueue(make_policy("ltr"), max_size=3)
    assert q.stats() == QueueStats("ltr", waiting=0, admitted_total=0, promoted_total=0, rejected_total=0,
                                   removed_total=0, oldest_wait_count=0)
    q.push(req("a", score=1.0))
    q.push(req("b", score=2.0))
    assert q.pop().request_id == "a"
    q.push(req("c", score=0.0))
    assert q.wait_count("b") == 1 and q.wait_count("c") == 0
    q.remove("c")
    q.push(req("d", score=3.0))
    q.push(req("e", score=4.0))
    with pytest.raises(QueueFull):
        q.push(req("f"))
    assert q.pop().request_id == "b"
    assert q.wait_count("d") == 1
    assert q.stats() == QueueStats("ltr", waiting=2, admitted_total=2, promoted_total=0, rejected_total=1,
                                   removed_total=1, oldest_wait_count=1)


def test_bad_settings_are_refused_with_their_reason():
    with pytest.raises(ValueError, match=r"^starvation threshold and quantum must be >= 0$"):
        StarvationConfig(threshold=-1, quantum=0)
    with pytest.raises(ValueError, match=r"^starvation threshold and quantum must be >= 0$"):
        StarvationConfig(threshold=0, quantum=-1)
    with pytest.raises(ValueError, match=r"^max_size must be positive \(or None for unbounded\)$"):
        RequestQueue(make_policy("fcfs"), max_size=0)


def test_every_event_is_counted_not_just_noticed():
    q = RequestQueue(make_policy("ltr"), StarvationConfig(threshold=1), max_size=2)
    for rid, score in [("first", 9.0), ("second", 8.0)]:
        q.push(req(rid, score=score))
    for rid in ("x", "y"):
        with pytest.raises(QueueFull):
            q.push(req(rid))
    assert [q.pop().request_id, q.pop().request_id] == ["second", "first"]  # "first" by promotion
    q.push(req("a"))
    q.push(req("b"))
    q.remove("a")
    q.remove("b")
    stats = q.stats()
    assert (stats.rejected_total, stats.removed_total, stats.promoted_total) == (2, 2, 1)



def test_an_arrival_aware_policy_can_hand_the_slot_to_the_oldest_and_learns_who_overtook():
    from scheduler import Guarded, GuardedConfig
    from scheduler.guard import GuardConfig

    policy = Guarded(GuardedConfig(short_quantile=1.0, age_factor=1.0, ttft_target_s=2.0, guard=GuardConfig(floor=0.0)))
    q = RequestQueue(policy)
    q.push(req("long", score=9.0, arrival=0.0))
    q.push(req("short", score=1.0, arrival=1.0))
    q.push(req("shorter", score=0.5, arrival=1.5))
    first = q.pop(now=1.5)
    assert first.request_id == "shorter" and first.overtook  # ranked first, went ahead of "long"
    second = q.pop(now=2.0)  # "long" has waited 2 s = 1 x its TTFT target: it goes next
    assert second.request_id == "long" and not second.overtook
    assert q.stats().oldest_picks_total == 1
    assert q.pop(now=2.0).request_id == "short"


def test_a_distrusting_guard_gives_arrival_order():
    from scheduler import Guarded

    q = RequestQueue(Guarded())  # distrusts until finished requests show the ranking works
    for i, score in enumerate([5.0, 1.0, 3.0, 0.0]):
        q.push(req(f"r{i}", score=score, arrival=float(i)))
    assert [q.pop(now=10.0).request_id for _ in range(4)] == ["r0", "r1", "r2", "r3"]


@pytest.mark.parametrize("pushed, live_kept, live_compacted", [(200, 68, 67), (199, 68, 67), (100, 18, 17)])
def test_the_heap_is_compacted_exactly_when_it_outgrows_twice_the_live_requests_plus_64(
        pushed, live_kept, live_compacted):
    # removal only marks an entry dead; the heap is rebuilt once it holds more than 2 * live + 64
    # entries (the boundary is checked from both sides: 200 = 2 * 68 + 64 keeps, 199 = 2 * 67 + 65 compacts)
    q = RequestQueue(make_policy("ltr"))
    for i in range(pushed):
        q.push(req(f"r{i}", score=float(i)))
    for i in range(pushed - live_kept):
        assert q.remove(f"r{i}") is not None
    assert len(q) == live_kept and len(q._heap) == pushed  # at the threshold: not yet
    q.remove(f"r{pushed - live_kept}")
    assert len(q) == live_compacted and len(q._heap) == live_compacted  # past it: only the live ones
    assert drain(q) == [f"r{i}" for i in range(pushed - live_compacted, pushed)]  # still in policy order


def test_popping_dead_entries_also_compacts_the_heap():
    q = RequestQueue(make_policy("fcfs"))
    for i in range(200):
        q.push(req(f"r{i}"))
    for i in range(1, 200, 2):  # every other one, so that pops meet the dead entries
        q.remove(f"r{i}")
    assert len(q._heap) == 200
    while len(q) > 30:
        q.pop()
    assert len(q._heap) <= 2 * len(q) + 64 and q.peek().request_id == "r140"
