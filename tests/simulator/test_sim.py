"""The simulator on tiny hand-made workloads: order effects, metrics, preemption, tau."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from deploy.repository import served_max_inflight, source_parameters
from simulator.policies import MultiLevelFeedbackQueue, make_policy
from simulator.sim import SimConfig, Simulation, simulate
from workloads.metrics import summarize
from workloads.traces import TraceRequest


@dataclass(frozen=True)
class FixedCost:
    """Every iteration takes `step` seconds (prefill included): easy to compute by hand."""

    step: float = 0.1

    def step_s(self, prefill_tokens, decode_seqs, context_tokens):  # noqa: ANN001, ANN201
        return self.step

    def swap_s(self, tokens: int) -> float:
        return 0.0

    def kv_budget_tokens(self) -> int:
        return 1_000_000


def reqs(lengths: list[int], arrivals: list[float] | None = None, prompt: int = 4) -> list[TraceRequest]:
    arrivals = arrivals or [0.0] * len(lengths)
    return [TraceRequest(f"r{i}", a, prompt, n) for i, (a, n) in enumerate(zip(arrivals, lengths))]


def cfg(**kw: object) -> SimConfig:
    base = dict(max_inflight=1, batch_slots=1, cost_model=FixedCost(), starvation_threshold=0, starvation_quantum=0)
    base.update(kw)
    return SimConfig(**base)  # type: ignore[arg-type]


def test_metrics_hand_computed() -> None:
    # One request of 5 tokens alone: tokens at 0.1 ... 0.5.
    res = simulate(reqs([5]), [0.0], "fcfs", cfg())
    s = summarize(res.times)
    assert s["mean_latency_s"] == pytest.approx(0.5)
    assert s["mean_ttft_s"] == pytest.approx(0.1)
    assert s["mean_tpot_s"] == pytest.approx(0.1)
    assert s["mean_latency_per_token_s"] == pytest.approx(0.1)
    assert s["max_waiting_time_s"] == pytest.approx(0.1)
    assert s["throughput_tok_s"] == pytest.approx(10.0)


def test_policy_order_one_slot() -> None:
    lengths = [30, 10, 20]
    w = reqs(lengths)
    fcfs = simulate(w, [0, 0, 0], "fcfs", cfg()).times.finish
    sjf = simulate(w, lengths, "oracle", cfg()).times.finish
    ltr = simulate(w, [0.9, 0.1, 0.5], "ltr", cfg()).times.finish
    assert list(np.argsort(fcfs)) == [0, 1, 2]
    assert list(np.argsort(sjf)) == [1, 2, 0]
    assert list(np.argsort(ltr)) == [1, 2, 0]
    # Shortest-first: total latency 1+3+6 = 10 vs FCFS 3+4+6 = 13 (in seconds, 0.1 s per token).
    assert sjf.sum() == pytest.approx(1.0 + 3.0 + 6.0)
    assert fcfs.sum() == pytest.approx(3.0 + 4.0 + 6.0)


def test_no_queueing_no_difference() -> None:
    w = reqs([5, 50, 7], arrivals=[0.0, 10.0, 20.0])
    a = summarize(simulate(w, [0, 0, 0], "fcfs", cfg()).times)
    b = summarize(simulate(w, [5, 50, 7], "oracle", cfg()).times)
    assert a["mean_latency_s"] == pytest.approx(b["mean_latency_s"])


def test_kv_preemption_when_memory_runs_out() -> None:
    w = reqs([40, 40, 40], prompt=10)
    c = cfg(max_inflight=3, batch_slots=3, kv_budget_tokens=100, kv_policy="max_utilization")
    res = simulate(w, [40, 40, 40], "oracle", c)
    assert res.preemptions > 0
    assert np.all(np.isfinite(res.times.finish))
    # Without the memory limit nothing is preempted.
    assert simulate(w, [40, 40, 40], "oracle", cfg(max_inflight=3, batch_slots=3)).preemptions == 0


def test_starvation_prevention_bounds_wait_of_long_request() -> None:
    # One long request at t=0 behind a stream of short ones: without promotion it waits for all.
    lengths = [50] + [2] * 40
    arrivals = [0.0] + [0.01 * i for i in range(1, 41)]
    w = reqs(lengths, arrivals)
    scores = lengths
    # r0 arrives first and a free slot takes it immediately; give it a second long sibling.
    w = [TraceRequest("long0", 0.0, 4, 2)] + [TraceRequest("long", 0.0, 4, 50)] + w[1:]
    scores = [2, 50] + scores[1:]
    off = simulate(w, scores, "oracle", cfg()).times
    on = simulate(w, scores, "oracle", cfg(starvation_threshold=5)).times
    assert on.ttft[1] < off.ttft[1]


def test_mlfq_levels_and_preemption() -> None:
    m = MultiLevelFeedbackQueue(base_quantum=4)
    assert [m.level(a) for a in (0, 3, 4, 11, 12)] == [0, 0, 1, 1, 2]
    assert m.at_boundary(4) and m.at_boundary(12) and not m.at_boundary(5)
    w = reqs([100, 3], arrivals=[0.0, 0.05])
    res = simulate(w, [0, 0], "mlfq", cfg())
    assert res.preemptions >= 1
    assert res.times.finish[1] < res.times.finish[0]


def test_paper_style_promotion_is_demoted_after_quantum() -> None:
    # A long request promoted by starvation prevention runs `quantum` steps, then yields the slot
    # back to shorter waiting requests (served semantics: it would run to completion instead).
    lengths = [2, 60] + [2] * 30
    arrivals = [0.0, 0.0] + [0.05 * i for i in range(1, 31)]
    w = reqs(lengths, arrivals)
    served = simulate(w, lengths, "oracle", cfg(starvation_threshold=3, starvation_quantum=5))
    paper = simulate(w, lengths, "oracle", cfg(starvation_threshold=3, starvation_quantum=5,
                                                demote_after_quantum=True))
    assert served.preemptions == 0 and paper.preemptions > 0
    assert paper.times.ttft[1] <= served.times.ttft[1]
    assert paper.times.finish[1] > served.times.finish[1]


def test_defaults_are_the_shipped_configs() -> None:
    scheduler, engine = source_parameters("ltr_scheduler"), source_parameters("tensorrt_llm")
    served = SimConfig()
    assert scheduler["max_inflight"] == "auto" and served.max_inflight == served_max_inflight() == 64
    assert served.batch_slots == int(engine["max_batch_slots"])
    assert (served.starvation_threshold, served.starvation_quantum) == (
        int(scheduler["starvation_threshold"]), int(scheduler["starvation_quantum"]))


@pytest.mark.parametrize("policy, config", [
    ("oracle", cfg(max_inflight=3, batch_slots=3, kv_budget_tokens=100, kv_policy="max_utilization")),
    ("oracle", cfg(max_inflight=2, batch_slots=2, starvation_threshold=2, starvation_quantum=3,
                   demote_after_quantum=True)),
    ("mlfq", cfg(max_inflight=2, batch_slots=2)),
])
def test_every_preemption_gives_its_slot_back_and_is_admitted_again(policy: str, config: SimConfig) -> None:
    lengths = [40, 3, 40, 5, 30, 2, 40, 4]
    sim = Simulation(reqs(lengths, [0.02 * i for i in range(8)], prompt=10), lengths, make_policy(policy), config)
    sim.run()
    assert sim.preemptions > 0
    assert sim.admission.inflight == 0 and len(sim.queue) == 0 and sim.engine.idle
    assert sim.admission.admitted_total == len(lengths) + sim.preemptions
    assert [r.engine.generated for r in sim.requests] == lengths  # resumed, none lost


def test_capacity_counts_the_busy_part_of_a_burst() -> None:
    from simulator.sweep import measure_capacity

    # 200 equal requests, 10 slots: while the queue lasts, 10 requests finish every 20 steps
    burst = [TraceRequest(f"r{i}", 0.0, 8, 20) for i in range(200)]
    cfg = SimConfig(max_inflight=10, batch_slots=10)
    step = simulate(burst, np.zeros(200), "fcfs", cfg).times
    per_wave = step.finish.max() / 20  # 20 waves of 10
    assert measure_capacity(burst, cfg) == pytest.approx(10 / per_wave, rel=0.1)


def test_generic_cap_answers_end_at_their_natural_length_and_only_the_oracle_knows_it() -> None:
    """One max_tokens for all: answers still end at their own lengths (plus one end-token step each,
    not counted as a token), fcfs keeps arrival order, the oracle ranks by the true length."""
    from dataclasses import replace

    w = [replace(r, max_tokens=50) for r in reqs([9, 2, 5])]
    fcfs = simulate(w, np.zeros(3), "fcfs", cfg())
    assert fcfs.times.output_tokens.tolist() == [9, 2, 5]
    assert fcfs.steps == 9 + 2 + 5 + 3, "each answer takes one more step for its end token"
    assert np.argsort(fcfs.times.finish).tolist() == [0, 1, 2]
    oracle = simulate(w, np.zeros(3), "oracle", cfg())
    assert np.argsort(oracle.times.finish).tolist() == [1, 2, 0]
    capped = simulate([replace(r, max_tokens=4) for r in reqs([9, 2])], np.zeros(2), "fcfs", cfg())
    assert capped.times.output_tokens.tolist() == [4, 2] and capped.steps == 4 + 2 + 1


def test_guarded_policy_steps_aside_with_random_scores_and_ranks_with_good_ones() -> None:
    """The guard learns from the simulator's finished requests, as the served scheduler's does."""
    from scheduler import Guarded, GuardedConfig
    from scheduler.guard import GuardConfig

    rng = np.random.default_rng(0)
    lengths = list(rng.integers(1, 60, size=400))
    # a generic cap above every answer: answers end on their own ("stop"), uncensored
    w = [replace(r, max_tokens=100) for r in reqs(lengths, arrivals=list(np.sort(rng.uniform(0, 120, size=400))))]
    c = cfg(max_inflight=2, batch_slots=2)
    fcfs = simulate(w, np.zeros(400), "fcfs", c).times
    guard = GuardConfig(floor=0.1, window=100, min_samples=30, every=5)
    blind = Guarded(GuardedConfig(short_quantile=1.0, guard=guard))
    random_scores = simulate(w, rng.standard_normal(400), blind, c).times
    np.testing.assert_allclose(random_scores.finish, fcfs.finish)  # arrival order, exactly
    assert not blind.guard.trusted and blind.distrusted_total > 0
    seeing = Guarded(GuardedConfig(short_quantile=1.0, guard=guard))
    ranked = simulate(w, np.array(lengths, dtype=float), seeing, c).times
    assert seeing.guard.trusted and seeing.guard.tau > 0.9
    assert summarize(ranked)["mean_latency_s"] < summarize(fcfs)["mean_latency_s"]
