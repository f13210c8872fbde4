"""The door's bounds must be positive: a zero would refuse everything, a negative nothing."""

from __future__ import annotations

import pytest

from door.limits import DoorLimits


def test_defaults_fit_a_full_prompt_and_not_the_crash_payload():
    limits = DoorLimits()
    assert 64 * 1024 <= limits.max_body_bytes < 3_600_000


@pytest.mark.parametrize("field", ["max_body_bytes", "max_chunks", "max_headers"])
def test_non_positive_bounds_fail(field):
    with pytest.raises(ValueError, match=field):
        DoorLimits(**{field: 0})
