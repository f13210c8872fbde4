"""`make help` is the newcomer's map: every target of the Makefile is in it with a rough duration, and
every port a deploy binds has a make variable (two deploys on one host must not collide)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from deploy.supervisor import DEFAULT_HEALTH_PORT
from repo_paths import REPO_ROOT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()
DURATION = re.compile(r"\((?:[^()]*\b(?:s|min|h|seconds|minutes|instant|LOAD_TIME)\b[^()]*)\)")


def targets() -> set[str]:
    """Rule names of the Makefile (not file targets, not variable assignments)."""
    names = re.findall(r"^([a-z][a-z0-9-]*):(?![=:])", MAKEFILE, re.M)
    return set(names)


@pytest.fixture(scope="module")
def help_text() -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


def test_every_target_is_in_make_help(help_text: str) -> None:
    listed = set(re.findall(r"make ([a-z][a-z0-9-]*)", help_text))
    assert len(targets()) > 30
    assert targets() - listed == set()


def test_every_listed_target_says_how_long_it_takes(help_text: str) -> None:
    entries = re.split(r"\n  make ", "\n" + help_text)[1:]  # a target's entry runs to the next one
    missing = [e.split()[0] for e in entries if not DURATION.search(e)]
    assert missing == []


def test_the_supervisor_port_is_a_make_variable() -> None:
    assert re.search(rf"^SUPERVISOR_PORT \?= {DEFAULT_HEALTH_PORT}$", MAKEFILE, re.M)
    assert "--health-port $(SUPERVISOR_PORT)" in MAKEFILE
