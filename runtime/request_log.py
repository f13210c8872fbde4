"""The request log: one JSON line per finished request, the data the predictor retrains on.

Every finished request is a (prompt, generated length) pair from the very model being scheduled;
`predictor.retrain` turns the log into a new predictor version. A row is the predictor's
interchange format (`prompt`, `output_tokens`; predictor/interchange.py) plus what the retrainer
and an operator need: `finish_reason` (`stop`; `length` and `cancelled` are censored: the length is
only a lower bound; `error` and `rejected` rows are kept for operators), the request's `score` and
the `predictor_version` that gave it, `max_tokens`, `prompt_tokens`, and the arrival / admission /
first-token / end wall-clock times (Unix seconds).

Writing must never slow or fail a request: `RequestLog.append` only puts the record on an in-memory
queue (bounded; past it rows are dropped and counted), and one background thread decodes the
prompt, serialises and writes in batches. The file rotates by size (`requests.jsonl`,
`requests.jsonl.1`, ...) and the oldest files go so that the log stays under its disk cap. An
unwritable path or a full disk gives one clear error message and counts the lost rows
(`write_failures`, published as a Prometheus counter by the scheduler); the writer keeps trying
now and then, so the log resumes when the disk has room again.

Prompt text: the scheduler holds the prompt's Llama-3 token ids, not its text. With prompt
logging on the writer decodes them (a `decode` callable, runtime.llama3_tokenizer, off the event
loop) and writes `prompt`; with it off, neither text nor ids are written (ids are the text), and
such rows only serve operators, not retraining.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

from runtime.finish import FinishReason

log = logging.getLogger(__name__)

# How a request ended. `length` (the max_tokens cap) and `cancelled` give only a lower bound of the
# answer's natural length (censored); `error` / `rejected` generated nothing the retrainer can use.
EndReason = Literal[FinishReason, "error", "rejected"]
CENSORED: frozenset[str] = frozenset({"length", "cancelled"})
LOG_FILE_NAME = "requests.jsonl"


@dataclass
class RequestRecord:
    """What the relay knows about a request when it ends (times: Unix seconds, None = never)."""

    request_id: str
    finish_reason: EndReason
    output_tokens: int
    max_tokens: int
    score: float
    predictor_version: str | None
    prompt_ids: Sequence[int] = field(default=(), repr=False)
    arrival_time: float | None = None
    admission_time: float | None = None
    first_token_time: float | None = None
    end_time: float | None = None

    def row(self, prompt: str | None) -> dict:
        """The JSON row; `prompt` only when prompt logging is on (None leaves it out)."""
        row = asdict(self)
        ids = row.pop("prompt_ids")
        row["prompt_tokens"] = len(ids)
        if prompt is not None:
            row = {"prompt": prompt, **row}
        return row


@dataclass(frozen=True)
class LogSettings:
    """From `ltr_scheduler`'s `request_log*` parameters. An empty path turns the log off."""

    path: str = ""
    prompts: bool = True  # write the prompt text (needed for retraining; off for privacy)
    max_file_bytes: int = 64 << 20  # rotate past this size
    max_total_bytes: int = 1 << 30  # the disk cap over the current and the rotated files
    queue_rows: int = 100_000  # rows waiting for the writer; past it new rows are dropped (counted)
    flush_s: float = 1.0  # the writer wakes at least this often
    retry_s: float = 30.0  # after a failure, the next attempt to open the file waits this long

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "LogSettings":
        def number(key: str, default: float) -> float:
            value = params.get(key, "").strip()
            return float(value) if value else default

        d = cls()
        return cls(
            path=params.get("request_log", "").strip(),
            prompts=params.get("request_log_prompts", "true").strip().lower() in ("true", "1", "yes", "on"),
            max_file_bytes=int(number("request_log_max_file_mb", d.max_file_bytes / 2**20) * 2**20),
            max_total_bytes=int(number("request_log_max_total_mb", d.max_total_bytes / 2**20) * 2**20),
        )


