"""Start and stop the OpenAI-compatible server (`python -m openai_server`) as a process of its
own beside tritonserver: `make deploy` runs both, the tests and benchmarks start their own on free
loopback ports. Like Triton, it binds 127.0.0.1 and is stopped by its PID."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deploy.triton import free_ports, server_env, stop_pid, wait_ready
from openai_server.settings import DEFAULT_PORT


def frontend_command(triton_grpc_url: str, port: int, extra_args: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "openai_server", "--triton-url", triton_grpc_url,
            "--host", "127.0.0.1", "--port", str(port), *(extra_args or [])]


class OpenAIFrontend:
    """One OpenAI server process: start, wait until /health says Triton is ready, stop by PID."""

    def __init__(self, triton_grpc_url: str, work_dir: Path, port: int | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.triton_grpc_url = triton_grpc_url
        self.work_dir = Path(work_dir)
        self.port = port if port is not None else free_ports(1)[0]
        self.extra_args = extra_args or []
        self.env = env or {}
        self.log_path = self.work_dir / "openai_server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0, detach: bool = False) -> "OpenAIFrontend":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            frontend_command(self.triton_grpc_url, self.port, self.extra_args),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=server_env(self.env), start_new_session=detach,
        )
        log.close()
        try:
            wait_ready(f"{self.url}/health", timeout_s, self.process, "the OpenAI server")  # 200 once Triton is ready too
        except Exception:
            self.stop()
            raise RuntimeError(f"the OpenAI server did not become ready:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, timeout_s)
            self.process.wait(timeout=5)
            self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "OpenAIFrontend":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DEFAULT_PORT", "OpenAIFrontend", "frontend_command"]
