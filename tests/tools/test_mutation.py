"""tools/mutation.py, the `make mutate` report: which mutants are in scope, how mutmut's listing and
diffs are read, the figures written, and that a run which checked nothing fails loudly (mutmut itself
is replaced by a script here; the real run is `make mutate`, not a test)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from repo_paths import REPO_ROOT

spec = importlib.util.spec_from_file_location("mutation", REPO_ROOT / "tools" / "mutation.py")
mutation = importlib.util.module_from_spec(spec)
sys.modules["mutation"] = mutation  # dataclasses look their module up there
spec.loader.exec_module(mutation)

LISTING = """
    scheduler.queue.xǁRequestQueueǁpop__mutmut_4: survived
    scheduler.queue.xǁRequestQueueǁpop__mutmut_5: killed
    runtime.relay.xǁRelayǁserve__mutmut_3: timeout
    engine.settings.x_parse_request__mutmut_12: killed
    engine.settings.xǁEngineSettingsǁfrom_parameters__mutmut_1: survived
    runtime.preprocess.x_word_list__mutmut_2: no tests
    runtime.length_predictor.x_load__mutmut_1: survived
    deploy.supervisor.x_dead_models__mutmut_2: killed
    deploy.supervisor.xǁSupervisorǁrun__mutmut_1: survived
"""

DIFF = """# runtime.relay.xǁRelayǁserve__mutmut_3: survived
--- runtime/relay.py
+++ runtime/relay.py
@@ -1,6 +1,6 @@
 async def serve(self, job: LLMJob, sink: ResponseSink) -> None:
-        job.request_id,   score=job.score,
+        job.request_id, score=None,
"""


def test_only_the_scoped_mutants_are_read():
    mutants = mutation.parse_results(LISTING)
    assert [m.name.rsplit("__", 1)[0] for m in mutants] == [
        "scheduler.queue.xǁRequestQueueǁpop", "scheduler.queue.xǁRequestQueueǁpop", "runtime.relay.xǁRelayǁserve",
        "engine.settings.x_parse_request", "runtime.preprocess.x_word_list", "deploy.supervisor.x_dead_models",
    ]
    assert [m.function for m in mutants[2:4]] == ["runtime.relay.Relay.serve", "engine.settings.parse_request"]
    assert mutation.Mutant("a.x_xenon__mutmut_1", "killed").function == "a.xenon"


def test_diff_lines_are_read_whitespace_collapsed():
    assert mutation.changed_lines(DIFF) == ("job.request_id, score=job.score,", "job.request_id, score=None,")


def test_summary_counts_timeouts_as_caught_and_equivalents_apart():
    mutants = mutation.parse_results(LISTING)
    survivors = [
        mutation.Survivor("scheduler.queue.xǁRequestQueueǁpop__mutmut_4", "scheduler.queue.RequestQueue.pop",
                          "a", "b", "same behaviour"),
    ]
    summary = mutation.summarize(mutants, survivors, seconds=12.3, workers=2)
    assert (summary["total"], summary["killed"], summary["timeouts"], summary["equivalent"]) == (6, 4, 1, 1)
    assert summary["score"] == 0.6667 and summary["score_without_equivalent"] == 0.8
    assert summary["other"] == {"runtime.preprocess.x_word_list__mutmut_2": "no tests"}  # a verdict: not killed
    assert summary["not_checked"] == 0
    assert summary["by_module"]["scheduler"] == {"total": 2, "killed": 1, "equivalent": 1, "survived": 1,
                                                 "other": 0, "score_without_equivalent": 1.0}
    assert summary["by_module"]["deploy.supervisor decisions"]["killed"] == 1
    assert summary["by_module"]["runtime.preprocess"]["score_without_equivalent"] == 0.0
    assert set(summary) >= {"modules", "total", "killed", "survived", "not_checked", "by_module"}
    text = mutation.markdown(summary)
    assert "**4 of 6**" in text and "equivalent: same behaviour" in text
    assert mutation.below(summary, 0.9) == ["runtime.preprocess 0.0%"]


def test_equivalent_mutants_are_known_by_what_they_change():
    why = mutation.equivalent_because
    assert why("runtime.relay.Relay.serve", 'log.exception("XXrequest %s failedXX", job.request_id)')
    assert why("runtime.detokenize.chunk_text", 'after = all_bytes.decode(errors="replace") if final else x')
    assert why("runtime.detokenize.incomplete_tail_len", "elif byte >= 193:")
    assert why("runtime.detokenize.incomplete_tail_len", "elif byte >= 225:") is None  # 0xE0 is a real lead byte
    assert why("runtime.relay.Relay.serve", "job.request_id, score=None, max_tokens=job.max_tokens,") is None



FAKE_MUTMUT = """#!/bin/sh
# stands in for mutmut: `run` prints what the fixture says and exits with its status; `results` lists
case "$1" in
  run) cat "$(dirname "$0")/run.out"; exit "$(cat "$(dirname "$0")/run.status")" ;;
  results) cat "$(dirname "$0")/results.out" ;;
  show) printf -- '--- a\\n+++ b\\n-x = 1\\n+x = 2\\n' ;;
