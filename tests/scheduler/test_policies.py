"""Policies: the sort keys, the factory and its error, the preemptive interface."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler import POLICY_NAMES, PreemptivePolicy, QueuedRequest, make_policy


class EveryTenTokens:
    name = "every10"

    def key(self, request: QueuedRequest) -> float:
        return float(request.attained // 10)

    def at_boundary(self, attained: int) -> bool:
        return attained > 0 and attained % 10 == 0


def test_served_policies_rank_by_what_they_say():
    request = QueuedRequest("r", score=0.25, max_tokens=100, attained=40)
    assert [make_policy(name).key(request) for name in POLICY_NAMES] == [0.0, 0.25, 60.0]


def test_unknown_policy_names_every_valid_one_extras_included():
    with pytest.raises(ValueError, match="every10, fcfs, ltr, oracle"):
        make_policy("sjf-typo", extra={"every10": EveryTenTokens})
    with pytest.raises(ValueError, match="fcfs, ltr, oracle$"):
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
