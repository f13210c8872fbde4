"""Test suite layout: tests/<package>/test_<module>.py mirror the code; tests/server/ holds the
tests that start a real tritonserver, marked `server` here so that `make test-unit` can leave them out."""

from __future__ import annotations

from pathlib import Path

import pytest

SERVER_TESTS = Path(__file__).resolve().parent / "server"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).is_relative_to(SERVER_TESTS):
            item.add_marker(pytest.mark.server)
