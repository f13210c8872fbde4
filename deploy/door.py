"""Start and stop the door (`python -m door`) as a process of its own beside tritonserver: the
port clients reach, in front of Triton's private loopback ports (door/__init__.py says why).
`make deploy` runs it on HTTP_PORT/GRPC_PORT; tests and benchmarks start their own on free ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deploy.triton import TritonServer, free_ports, server_env, stop_pid, wait_ready


def door_command(triton: TritonServer, http_port: int, grpc_port: int, host: str = "127.0.0.1",
                 extra_args: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "door", "--triton-http", triton.http_url, "--triton-grpc", triton.grpc_url,
            "--triton-metrics", f"127.0.0.1:{triton.ports.metrics}", "--host", host,
            "--http-port", str(http_port), "--grpc-port", str(grpc_port), *(extra_args or [])]


class Door:
    """One door process: start, wait until its /v2/health/ready answers (Triton's, through it), stop by PID."""

    def __init__(self, triton: TritonServer, work_dir: Path, http_port: int | None = None,
                 grpc_port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.triton = triton
        self.work_dir = Path(work_dir)
        ports = free_ports(2)
        self.http_port = http_port if http_port is not None else ports[0]
        self.grpc_port = grpc_port if grpc_port is not None else ports[1]
        self.extra_args = extra_args or []
        self.log_path = self.work_dir / "door.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 60.0, detach: bool = False) -> "Door":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            door_command(self.triton, self.http_port, self.grpc_port, extra_args=self.extra_args),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=server_env(),
            start_new_session=detach,
        )
        log.close()
        try:
            wait_ready(f"http://{self.http_url}/v2/health/ready", timeout_s, self.process, "the door")
        except Exception:
            self.stop()
            raise RuntimeError(f"the door did not become ready:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, timeout_s)
            self.process.wait(timeout=5)
            self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "Door":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
