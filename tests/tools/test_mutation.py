"""tools/mutation.py, the `make mutate` report: which mutants are in scope, how mutmut's listing and
diffs are read, and the figures written (the mutmut run itself is `make mutate`, not a test)."""

from __future__ import annotations

import importlib.util
import sys

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
    runtime.llm_stream.x_merged_chunks__mutmut_1: survived
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
        "engine.settings.x_parse_request", "runtime.preprocess.x_word_list",
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
    assert (summary["total"], summary["killed"], summary["timeouts"], summary["equivalent"]) == (5, 3, 1, 1)
    assert summary["score"] == 0.6 and summary["score_without_equivalent"] == 0.75
    assert summary["other"] == {"runtime.preprocess.x_word_list__mutmut_2": "no tests"}
    assert summary["by_module"]["scheduler"] == {"total": 2, "killed": 1, "survived": 1}
    assert set(summary) >= {"modules", "total", "killed", "survived"}
    text = mutation.markdown(summary)
    assert "**3 of 5**" in text and "equivalent: same behaviour" in text


def test_equivalent_mutants_are_known_by_what_they_change():
    why = mutation.equivalent_because
    assert why("runtime.relay.Relay.serve", 'log.exception("XXrequest %s failedXX", job.request_id)')
    assert why("runtime.detokenize.chunk_text", 'after = all_bytes.decode(errors="replace") if final else x')
    assert why("runtime.detokenize.incomplete_tail_len", "elif byte >= 193:")
    assert why("runtime.detokenize.incomplete_tail_len", "elif byte >= 225:") is None  # 0xE0 is a real lead byte
    assert why("runtime.relay.Relay.serve", "job.request_id, score=None, max_tokens=job.max_tokens,") is None

