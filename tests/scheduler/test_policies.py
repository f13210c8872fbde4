"""Policies: the sort keys, the factory and its error, the preemptive interface."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler import POLICY_NAMES, Guarded, GuardedConfig, PreemptivePolicy, QueuedRequest, make_policy


class EveryTenTokens:
    name = "every10"

    def key(self, request: QueuedRequest) -> float:
        return float(request.attained // 10)

    def at_boundary(self, attained: int) -> bool:
        return attained > 0 and attained % 10 == 0


def test_served_policies_rank_by_what_they_say():
    request = QueuedRequest("r", score=0.25, max_tokens=100, attained=40)
    assert [make_policy(name).key(request) for name in POLICY_NAMES] == [0.0, 0.25, 60.0, 0.25]


def test_unknown_policy_names_every_valid_one_extras_included():
    with pytest.raises(ValueError, match="every10, fcfs, guarded, ltr, oracle"):
        make_policy("sjf-typo", extra={"every10": EveryTenTokens})
    with pytest.raises(ValueError, match="fcfs, guarded, ltr, oracle$"):
        make_policy("every10")  # extras exist only where they are passed


def test_extra_policies_are_built_and_known_as_preemptive_by_their_interface():
    policy = make_policy("every10", extra={"every10": EveryTenTokens})
    assert isinstance(policy, EveryTenTokens) and isinstance(policy, PreemptivePolicy)
    assert not any(isinstance(make_policy(name), PreemptivePolicy) for name in POLICY_NAMES)


def test_only_the_oracle_reads_the_expected_length():
    """Benchmarks send the true length as `expected_len`; fcfs and ltr must rank as if it were absent."""
    short_cap_long_answer = QueuedRequest("a", score=2.0, max_tokens=100, expected_len=900)
    long_cap_short_answer = QueuedRequest("b", score=1.0, max_tokens=4096, expected_len=10)
    oracle, ltr, fcfs = make_policy("oracle"), make_policy("ltr"), make_policy("fcfs")
    assert oracle.key(long_cap_short_answer) < oracle.key(short_cap_long_answer)
    for policy in (ltr, fcfs):
        for req in (short_cap_long_answer, long_cap_short_answer):
            assert policy.key(req) == policy.key(replace(req, expected_len=None))
    # without a known length the oracle falls back to the cap, minus what was generated
    assert oracle.key(QueuedRequest("c", max_tokens=50, attained=20)) == 30.0


def guarded(**kw: object) -> Guarded:
    from scheduler.guard import GuardConfig

    return Guarded(GuardedConfig(guard=GuardConfig(floor=0.0), **kw))  # type: ignore[arg-type]


def test_guarded_lets_only_predicted_short_requests_overtake():
    policy = guarded(short_quantile=0.5)
    for score in range(10):  # what recent scores look like
        policy.key(QueuedRequest(f"w{score}", score=float(score)))
    assert policy.key(QueuedRequest("short", score=1.0)) == 1.0
    assert policy.key(QueuedRequest("long", score=8.0)) == float("inf")  # waits in arrival order


def test_guarded_hands_the_slot_to_the_oldest_after_its_ttft_budget_or_when_distrusting():
    policy = guarded(age_factor=2.0, ttft_target_s=1.0)
    oldest = QueuedRequest("old", arrival=10.0)
    assert not policy.prefer_oldest(oldest, now=11.9)
    assert policy.prefer_oldest(oldest, now=12.0) and policy.aged_total == 1
    own = QueuedRequest("own", arrival=10.0, ttft_target_s=5.0)  # a client's own, looser target
    assert not policy.prefer_oldest(own, now=12.0)
    distrusting = Guarded()  # the default guard distrusts until it has seen the ranking work
    assert distrusting.prefer_oldest(QueuedRequest("x", arrival=0.0), now=0.0)


def test_guarded_budget_caps_the_work_of_requests_that_overtook():
    policy = guarded(overtake_share=0.25)
    oldest = QueuedRequest("old")
    for i in range(3):
        policy.finished(QueuedRequest(f"f{i}"), 100, "stop")
    jumped = QueuedRequest("j")
    policy.admitted(jumped, overtook=True)
    policy.finished(jumped, 100, "stop")  # 100 of 400 tokens went to an overtaker: at the cap
    assert not policy.prefer_oldest(oldest, now=None)
    jumped2 = QueuedRequest("j2")
    policy.admitted(jumped2, overtook=True)
    policy.finished(jumped2, 10, "stop")
    assert policy.prefer_oldest(oldest, now=None) and policy.budget_total == 1
    assert policy.overtaken_share == pytest.approx(110 / 410)


def test_guarded_settings_come_from_config_parameters():
    policy = make_policy("guarded", params={"slo_ttft_s": "3", "guarded_short_quantile": "0.4",
                                            "guard_tau_floor": "0.15", "guard_window": "300"})
    assert isinstance(policy, Guarded)
    assert policy.config.ttft_target_s == 3.0 and policy.config.short_quantile == 0.4
    assert policy.config.guard.floor == 0.15 and policy.config.guard.window == 300
    with pytest.raises(ValueError):
        GuardedConfig(short_quantile=1.5)


def test_guarded_decides_a_requests_key_once():
    policy = guarded(short_quantile=0.5)
    for score in range(10):
        policy.key(QueuedRequest(f"w{score}", score=float(score)))
    long = QueuedRequest("long", score=8.0)
    assert policy.key(long) == float("inf")
    for _ in range(20):  # a flood of longer scores would make it "short" if it were ranked again
        policy.key(QueuedRequest("x", score=100.0))
    assert policy.key(long) == float("inf")
