"""Start and stop the door (`python -m door`) as a process of its own beside tritonserver: the
port clients reach, in front of Triton's private loopback ports (door/__init__.py says why).
`make deploy` runs it on HTTP_PORT/GRPC_PORT; tests and benchmarks start their own on free ports."""

from __future__ import annotations

import sys
from pathlib import Path

from deploy.local_process import LocalProcess
from deploy.triton import TritonServer, free_ports


def door_command(triton: TritonServer, http_port: int, grpc_port: int, host: str = "127.0.0.1",
                 extra_args: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "door", "--triton-http", triton.http_url, "--triton-grpc", triton.grpc_url,
            "--triton-metrics", f"127.0.0.1:{triton.ports.metrics}", "--host", host,
            "--http-port", str(http_port), "--grpc-port", str(grpc_port), *(extra_args or [])]


class Door(LocalProcess):
    """One door process: ready once its /v2/health/ready answers (Triton's, through it)."""

    name, log_name, stop_timeout_s = "the door", "door.log", 10.0

    def __init__(self, triton: TritonServer, work_dir: Path, http_port: int | None = None,
                 grpc_port: int | None = None, extra_args: list[str] | None = None) -> None:
        super().__init__(work_dir)
        self.triton = triton
        ports = free_ports(2)
        self.http_port = http_port if http_port is not None else ports[0]
        self.grpc_port = grpc_port if grpc_port is not None else ports[1]
        self.extra_args = extra_args or []

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> list[str]:
        return door_command(self.triton, self.http_port, self.grpc_port, extra_args=self.extra_args)

    def ready_url(self) -> str:
        return f"http://{self.http_url}/v2/health/ready"
