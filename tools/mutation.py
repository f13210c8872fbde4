"""`make mutate`: mutation testing of the code whose bugs a green `make test` must not hide.

mutmut (pinned in requirements.txt, configured in pyproject.toml `[tool.mutmut]`) plants small bugs,
one at a time, in the scheduler (`scheduler/`), the relay (`runtime/relay.py`, `runtime/finish.py`),
request validation (`runtime/preprocess.py`, `engine/settings.py` `parse_request`) and
detokenization (`runtime/detokenize.py`), and runs the fast unit tests against each. A mutant is killed when a test
fails (or hangs: a timeout counts as caught, as `make test`'s per-test limit would catch it).

Writes results/mutation.json ({"modules", "total", "killed", "survived", ...}) and results/mutation.md.
A surviving mutant is either a missing test (write it) or equivalent (the program behaves the same):
equivalent ones are listed in EQUIVALENT below with the reason, keyed by function and mutated line so
that renumbering does not lose them. A benchmark-style command, not part of CI:

    python tools/mutation.py --workers 2 --timeout-min 20
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

# What is mutated (mutmut's mutant names: module.x_function__mutmut_N, module.xǁClassǁmethod__mutmut_N).
MODULES: dict[str, str] = {
    "scheduler": "scheduler.*",
    "runtime.relay": "runtime.relay.*",
    "runtime.finish": "runtime.finish.*",
    "runtime.preprocess": "runtime.preprocess.*",
    "engine.settings.parse_request": "engine.settings.x_parse_request__mutmut_*",
    "runtime.detokenize": "runtime.detokenize.*",
}
CAUGHT = {"killed", "timeout"}

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
    mutant: str
    function: str
    original: str
    mutated: str
    equivalent_because: str | None


def module_of(name: str) -> str | None:
    """The MODULES entry a mutant belongs to, or None when it is outside the scope."""
    return next((module for module, pattern in MODULES.items() if fnmatch.fnmatch(name, pattern)), None)


def parse_results(text: str) -> list[Mutant]:
    """`mutmut results --all true` lines (`    name: status`) within the scope."""
    mutants = []
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\S+__mutmut_\d+): (.+?)\s*", line)
        if match and module_of(match.group(1)) is not None:
            mutants.append(Mutant(match.group(1), match.group(2)))
    return mutants


def changed_lines(diff: str) -> tuple[str, str]:
    """The first removed and added source lines of `mutmut show`'s diff, whitespace collapsed."""
    removed = [l[1:] for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    added = [l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    squash = lambda lines: " ".join(" ".join(lines[:1]).split())  # noqa: E731
    return squash(removed), squash(added)


def summarize(mutants: list[Mutant], survivors: list[Survivor], seconds: float, workers: int) -> dict:
    caught = [m for m in mutants if m.status in CAUGHT]
    equivalent = [s for s in survivors if s.equivalent_because]
    by_module = {}
    for module in MODULES:
        mine = [m for m in mutants if module_of(m.name) == module]
        by_module[module] = {
            "total": len(mine),
            "killed": sum(m.status in CAUGHT for m in mine),
            "survived": sum(m.status == "survived" for m in mine),
        }
    total = len(mutants)
    return {
        "tool": "mutmut " + _mutmut_version(),
        "modules": list(MODULES),
        "tests": "tests/scheduler tests/runtime tests/engine/test_settings.py (pyproject.toml [tool.mutmut])",
        "total": total,
        "killed": len(caught),
        "timeouts": sum(m.status == "timeout" for m in mutants),
        "survived": [asdict(s) for s in survivors],
        "equivalent": len(equivalent),
        "other": {m.name: m.status for m in mutants if m.status not in CAUGHT | {"survived"}},
        "score": round(len(caught) / total, 4) if total else None,
        "score_without_equivalent": round(len(caught) / (total - len(equivalent)), 4) if total > len(equivalent) else None,
        "by_module": by_module,
        "seconds": round(seconds, 1),
        "workers": workers,
    }


def markdown(summary: dict) -> str:
    lines = [
        "# Mutation testing (written by `make mutate` = `python tools/mutation.py`)",
        "",
        f"{summary['tool']}, {summary['workers']} workers, {summary['seconds']:.0f} s"
        f"{'' if summary.get('complete', True) else ' (stopped at the time limit: not every mutant was run)'}"
        f"{' (resumed: this run checked only what an earlier one had not)' if summary.get('resumed') else ''}. "
        f"Tests: {summary['tests']}.",
        f"Killed (a test failed or hung) **{summary['killed']} of {summary['total']}** "
        f"({100 * (summary['score'] or 0):.1f}%; {100 * (summary['score_without_equivalent'] or 0):.1f}% of the "
        f"{summary['total'] - summary['equivalent']} that are not equivalent).",
        "",
        "| module | mutants | killed | survived |",
        "|---|---|---|---|",
        *(f"| `{m}` | {v['total']} | {v['killed']} | {v['survived']} |" for m, v in summary["by_module"].items()),
        "",
    ]
    if summary["survived"]:
        lines += ["Survivors (equivalent: the program cannot tell; otherwise a test is missing):", ""]
        for s in summary["survived"]:
            why = f"equivalent: {s['equivalent_because']}" if s["equivalent_because"] else "**no test catches it**"
            lines.append(f"- `{s['mutant']}`: `{s['original']}` → `{s['mutated']}`: {why}")
    if summary["other"]:
        lines += ["", "Not run or not decided: " + ", ".join(f"`{k}` ({v})" for k, v in summary["other"].items())]
    return "\n".join(lines) + "\n"


def _mutmut() -> str:
    return str(Path(sys.executable).parent / "mutmut")


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def run_mutmut(workers: int, timeout_min: float, resume: bool) -> tuple[float, bool]:
    """Seconds taken, and whether mutmut finished within `timeout_min`."""
    if not resume:  # fresh: the code under test may have changed
        shutil.rmtree(REPO_ROOT / "mutants", ignore_errors=True)
    started = time.monotonic()
    # Its own process group, so that at the time limit its workers stop with it; its exit status
    # says nothing about survivors (the results below do).
    mutmut = subprocess.Popen([_mutmut(), "run", "--max-children", str(workers), *MODULES.values()],
                              cwd=REPO_ROOT, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        mutmut.wait(timeout=timeout_min * 60)
        complete = True
    except subprocess.TimeoutExpired:
        os.killpg(mutmut.pid, signal.SIGKILL)
        mutmut.wait()
        complete = False  # the mutants not reached are listed as "not checked"
    return time.monotonic() - started, complete


def report(out_dir: Path, seconds: float, complete: bool, workers: int, resume: bool) -> dict:
    """Read mutmut's results in mutants/ and write results/mutation.{json,md}."""
    listing = subprocess.run([_mutmut(), "results", "--all", "true"], cwd=REPO_ROOT, check=True,
                             capture_output=True, text=True).stdout
    mutants = parse_results(listing)
    survivors = []
    for mutant in (m for m in mutants if m.status == "survived"):
        diff = subprocess.run([_mutmut(), "show", mutant.name], cwd=REPO_ROOT, check=True,
                              capture_output=True, text=True).stdout
        original, mutated = changed_lines(diff)
        survivors.append(Survivor(mutant.name, mutant.function, original, mutated,
                                  equivalent_because(mutant.function, mutated)))
    summary = summarize(mutants, survivors, seconds, workers)
    summary["complete"] = complete
    summary["resumed"] = resume
    summary["not_checked"] = sum(status == "not checked" for status in summary["other"].values())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mutation.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "mutation.md").write_text(markdown(summary))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="mutmut --max-children (the machine's cores)")
    ap.add_argument("--timeout-min", type=float, default=20, help="give up past this many minutes")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "results")
    ap.add_argument("--resume", action="store_true",
                    help="keep mutants/ from a run stopped at its time limit: run only what it did not reach")
    ap.add_argument("--report-only", type=float, metavar="SECONDS", default=None,
                    help="only rewrite the results from mutants/ (an earlier run that took SECONDS)")
    args = ap.parse_args()
    if args.report_only is not None:
        summary = report(args.out, args.report_only, complete=True, workers=args.workers, resume=args.resume)
    else:
        seconds, complete = run_mutmut(args.workers, args.timeout_min, args.resume)
        summary = report(args.out, seconds, complete, args.workers, args.resume)
    print(f"mutation: killed {summary['killed']} of {summary['total']} ({100 * summary['score']:.1f}%), "
          f"{len(summary['survived'])} survived ({summary['equivalent']} equivalent), {summary['seconds']:.0f} s "
          f"-> {args.out / 'mutation.json'}")


if __name__ == "__main__":
    main()