esac
"""


@pytest.fixture
def fake_mutmut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repository root in tmp_path with a fake mutmut; returns a function that sets what it does."""
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "mutants").mkdir()
    tool = tmp_path / "bin" / "mutmut"
    tool.parent.mkdir()
    tool.write_text(FAKE_MUTMUT)
    tool.chmod(0o755)
    monkeypatch.setattr(mutation, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(mutation, "_mutmut", lambda: str(tool))

    def plant(run_out: str, status: int, results: str) -> Path:
        (tool.parent / "run.out").write_text(run_out)
        (tool.parent / "run.status").write_text(str(status))
        (tool.parent / "results.out").write_text(results)
        return tmp_path

    return plant


def test_a_failing_baseline_fails_the_run_and_names_the_cause(fake_mutmut, capsys):
    # what a fresh clone once did: a test imported a package not copied into mutants/, every mutant
    # stayed "not checked", and `make mutate` said 0 killed, complete, exit 0
    root = fake_mutmut(
        "\u280b Running stats\nE   ModuleNotFoundError: No module named 'deploy.repository'\n"
        "FAILED tests/deploy/test_supervisor.py::test_expected_stubs\nfailed to collect stats. runner returned 1\n",
        1, "    runtime.drain.x_drain__mutmut_1: not checked\n    runtime.drain.x_drain__mutmut_2: not checked\n")
    assert mutation.main(["--out", str(root / "results"), "--module", "runtime.drain"]) == 1
    err = capsys.readouterr().err
    assert "mutmut run failed with exit status 1" in err and "No module named 'deploy.repository'" in err
    assert "failed to collect stats" in err and "2 of 2 mutants in scope got no verdict" in err
    written = json.loads((root / "results" / "mutation.json").read_text())
    assert written["complete"] is False and written["not_checked"] == 2 and written["problems"]
    assert "NOT COMPLETE" in (root / "results" / "mutation.md").read_text()


def test_an_unchecked_mutant_fails_a_run_that_exited_cleanly(fake_mutmut, capsys):
    root = fake_mutmut("", 0, "    runtime.drain.x_drain__mutmut_1: killed\n"
                              "    runtime.drain.x_drain__mutmut_2: not checked\n")
    assert mutation.main(["--out", str(root / "results"), "--module", "runtime.drain"]) == 1
    assert "1 of 2 mutants in scope got no verdict" in capsys.readouterr().err
    assert json.loads((root / "results" / "mutation.json").read_text())["complete"] is False


def test_no_mutant_in_scope_is_a_failure_too(fake_mutmut, capsys):
    root = fake_mutmut("", 0, "")
    assert mutation.main(["--out", str(root / "results"), "--module", "runtime.drain"]) == 1
    assert "no mutant in scope" in capsys.readouterr().err


def test_every_verdict_in_and_each_module_at_its_score_is_complete_and_passes(fake_mutmut, capsys):
    root = fake_mutmut("", 0, "    runtime.drain.x_drain__mutmut_1: killed\n"
                              "    runtime.drain.x_drain__mutmut_2: timeout\n"
                              "    runtime.drain.x_drain__mutmut_3: survived\n")
    out = str(root / "results")
    assert mutation.main(["--out", out, "--module", "runtime.drain", "--min-score", "0.6"]) == 0
    written = json.loads((root / "results" / "mutation.json").read_text())
    assert written["complete"] is True and written["not_checked"] == 0 and written["problems"] == []
    assert written["by_module"]["runtime.drain"]["score_without_equivalent"] == 0.6667
    assert "load_average" in written
    assert mutation.main(["--out", out, "--module", "runtime.drain", "--min-score", "0.9"]) == 1  # below
    assert "below 90.0%" in capsys.readouterr().err
