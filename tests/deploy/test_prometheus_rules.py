"""The rules as Prometheus sees them: `promtool check rules` on the generated file and `promtool test
rules` on tests/deploy/promtool (every alert fires when it should, the recorded quantiles and SLO
attainment are right); the committed files are what the module generates; every alert has a runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy import prometheus_rules as rules
from repo_paths import REPO_ROOT

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool: `make prometheus` installs it (make test does)")
UNIT_TESTS = Path(__file__).resolve().parent / "promtool" / "ltr-serving.rules_test.yml"


def test_the_committed_files_are_generated(tmp_path):
    rules.write(tmp_path)
    for path in (rules.RULES_FILE, rules.PROMETHEUS_RULE_FILE):
        assert path.read_text() == (tmp_path / path.name).read_text(), f"run `make dashboard` ({path.name})"


@needs_promtool
def test_promtool_checks_the_rules_file():
    result = subprocess.run([PROMTOOL, "check", "rules", str(rules.RULES_FILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules.RECORDINGS) + len(rules.ALERTS)} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass_and_cover_every_alert():
    result = subprocess.run([PROMTOOL, "test", "rules", str(UNIT_TESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert tested == {alert.name for alert in rules.ALERTS}


def test_every_alert_has_a_runbook_section_and_a_severity():
    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in text.splitlines() if line.startswith("#")}
    for alert in rules.ALERTS:
        assert alert.name.lower() in anchors, f"docs/operations.md has no section `### {alert.name}`"
        assert alert.severity in {"page", "ticket", "info"}
        assert alert.runbook_url.endswith("#" + alert.name.lower())

