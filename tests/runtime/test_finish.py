"""The one rule that infers a finished answer's reason from its token count."""

from __future__ import annotations

from runtime.finish import finish_reason


def test_finish_reason_at_the_cap_boundary():
    assert [finish_reason(n, 5) for n in (4, 5, 6)] == ["stop", "length", "length"]
