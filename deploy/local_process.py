"""A helper process of the deployment beside tritonserver (the door, the OpenAI server, a test's
Prometheus): started with its output in a log of its own, ready once its URL answers, stopped by its
PID. One class, so that every such process starts, waits, fails with its log's tail and stops alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.triton import server_env, stop_pid, wait_ready


class LocalProcess:
    """Subclasses say what to run (`command`), where it answers when ready (`ready_url`), their name
    and log file; `env` adds to the server environment (None: the plain environment)."""

    name = "the process"
    log_name = "process.log"
    stop_timeout_s = 15.0

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.log_path = self.work_dir / self.log_name
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_url(self) -> str:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return server_env()

    def start(self, timeout_s: float = 60.0, detach: bool = False):
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env(),
                start_new_session=detach,
            )
        try:
            wait_ready(self.ready_url(), timeout_s, self.process, self.name)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, self.stop_timeout_s if timeout_s is None else timeout_s)
            self.process.wait(timeout=5)
            self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
