"""Replicas behind a router: routing decisions, one replica is `simulate`, nothing is lost."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler import QueuedRequest, StarvationConfig
from simulator.policies import make_policy
from simulator.replicas import (
    ROUTERS,
    LeastWaiting,
    RandomRouter,
    RankedQueue,
    Replica,
    RoundRobin,
    ScoreAware,
    make_router,
    simulate_replicas,
)
from simulator.sim import SimConfig, simulate, sim_request
from tests.simulator.test_sim import cfg, reqs
from workloads.traces import TraceRequest


def poisson_workload(n: int, rate: float, seed: int = 0) -> tuple[list[TraceRequest], np.ndarray]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    lengths = rng.integers(1, 400, n)
    work = [TraceRequest(f"r{i}", float(a), int(rng.integers(10, 600)), int(m)) for i, (a, m) in enumerate(zip(arrivals, lengths))]
    scores = lengths + rng.normal(0, 100, n)  # a noisy predictor
    return work, scores


def replica(policy: str = "ltr", **kw: object) -> Replica:
    return Replica(make_policy(policy), cfg(**kw))


def pending(rep: Replica, *scores: float, arrival: float = 0.0, first_id: int = 0) -> None:
    """Queue requests on `rep` (they join its queue at its next iteration: waiting all the same)."""
    for i, s in enumerate(scores):
        rep.add(sim_request(first_id + i, TraceRequest(f"p{i}", arrival, 4, 10), s))


def newcomer(score: float, arrival: float = 0.0) -> object:
    return sim_request(999, TraceRequest("new", arrival, 4, 10), score)


@pytest.mark.parametrize("policy", ["fcfs", "ltr", "oracle", "mlfq"])
def test_one_replica_is_simulate_exactly(policy: str) -> None:
    work, scores = poisson_workload(600, rate=12.0)
    config = SimConfig(max_inflight=16, batch_slots=16)  # the real cost model, queues build up
    single = simulate(work, scores, policy, config)
    for router in ROUTERS:
        many = simulate_replicas(work, scores, policy, router, 1, config)
        for field in ("arrival", "first_token", "finish", "output_tokens", "max_gap"):
            assert np.array_equal(getattr(many.times, field), getattr(single.times, field)), (router, field)
        assert (many.steps, many.preemptions) == (single.steps, single.preemptions)


def test_one_replica_is_simulate_with_preemption_and_demotion() -> None:
    work, scores = poisson_workload(300, rate=20.0, seed=3)
    config = SimConfig(max_inflight=32, batch_slots=32, kv_budget_tokens=20_000, kv_policy="max_utilization",
                       starvation_threshold=20, starvation_quantum=5, demote_after_quantum=True)
    single = simulate(work, scores, "ltr", config)
    many = simulate_replicas(work, scores, "ltr", "score", 1, config)
    assert single.preemptions > 0
    assert np.array_equal(many.times.finish, single.times.finish)
    assert many.preemptions == single.preemptions


@pytest.mark.parametrize("router", ROUTERS)
def test_every_request_served_once_on_one_replica(router: str) -> None:
    work, scores = poisson_workload(800, rate=40.0, seed=1)
    res = simulate_replicas(work, scores, "ltr", router, 4, SimConfig(max_inflight=16, batch_slots=16), seed=2)
    assert set(res.replica.tolist()) <= {0, 1, 2, 3}
    assert res.per_replica_requests(4).sum() == len(work)
    assert np.all(np.isfinite(res.times.finish))
    assert np.all(res.times.first_token >= res.times.arrival)
    assert np.all(res.times.finish >= res.times.first_token)
    assert np.array_equal(res.times.output_tokens, [r.output_tokens for r in work])
    assert np.array_equal(res.times.arrival, [r.arrival_s for r in work])


def test_requests_on_a_replica_run_as_simulate_would_run_them_alone() -> None:
    """Each replica runs exactly as one simulation of the requests it was given."""
    work, scores = poisson_workload(400, rate=30.0, seed=4)
    config = SimConfig(max_inflight=8, batch_slots=8)
    res = simulate_replicas(work, scores, "ltr", "least_waiting", 3, config)
    for k in range(3):
        mine = np.flatnonzero(res.replica == k)
        alone = simulate([work[i] for i in mine], scores[mine], "ltr", config)
        assert np.array_equal(alone.times.finish, res.times.finish[mine])


def test_sampling_the_gauges_does_not_change_the_run() -> None:
    work, scores = poisson_workload(400, rate=30.0, seed=5)
    config = SimConfig(max_inflight=8, batch_slots=8)
    plain = simulate_replicas(work, scores, "ltr", "least_waiting", 2, config)
    sampled = simulate_replicas(work, scores, "ltr", "least_waiting", 2, config, sample_every_s=1.0)
    assert np.array_equal(plain.times.finish, sampled.times.finish)
    assert len(sampled.samples) >= int(work[-1].arrival_s - work[0].arrival_s)
    assert max(s.remaining_tokens for s in sampled.samples) > 0
    assert sampled.samples[-1].remaining_tokens == 0  # sampled until the last request finished
    assert max(max(s.waiting) for s in sampled.samples) > 0  # 30 req/s on 2 x 8 slots: queues form
    assert all(s.arrived <= len(work) for s in sampled.samples)


def test_round_robin_takes_turns() -> None:
    reps = [replica() for _ in range(3)]
    router = RoundRobin()
    assert [router.choose(reps, newcomer(0.0)) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_random_is_seeded_and_reaches_every_replica() -> None:
    reps = [replica() for _ in range(4)]
    first, second = RandomRouter(7), RandomRouter(7)
    picks = [first.choose(reps, newcomer(0.0)) for _ in range(200)]
    assert picks == [second.choose(reps, newcomer(0.0)) for _ in range(200)]
    assert set(picks) == {0, 1, 2, 3}


def test_least_waiting_picks_the_shortest_queue_then_the_fewest_in_flight() -> None:
    reps = [replica() for _ in range(3)]
    pending(reps[0], 1.0, 2.0)
    pending(reps[2], 1.0)
    assert LeastWaiting().choose(reps, newcomer(0.0)) == 1
    pending(reps[1], 1.0, 2.0)
    assert LeastWaiting().choose(reps, newcomer(0.0)) == 2
    # equal queues: fewer requests in the engine wins
    a, b = replica(max_inflight=4, batch_slots=4), replica(max_inflight=4, batch_slots=4)
    pending(a, 1.0, 2.0)
    a.advance_to(0.05)  # both admitted into a's engine: nobody waits, two in flight
    assert (a.waiting, a.inflight, b.waiting, b.inflight) == (0, 2, 0, 0)
    assert LeastWaiting().choose([a, b], newcomer(0.0)) == 1


def test_ties_rotate_so_no_replica_is_favoured() -> None:
    reps = [replica() for _ in range(3)]
    router = LeastWaiting()
    assert [router.choose(reps, newcomer(0.0)) for _ in range(4)] == [0, 1, 2, 0]


def test_score_router_counts_only_the_requests_served_before() -> None:
    long_queue, short_queue = replica("ltr"), replica("ltr")
    pending(long_queue, 10.0, 11.0, 12.0)  # three waiting, all predicted longer than the newcomer
    pending(short_queue, 1.0)  # one waiting, predicted shorter
    reps = [long_queue, short_queue]
    assert ScoreAware().choose(reps, newcomer(5.0)) == 0  # nothing would be served before it there
    assert LeastWaiting().choose(reps, newcomer(5.0)) == 1
    assert ScoreAware().choose(reps, newcomer(20.0)) == 1  # longest of all: fewest ahead on the short queue


def test_score_router_is_least_waiting_under_fcfs() -> None:
    a, b = replica("fcfs"), replica("fcfs")
    pending(a, 10.0, 11.0, 12.0)
    pending(b, 1.0)
    assert a.served_before(newcomer(5.0)) == 3  # FCFS serves everyone already waiting first
    assert ScoreAware().choose([a, b], newcomer(5.0)) == LeastWaiting().choose([a, b], newcomer(5.0)) == 1


def test_ranked_queue_counts_match_a_brute_force_count() -> None:
    rng = np.random.default_rng(0)
    queue = RankedQueue(make_policy("ltr"), StarvationConfig(threshold=7, quantum=2))
    waiting: dict[str, float] = {}
    for i in range(500):
        op = rng.random()
        if op < 0.55 or not waiting:
            score = float(rng.integers(0, 20))  # ties on purpose
            queue.push(QueuedRequest(f"q{i}", score=score))
            waiting[f"q{i}"] = score
        elif op < 0.85:
            popped = queue.pop()
            assert popped is not None
            del waiting[popped.request_id]
        else:
            victim = str(rng.choice(list(waiting)))
            assert queue.remove(victim) is not None
            del waiting[victim]
        probe = float(rng.integers(-1, 21))
        assert queue.served_before(probe) == sum(1 for s in waiting.values() if s <= probe)


def test_requests_must_be_added_in_arrival_order() -> None:
    rep = replica()
    pending(rep, 1.0, arrival=2.0)
    with pytest.raises(ValueError, match="arrival order"):
        pending(rep, 1.0, arrival=1.0, first_id=5)


def test_unknown_router_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        make_router("nearest")
    with pytest.raises(ValueError):
        simulate_replicas(reqs([3]), [0.0], "ltr", "round_robin", 0, cfg())


def test_least_waiting_spreads_a_burst_evenly() -> None:
    res = simulate_replicas(reqs([5] * 12), np.arange(12.0), "fcfs", "least_waiting", 4, cfg())
    assert res.per_replica_requests(4).tolist() == [3, 3, 3, 3]


def test_predicted_backlog_follows_the_gauges_rule_and_least_backlog_picks_the_lightest() -> None:
    from simulator.replicas import LeastBacklog

    heavy, light = replica(), replica()
    heavy.add(sim_request(0, TraceRequest("a", 0.0, 4, 10, max_tokens=500), 1.0), expected_tokens=400.0)
    light.add(sim_request(1, TraceRequest("b", 0.0, 4, 10, max_tokens=500), 1.0), expected_tokens=20.0)
    light.add(sim_request(2, TraceRequest("c", 0.0, 4, 10, max_tokens=500), 1.0), expected_tokens=20.0)
    assert (heavy.predicted_backlog(), light.predicted_backlog()) == (400.0, 40.0)
    assert LeastWaiting().choose([heavy, light], newcomer(0.0)) == 0  # one waiting against two
    assert LeastBacklog().choose([heavy, light], newcomer(0.0)) == 1  # 400 predicted tokens against 40
    no_expectation = replica()
    no_expectation.add(sim_request(3, TraceRequest("d", 0.0, 4, 10, max_tokens=64), 1.0))
    assert no_expectation.predicted_backlog() == 64.0  # its max_tokens, as the scheduler without a calibration
    heavy.run()
    assert heavy.predicted_backlog() == 0.0  # finished requests leave it


def test_a_scaler_adds_replicas_after_the_start_delay_and_lets_them_go() -> None:
    work, scores = poisson_workload(600, rate=40.0, seed=3)
    config = SimConfig(max_inflight=8, batch_slots=8)
    asked: list[float] = []

    def scaler(sample) -> int:
        asked.append(sample.t)
        return 3 if sample.t < 8.0 else 1

    res = simulate_replicas(work, scores, "ltr", "least_backlog", 1, config, sample_every_s=1.0,
                            expected_tokens=[float(r.output_tokens) for r in work], scaler=scaler,
                            max_replicas=3, start_delay_s=2.5)
    first = work[0].arrival_s
    got = res.replica[np.argsort([r.arrival_s for r in work])]
    arrivals = np.sort([r.arrival_s for r in work])
    assert set(got[arrivals < first + 2.5]) == {0}  # the new replicas are not serving yet
    assert set(got[(arrivals > first + 3.0) & (arrivals < 8.0)]) == {0, 1, 2}
    assert set(got[arrivals > 9.0]) == {0}  # let go: no new requests
    assert np.all(np.isfinite(res.times.finish))  # they finished what they held
    assert [s.provisioned for s in res.samples][:2] == [1, 3] and res.samples[-1].provisioned == 1
    assert all(len(s.predicted_backlog) == len(s.waiting) for s in res.samples)
    with pytest.raises(ValueError, match="sample_every_s"):
        simulate_replicas(work, scores, "ltr", "least_waiting", 1, config, scaler=scaler)
