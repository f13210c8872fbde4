"""`make mutate`: mutation testing of the code whose bugs a green `make test` must not hide.

mutmut (pinned in requirements.txt, configured in pyproject.toml `[tool.mutmut]`) plants small bugs,
one at a time, in the request path (MODULES below: the scheduler, the `ltr_bls` entry, the relay, the
LLM stream, request checks, detokenization, the request log, the drain signal, the OpenAI front's
protocol), the supervisor's decisions and the goodput metrics, and runs against each the fast tests
that call the mutated function (the mirrored test files listed in pyproject.toml). A mutant is killed
when a test fails (or hangs: a timeout counts as caught, as `make test`'s per-test limit would catch it).

Writes results/mutation.json ({"total", "killed", "not_checked", "complete", "by_module", ...}) and
results/mutation.md. It fails (exit 1, the cause on stderr, `complete: false` in the results) when
mutmut's run fails (its baseline is the usual culprit: a test that imports a package not copied into
mutants/), stops at the time limit, leaves a mutant in scope without a verdict, finds no mutants, or
when a module kills under --min-score (90%) of its non-equivalent mutants: a run that checked
nothing is a failure, never "0 killed, complete".

A surviving mutant is either a missing test (write it) or equivalent (the program behaves the same):
equivalent ones are listed in EQUIVALENT below with the reason, keyed by function and mutated line so
that renumbering does not lose them. A benchmark-style command, not part of CI:

    python tools/mutation.py --workers 2 --timeout-min 20
    python tools/mutation.py --module runtime.drain --out build/mutation   (one module, while writing tests)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from repo_paths import REPO_ROOT

# What is mutated, by module: mutmut's mutant-name globs (module.x_function__mutmut_N,
# module.xǁClassǁmethod__mutmut_N). The files are listed in pyproject.toml [tool.mutmut] only_mutate.
MODULES: dict[str, tuple[str, ...]] = {
    "scheduler": ("scheduler.*",),
    "runtime.relay": ("runtime.relay.*",),
    "runtime.finish": ("runtime.finish.*",),
    "runtime.preprocess": ("runtime.preprocess.*",),
    "engine.settings.parse_request": ("engine.settings.x_parse_request__mutmut_*",),
    "runtime.detokenize": ("runtime.detokenize.*",),
    # the ltr_bls entry
    "runtime.bls_entry": ("runtime.bls_entry.*",),
    "runtime.entry_decision": ("runtime.entry_decision.*",),
    "runtime.scheduler_stream": ("runtime.scheduler_stream.*",),
    "runtime.stub_watch": ("runtime.stub_watch.*",),
    "runtime.entry_seams": ("runtime.entry_seams.*",),
    "runtime.llm_stream": ("runtime.llm_stream.*",),
    "runtime.predictor_fallback": ("runtime.predictor_fallback.*",),
    "runtime.request_log": ("runtime.request_log.*",),
    "runtime.drain": ("runtime.drain.*",),
    "openai_server.errors": ("openai_server.errors.*",),
    "openai_server.protocol": ("openai_server.protocol.*",),
    "openai_server.stop_strings": ("openai_server.stop_strings.*",),
    "openai_server.chat_template": ("openai_server.chat_template.*",),
    # what is dead, when to reload, when to restart (the process handling around them is not in scope)
    "deploy.supervisor decisions": tuple(f"deploy.supervisor.x_{f}__mutmut_*" for f in
                                         ("dead_models", "pipeline_hung", "recovery_for", "restart_due")),
    "workloads.goodput": ("workloads.goodput.*",),
    "workloads.metrics": ("workloads.metrics.*",),
}
CAUGHT = {"killed", "timeout"}
# Statuses that are no verdict: the mutant was never run to the end.
UNCHECKED = {"not checked", "check was interrupted by user", "skipped"}

# Mutants the program cannot tell from the original: (function glob, regex on the mutated line, why).
# Matched by what the mutant does, not by mutmut's number, which shifts when a function changes.
EQUIVALENT: list[tuple[str, str, str]] = [
    ("*", r"^log\.(exception|error|warning|info|debug)\(",
     "only the text of a log line changes: no caller, client or metric reads it"),
    ("*", r"\.decode\((errors=|\"UTF-8\")",
     "Python decodes bytes as UTF-8 by default, and codec names are case-insensitive"),
    ("*", r"\.reshape\(-2\)", "numpy (1.26) takes any negative size as 'the rest', like -1"),
    ("runtime.detokenize.incomplete_tail_len", r"min\(5, len\(data\)\)",
     "a fifth byte back follows four continuation bytes, more than any lead byte needs: 0 either way"),
    ("runtime.detokenize.incomplete_tail_len", r"^elif byte (> 0b1100_0000|>= 193):",
     "only 0xC0 and 0xC1 are told apart, bytes never valid in UTF-8: held back one chunk or not, "
     "the client gets the same U+FFFD"),
    ("engine.settings.parse_request", r'first_value\(tensors\.get\("input_lengths"\),( None)?\s*\)',
     "the next line's `is not None` fallback gives ids.size as well"),
    ("engine.settings.parse_request", r"int\(length\) if \(length is not None\) or True|else int\(None\)",
     "length is never None there: first_value's default is ids.size"),
    ("engine.settings.parse_request", r'first_value\(tensors\.get\("beam_width"\),( None)?\s*\)',
     "an absent beam_width passes `beam is not None and ...` as the default 1 does"),
    ("runtime.relay.Relay._generate", r"raise RequestCancelled\(None\)",
     "the relay's handler does not read the exception's argument"),
    ("runtime.relay.Relay.serve", r"^arrival=None,$|^\)$",
     "no served policy or queue reads QueuedRequest.arrival (the simulator sets its own)"),
    ("engine.settings.parse_request",
     r'first_value\(tensors\.get\("(random_seed|runtime_top_k|runtime_top_p|temperature|streaming)"\),( None)?\s*\)',
     "the default is applied again where the value is used (`x if x is not None else default`, "
     "`top_k or 0`, bool(None) is False)"),
    ("openai_server.stop_strings.StopStringMatcher._partial_suffix", r"default=1\)",
     "without stop strings the range is empty for a longest of 0 or 1 alike: nothing is held back"),
    ("runtime.entry_seams.SchedulerReply.from_tensors", r"bool\(first_value\(tensor\(Scheduler\.IS_FINAL\), (None)?\)\)",
     "bool(None) is False, the default it replaces"),
    ("*", r"^self\.(_seen|failing) = None$", "only ever read as a truth value, and None is false like False"),
    ("runtime.drain.begin_drain", r'path\.with_name\(path\.name \+ "(XX\.tmpXX|\.TMP)"\)',
     "only the temporary file's name changes: it is renamed over the signal file at once"),
    ("*", r'float\("(-INF|NAN)"\)', "float() reads infinity and nan case-insensitively"),
    ("runtime.request_log.LogSettings.from_parameters", r'params\.get\("request_log_prompts", "TRUE"\)\.strip\(\)\.lower\(\)',
     "the default is lower-cased before it is compared"),
    ("runtime.entry_seams.SchedulerReply.from_tensors", r"finish = finish\.reshape\(\+1\)\[0\]",
     "the finish tensor holds one value (runtime.contracts): reshape(1) and reshape(-1) agree"),
    ("runtime.drain.DrainSignal.__init__", r"self\._deadline: float \| None = \"\"",
     "never read as set: the first call reads the file (any time is past a check at -inf)"),
    ("openai_server.stop_strings.StopStringMatcher.feed", r'^self\._held = (None|"XXXX")$',
     "after a stop string nothing is read from what is held: feed and flush return \"\" once stopped"),
    ("openai_server.stop_strings.StopStringMatcher.feed", r'if \(hold\) or True else ""',
     "with hold 0 the slice buffer[len(buffer):] is \"\" as well"),
    ("openai_server.stop_strings.StopStringMatcher.flush", r'if \(self\.stopped\) and False else held',
     "once stopped, feed has emptied what is held: held is \"\" either way"),
    ("openai_server.stop_strings.StopStringMatcher._partial_suffix", r"longest \+ 1\), 0, -1\)",
     "a tail as long as a stop string that begins it is that stop string, already found by feed: no "
     "longer tail can match"),
    ("runtime.relay.Relay.serve", r"self\._shutdown_due\(admitted=None\):",
     "reached only when the caller did not end the request, so _shutdown_due itself cancelled it, and "
     "the time left only shrinks: due then, due now, admitted or not"),
    ("scheduler.admission.AdmissionGate._abandon", r"self\._waiters\.pop\(request_id, \)",
     "the waiter is registered, with no await between, right after the push: a request removed from "
     "the queue always has one"),
    ("scheduler.admission.AdmissionGate._abandon", r"elif future\.done\(\) or not future\.cancelled\(\):",
     "a request no longer queued was admitted, and admission resolves its future at once; the future "
     "is shielded, never cancelled: done and not cancelled either way"),
    ("runtime.request_log.*", r'encoding=("UTF-8"|None)\)|\.open\("a", \)|read_text\(encoding=None\)',
     "Python's default encoding is UTF-8 wherever this runs (a UTF-8 locale, or the C locale, which Python "
     "coerces to UTF-8), and codec names are case-insensitive"),
    ("runtime.request_log.RequestLog.*", r"^self\._warned = None$", "only read as a truth value: None is false"),
    ("runtime.request_log.RequestLog._write", r'raise OSError\((None|f"not retrying before \{self\._retry_at \+)',
     "the OSError's text only reaches the log line about the outage"),
    ("runtime.request_log.RequestLog._rotate", r"^return$", "the loop is the function's last statement"),
    ("runtime.relay.Relay._generate", r"^ended = None", "only read as `if not ended`: None is false like False"),
    ("scheduler.queue.RequestQueue.*", r"^entry\.alive = None$", "alive is only read as a truth value: None is false"),
    ("scheduler.admission.AdmissionGate.acquire", r"loop\.time\(\) > deadline:",
     "at loop.time() == deadline the next pass waits 0 s and raises the same QueueTimeout a tick later"),
    ("runtime.bls_entry.EntryFlow._serve", r'getattr\((None, "message", None|exc, "message", |exc, "XXmessageXX", None|exc, "MESSAGE", None)\) or str\(exc\)',
     "a StepError's str() is its message, and other exceptions have no .message: str(exc) either way"),
    ("runtime.stub_watch.SchedulerWatch._probe", r'^message = ""',
     "no answer: \"\" is no dead stub's message either, so the same branch runs as for None"),
    ("runtime.stub_watch.SchedulerWatch._probe", r"^if self\.dead_seen_at is not None:$",
     "it only decides whether the death is logged again"),
    ("runtime.predictor_fallback.FallbackScorer.score", r"np\.full\(rows, None, dtype=np\.float32\)",
     "numpy fills a float32 array with None as NaN"),
    ("runtime.request_log.RequestLog._lines", r"ensure_ascii=None\)", "None is false, as False is: json reads it so"),
    ("runtime.scheduler_stream.SchedulerStream.__init__", r"^self\.ended = None",
     "ended is only read as a truth value: None is false"),
    ("runtime.relay.ResponseSink.*", r".*", "a Protocol's method body never runs: the sinks are its implementations"),
    ("engine.settings.parse_request", r"\((seed|temperature|top_p) is not None\) or True|is not None else 2\.0,",
     "the value is never None there: first_value's default already filled it in"),
]


def equivalent_because(function: str, mutated: str) -> str | None:
    return next((why for glob, pattern, why in EQUIVALENT
                 if fnmatch.fnmatch(function, glob) and re.search(pattern, mutated)), None)


@dataclass(frozen=True)
class Mutant:
    name: str
    status: str

    @property
    def function(self) -> str:
        """`scheduler.queue.RequestQueue.pop` from `scheduler.queue.xǁRequestQueueǁpop__mutmut_4`."""
        base = self.name.rsplit("__mutmut_", 1)[0]
        module, _, func = base.rpartition(".")
        func = func[2:] if func.startswith("x_") else func.removeprefix("xǁ").replace("ǁ", ".")
        return f"{module}.{func}"


@dataclass(frozen=True)
class Survivor:
    """A mutant no test failed on: it ran and survived, or no selected test calls its function."""

    mutant: str
    function: str
    original: str
    mutated: str
    equivalent_because: str | None
    status: str = "survived"


def module_of(name: str, modules: dict[str, tuple[str, ...]] | None = None) -> str | None:
    """The MODULES entry a mutant belongs to, or None when it is outside the scope."""
    return next((module for module, globs in (MODULES if modules is None else modules).items()
                 if any(fnmatch.fnmatch(name, glob) for glob in globs)), None)


def parse_results(text: str, modules: dict[str, tuple[str, ...]] | None = None) -> list[Mutant]:
    """`mutmut results --all true` lines (`    name: status`) within the scope."""
    mutants = []
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\S+__mutmut_\d+): (.+?)\s*", line)
        if match and module_of(match.group(1), modules) is not None:
            mutants.append(Mutant(match.group(1), match.group(2)))
    return mutants


def changed_lines(diff: str) -> tuple[str, str]:
    """The first removed and added source lines of `mutmut show`'s diff, whitespace collapsed."""
    removed = [l[1:] for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    added = [l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    squash = lambda lines: " ".join(" ".join(lines[:1]).split())  # noqa: E731
    return squash(removed), squash(added)


@dataclass(frozen=True)
class RunOutcome:
    """How `mutmut run` ended: its exit status, whether it hit the time limit, and its output's file."""

    returncode: int
    timed_out: bool = False
    log: Path | None = None
    seconds: float = 0.0


def failure_cause(log_text: str, max_lines: int = 12) -> str:
    """The lines of mutmut's output that say why its run failed (its baseline's failing tests, import
    errors, its own message), spinner frames removed: what the person running `make mutate` needs."""
    text = re.sub(r"[\u2800-\u28ff] [^\n\u2800-\u28ff]*?(?=[\u2800-\u28ff] |\n|$)", "", log_text)
    keep = re.compile(r"FAILED |ERROR |Error|error:|failed|Failed|Stopping|not found|No module")
    lines = [line.strip() for line in text.splitlines() if keep.search(line)]
    return "\n".join(lines[-max_lines:]) or "(mutmut printed no reason)"


def problems_of(summary: dict, run: RunOutcome | None, modules: dict[str, tuple[str, ...]]) -> list[str]:
    """Why the run cannot be trusted as a measurement: a failed or stopped mutmut run, no mutants in
    scope, a module with none (renamed?), or mutants left without a verdict. Empty: complete."""
    problems = []
    if run is not None and run.timed_out:
        problems.append(f"mutmut run stopped at the time limit after {run.seconds:.0f} s; --resume goes on")
    elif run is not None and run.returncode != 0:
        where = f" (its output: {run.log})" if run.log else ""
        cause = failure_cause(run.log.read_text(errors="replace")) if run.log and run.log.exists() else ""
        problems.append(f"mutmut run failed with exit status {run.returncode}, before or while checking "
                        f"mutants{where}:\n{cause}")
    if summary["total"] == 0:
        problems.append("no mutant in scope: check pyproject.toml [tool.mutmut] only_mutate and MODULES")
    else:
        empty = [m for m in modules if summary["by_module"][m]["total"] == 0]
        if empty:
            problems.append("no mutants for " + ", ".join(empty) + " (renamed, or missing from only_mutate?)")
    if summary["not_checked"]:
        names = [k for k, v in summary["other"].items() if v in UNCHECKED]
        problems.append(f"{summary['not_checked']} of {summary['total']} mutants in scope got no verdict, e.g. "
                        + ", ".join(names[:5]))
    return problems


def summarize(mutants: list[Mutant], survivors: list[Survivor], seconds: float, workers: int,
              modules: dict[str, tuple[str, ...]] | None = None) -> dict:
    """The figures of results/mutation.json, overall and by module; `complete` and `problems` are
    added by report() (they need the run's outcome)."""
    modules = MODULES if modules is None else modules
    caught = [m for m in mutants if m.status in CAUGHT]
    equivalent = {s.mutant for s in survivors if s.equivalent_because}
    by_module = {}
    for module in modules:
        mine = [m for m in mutants if module_of(m.name, modules) == module]
        killed = sum(m.status in CAUGHT for m in mine)
        eq = sum(m.name in equivalent for m in mine)
        by_module[module] = {
            "total": len(mine),
            "killed": killed,
            "equivalent": eq,
            "survived": sum(m.status == "survived" for m in mine),
            "other": sum(m.status not in CAUGHT | {"survived"} for m in mine),
            "score_without_equivalent": round(killed / (len(mine) - eq), 4) if len(mine) > eq else None,
        }
    total = len(mutants)
    return {
        "tool": "mutmut " + _mutmut_version(),
        "modules": list(modules),
        "tests": " ".join(_test_selection()) + " (pyproject.toml [tool.mutmut]; each mutant runs the ones "
                 "that call its function)",
        "total": total,
        "killed": len(caught),
        "timeouts": sum(m.status == "timeout" for m in mutants),
        "not_checked": sum(m.status in UNCHECKED for m in mutants),
        "survived": [asdict(s) for s in survivors],
        "equivalent": len(equivalent),
        "other": {m.name: m.status for m in mutants if m.status not in CAUGHT | {"survived"}},
        "score": round(len(caught) / total, 4) if total else None,
        "score_without_equivalent": round(len(caught) / (total - len(equivalent)), 4) if total > len(equivalent) else None,
        "by_module": by_module,
        "seconds": round(seconds, 1),
        "workers": workers,
    }


def _pct(score: float | None) -> str:
    return "–" if score is None else f"{100 * score:.1f}%"


def markdown(summary: dict) -> str:
    load = summary.get("load_average")
    lines = [
        "# Mutation testing (written by `make mutate` = `python tools/mutation.py`)",
        "",
        f"{summary['tool']}, {summary['workers']} workers, {summary['seconds']:.0f} s"
        f"{' (resumed: this run checked only what an earlier one had not)' if summary.get('resumed') else ''}"
        + (f"; host load average {load['start']:.1f} at the start, {load['end']:.1f} at the end, "
           f"{load['cpus']} CPUs (the host may be shared: a load above the CPU count inflates the wall time)"
           if load else "")
        + f". Tests: {summary['tests']}.",
        "",
        ("**Complete**: every mutant in scope got a verdict." if summary.get("complete", True) else
         "**NOT COMPLETE**, the figures below are not a measurement:\n\n"
         + "\n".join(f"- {p}" for p in summary.get("problems", []))),
        "",
        f"Killed (a test failed or hung) **{summary['killed']} of {summary['total']}** "
        f"({_pct(summary['score'])}; {_pct(summary['score_without_equivalent'])} of the "
        f"{summary['total'] - summary['equivalent']} that are not equivalent).",
        "",
        "| module | mutants | killed | equivalent | survived | other | killed of non-equivalent |",
        "|---|---|---|---|---|---|---|",
        *(f"| `{m}` | {v['total']} | {v['killed']} | {v['equivalent']} | {v['survived']} | {v['other']} | "
          f"{_pct(v['score_without_equivalent'])} |" for m, v in summary["by_module"].items()),
        "",
    ]
    if summary["survived"]:
        lines += ["Survivors (equivalent: the program cannot tell; otherwise a test is missing):", ""]
        for s in summary["survived"]:
            why = (f"equivalent: {s['equivalent_because']}" if s["equivalent_because"] else
                   "**no test calls it**" if s.get("status") == "no tests" else "**no test catches it**")
            lines.append(f"- `{s['mutant']}`: `{s['original']}` → `{s['mutated']}`: {why}")
    other = {k: v for k, v in summary["other"].items() if v != "no tests"}
    if other:
        lines += ["", "Not run or not decided: " + ", ".join(f"`{k}` ({v})" for k, v in other.items())]
    return "\n".join(lines) + "\n"


def _mutmut() -> str:
    return str(Path(sys.executable).parent / "mutmut")


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def _test_selection() -> list[str]:
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return config["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]


def run_mutmut(workers: int, timeout_min: float, resume: bool, globs: list[str], log: Path) -> RunOutcome:
    """Run mutmut on the mutants matching `globs`, its output to `log`, within `timeout_min`."""
    if not resume:  # fresh: the code under test may have changed
        shutil.rmtree(REPO_ROOT / "mutants", ignore_errors=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Its own process group, so that at the time limit its workers stop with it. Its exit status is
    # not about survivors (the results say those) but about whether it ran: non-zero is a failure.
    with log.open("w") as out:
        mutmut = subprocess.Popen([_mutmut(), "run", "--max-children", str(workers), *globs],
                                  cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode, timed_out = mutmut.wait(timeout=timeout_min * 60), False
        except subprocess.TimeoutExpired:
            os.killpg(mutmut.pid, signal.SIGKILL)
            returncode, timed_out = mutmut.wait(), True
    return RunOutcome(returncode, timed_out, log, time.monotonic() - started)


def _listing() -> str:
    """`mutmut results --all true`, or "" when mutmut has nothing to list (no mutants/ yet)."""
    done = subprocess.run([_mutmut(), "results", "--all", "true"], cwd=REPO_ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


# One process for every diff: `mutmut show` per mutant starts Python and mutmut each time (minutes for
# a few hundred survivors on a busy machine). Uses mutmut's own diff function (mutmut is pinned).
_DIFFS = """
import sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
for name in sys.stdin.read().split():
    print(f"\\0{name}\\0" + get_diff_for_mutant(name))
"""


def _diffs(names: list[str]) -> dict[str, str]:
    """`mutmut show`'s diff of each mutant, read in one process (else one `mutmut show` each)."""
    if not names:
        return {}
    done = subprocess.run([sys.executable, "-c", _DIFFS], cwd=REPO_ROOT, input="\n".join(names),
                          capture_output=True, text=True)
    parts = done.stdout.split("\0")[1:]
    diffs = dict(zip(parts[::2], parts[1::2]))
    if done.returncode != 0 or set(diffs) != set(names):
        diffs = {name: subprocess.run([_mutmut(), "show", name], cwd=REPO_ROOT, check=True,
                                      capture_output=True, text=True).stdout for name in names}
    return diffs


def report(out_dir: Path, run: RunOutcome | None, workers: int, resume: bool,
           modules: dict[str, tuple[str, ...]] | None = None, load_start: float | None = None) -> dict:
    """Read mutmut's results in mutants/ and write results/mutation.{json,md}; `complete` is true only
    when mutmut ran through and every mutant in scope has a verdict (`problems` says what is not)."""
    modules = MODULES if modules is None else modules
    mutants = parse_results(_listing(), modules)
    survivors = []
    unkilled = [m for m in mutants if m.status in {"survived", "no tests"}]
    diffs = _diffs([m.name for m in unkilled])
    for mutant in unkilled:
        original, mutated = changed_lines(diffs[mutant.name])
        survivors.append(Survivor(mutant.name, mutant.function, original, mutated,
                                  equivalent_because(mutant.function, mutated), mutant.status))
    summary = summarize(mutants, survivors, run.seconds if run else 0.0, workers, modules)
    summary["problems"] = problems_of(summary, run, modules)
    summary["complete"] = not summary["problems"]
    summary["resumed"] = resume
    if load_start is not None:
        summary["load_average"] = {"start": load_start, "end": round(os.getloadavg()[0], 2),
                                   "cpus": os.cpu_count()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mutation.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "mutation.md").write_text(markdown(summary))
    return summary


def below(summary: dict, min_score: float) -> list[str]:
    """The modules whose killed share of non-equivalent mutants is under `min_score`."""
    return [f"{m} {_pct(v['score_without_equivalent'])}" for m, v in summary["by_module"].items()
            if v["total"] and (v["score_without_equivalent"] or 0) < min_score]


def main(argv: list[str] | None = None) -> int:
    """0 when every mutant in scope got a verdict and each module reaches --min-score; 1 otherwise,
    with the cause on stderr (a run that checked nothing is a failure, never "0 killed")."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="mutmut --max-children (the machine's cores)")
    ap.add_argument("--timeout-min", type=float, default=20, help="give up past this many minutes")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "results")
    ap.add_argument("--module", action="append", choices=list(MODULES), metavar="MODULE",
                    help="only this MODULES entry (repeatable; while writing tests: pass --out build/mutation)")
    ap.add_argument("--min-score", type=float, default=0.9,
                    help="fail when a module kills less than this share of its non-equivalent mutants")
    ap.add_argument("--resume", action="store_true",
                    help="keep mutants/ from a run stopped at its time limit: run only what it did not reach")
    ap.add_argument("--report-only", type=float, metavar="SECONDS", default=None,
                    help="only rewrite the results from mutants/ (an earlier run that took SECONDS)")
    args = ap.parse_args(argv)
    modules = {m: MODULES[m] for m in args.module} if args.module else MODULES
    load_start = round(os.getloadavg()[0], 2)
    if args.report_only is not None:
        run = RunOutcome(0, seconds=args.report_only)
    else:
        globs = [glob for module_globs in modules.values() for glob in module_globs]
        run = run_mutmut(args.workers, args.timeout_min, args.resume, globs, REPO_ROOT / "build" / "mutmut.log")
    summary = report(args.out, run, args.workers, args.resume, modules, load_start)
    print(f"mutation: killed {summary['killed']} of {summary['total']} ({_pct(summary['score'])}), "
          f"{len(summary['survived'])} survived ({summary['equivalent']} equivalent), {summary['seconds']:.0f} s, "
          f"load average {load_start}-{summary['load_average']['end']} -> {args.out / 'mutation.json'}")
    failures = summary["problems"] + [f"below {_pct(args.min_score)} of non-equivalent mutants killed: {m}"
                                      for m in below(summary, args.min_score)]
    for failure in failures:
        print(f"mutation: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