@dataclass
class LogStats:
    written: int = 0
    dropped: int = 0  # the queue was full
    write_failures: int = 0  # rows lost to an unwritable path or a full disk


def rotated_files(path: Path) -> list[Path]:
    """The log's files, oldest first: `requests.jsonl.N` ... `.1`, then the current file."""
    numbered = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]), reverse=True,
    )
    return numbered + ([path] if path.exists() else [])


def read_rows(path: str | Path) -> list[dict]:
    """Every row of a log, oldest file first; `path` is the log file or its folder. A torn last
    line (the server was killed mid-write) is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE_NAME
    rows = []
    for file in rotated_files(path):
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class RequestLog:
    """Appends rows from the event loop; a daemon thread writes them (see the module docstring)."""

    def __init__(
        self,
        settings: LogSettings,
        decode: Callable[[Sequence[int]], str] | None = None,
        on_failure: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        path = Path(settings.path)
        self.path = path / LOG_FILE_NAME if path.suffix != ".jsonl" else path
        self.decode = decode
        self.on_failure = on_failure
        self.clock = clock
        self.stats = LogStats()
        self._queue: queue.Queue[RequestRecord | None] = queue.Queue(maxsize=settings.queue_rows)
        self._file = None
        self._retry_at = 0.0
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def append(self, record: RequestRecord) -> None:
        """Never blocks and never raises: the caller is the scheduler's event loop."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.stats.dropped += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread (model finalize)."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every row appended so far is written or counted lost (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    # ---- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:  # take whatever else is waiting: one write per batch
                while len(batch) < 1000:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            records = [r for r in batch if r is not None]
            try:
                if records:
                    self._write(records)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(records) < len(batch):  # close() was called
                if self._file is not None:
                    self._file.close()
                return

    def _lines(self, records: list[RequestRecord]) -> str:
        lines = []
        for record in records:
            prompt = None
            if self.settings.prompts and self.decode is not None:
                try:
                    prompt = self.decode(list(record.prompt_ids))
                except Exception as exc:  # a prompt the tokenizer cannot decode loses its text only
                    log.warning("request log: cannot decode the prompt of %s: %s", record.request_id, exc)
            lines.append(json.dumps(record.row(prompt), ensure_ascii=False) + "\n")
        return "".join(lines)

    def _write(self, records: list[RequestRecord]) -> None:
        text = self._lines(records)
        try:
            file = self._open()
            if file is None:
                raise OSError(f"not retrying before {self._retry_at - self.clock():.0f}s")
            file.write(text)
            file.flush()
            self.stats.written += len(records)
            self._warned = False
            if file.tell() >= self.settings.max_file_bytes:
                self._rotate()
        except OSError as exc:
            self.stats.write_failures += len(records)
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
                self._file = None
            self._retry_at = max(self._retry_at, self.clock() + self.settings.retry_s)
            if not self._warned:  # one clear message per outage, not one per row
                log.error(
                    "request log: cannot write %s (%s); rows are counted as lost until it works again "
                    "(metric ltr_scheduler_request_log_failures_total); requests are not affected", self.path, exc,
                )
                self._warned = True
            if self.on_failure is not None:
                self.on_failure()

    def _open(self):
        if self._file is not None:
            return self._file
        if self.clock() < self._retry_at:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        return self._file

    def _rotate(self) -> None:
        """requests.jsonl -> .1 -> .2 ...; then the oldest files go until the cap holds."""
        self._file.close()
        self._file = None
        for old in rotated_files(self.path):  # the highest number first, so no name is overwritten
            n = 0 if old == self.path else int(old.suffix[1:])
            os.replace(old, self.path.with_name(f"{self.path.name}.{n + 1}"))
        files = rotated_files(self.path)
        total = sum(p.stat().st_size for p in files)
        for old in files:  # oldest first
            if total <= self.settings.max_total_bytes:
                break
            total -= old.stat().st_size
            old.unlink()
