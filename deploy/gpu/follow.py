"""Follow a detached container's log until tritonserver is ready or has failed, so that
`make deploy TARGET=gpu` ends with a verdict and the failure's own lines instead of returning while
the server is still loading (or already dead) and leaving the user to know about `docker logs`.

Tritonserver prints "Started HTTPService at ..." once every model has loaded; with its default
--exit-on-error, a model that fails to load stops the server, so the log ends (the container
exits). Error lines use glog's `E<MMDD> <time> ...` prefix; the python backend and TensorRT-LLM add
tracebacks and "[TensorRT-LLM][ERROR]" lines, all kept for the report.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal

READY_MARKER = "Started HTTPService at"
FATAL_MARKERS = ("error: creating server", "failed to load all models")
_ERROR_LINE = re.compile(r"^E\d{4} |\[TensorRT-LLM\]\[ERROR\]|^Traceback|^\w*(Error|Exception):|^error:")
TAIL_LINES = 30

Status = Literal["ready", "failed", "timeout"]


@dataclass
class LogWatch:
    """A state machine over log lines; `feed` returns the verdict once there is one."""

    errors: list[str] = field(default_factory=list)
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    fatal: bool = False

    def feed(self, line: str) -> Status | None:
        line = line.rstrip("\n")
        self.tail.append(line)
        if _ERROR_LINE.search(line):
            self.errors.append(line)
        if READY_MARKER in line:
            return "ready"
        if any(marker in line for marker in FATAL_MARKERS):
            self.fatal = True  # tritonserver exits right after: keep reading its last lines
        return None

    def report(self) -> list[str]:
        """What to show the user on failure: the error lines, else the last lines."""
        return self.errors or list(self.tail)


@dataclass
class Outcome:
    status: Status
    lines: list[str]  # errors (or the log's last lines) when not ready


def watch_lines(lines: Iterable[str], timeout_s: float, clock: Callable[[], float] = time.monotonic,
                echo: Callable[[str], None] | None = None) -> Outcome:
    """Read lines (blocking reads happen in a thread, so the timeout holds even when the log is
    silent) until ready, end of log (failed) or timeout."""
    watch, lines_in = LogWatch(), queue.Queue()
    end = object()

    def pump() -> None:
        for line in lines:
            lines_in.put(line)
        lines_in.put(end)

    threading.Thread(target=pump, daemon=True).start()
    deadline = clock() + timeout_s
    while True:
        left = deadline - clock()
        if left <= 0:
            return Outcome("timeout", watch.report())
        try:
            line = lines_in.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        if line is end:
            return Outcome("failed", watch.report())
        if echo is not None:
            echo(line.rstrip("\n"))
        if watch.feed(line) == "ready":
            return Outcome("ready", [])


def follow_container(name: str, timeout_s: float, echo: Callable[[str], None] | None = None,
                     popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> Outcome:
    """`docker logs -f NAME` through watch_lines; the follower process is stopped afterwards."""
    process = popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return watch_lines(process.stdout, timeout_s, echo=echo)
    finally:
        process.terminate()
        process.wait(timeout=10)


def describe(outcome: Outcome, name: str, timeout_s: float) -> str:
    """The message `python -m deploy.gpu` prints for a verdict."""
    if outcome.status == "ready":
        return "tritonserver is ready."
    head = ("tritonserver stopped before it was ready" if outcome.status == "failed"
            else f"tritonserver was not ready after {timeout_s:g} s (still running; raise --ready-timeout for large engines)")
    body = "\n  ".join(outcome.lines) if outcome.lines else "(no log lines)"
    return f"{head}:\n  {body}\nFull log: docker logs {name}    remove: docker rm -f {name}"
