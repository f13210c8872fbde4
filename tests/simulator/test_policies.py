"""The simulator's policy factory: the served policies plus MLFQ, with one error for all names."""

from __future__ import annotations

import pytest

from scheduler import PreemptivePolicy
from scheduler.policies import LearnedRank
from simulator.policies import MultiLevelFeedbackQueue, make_policy


def test_builds_served_and_simulator_only_policies():
    assert isinstance(make_policy("ltr"), LearnedRank)
    mlfq = make_policy("mlfq")
    assert isinstance(mlfq, MultiLevelFeedbackQueue) and isinstance(mlfq, PreemptivePolicy)
    assert not isinstance(make_policy("oracle"), PreemptivePolicy)


def test_unknown_name_lists_every_valid_one():
    with pytest.raises(ValueError, match="fcfs, guarded, ltr, mlfq, oracle"):
        make_policy("fastserve")
