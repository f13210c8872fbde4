"""Start and stop the OpenAI-compatible server (`python -m openai_server`) as a process of its
own beside tritonserver: `make deploy` runs both, the tests and benchmarks start their own on free
loopback ports. Like Triton, it binds 127.0.0.1 and is stopped by its PID."""

from __future__ import annotations

import sys
from pathlib import Path

from deploy.local_process import LocalProcess
from deploy.triton import free_ports, server_env
from openai_server.settings import DEFAULT_PORT


def frontend_command(triton_grpc_url: str, port: int, extra_args: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "openai_server", "--triton-url", triton_grpc_url,
            "--host", "127.0.0.1", "--port", str(port), *(extra_args or [])]


class OpenAIFrontend(LocalProcess):
    """One OpenAI server process: ready once /health says Triton is ready."""

    name, log_name = "the OpenAI server", "openai_server.log"

    def __init__(self, triton_grpc_url: str, work_dir: Path, port: int | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(work_dir)
        self.triton_grpc_url = triton_grpc_url
        self.port = port if port is not None else free_ports(1)[0]
        self.extra_args = extra_args or []
        self.extra_env = env or {}

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return frontend_command(self.triton_grpc_url, self.port, self.extra_args)

    def ready_url(self) -> str:
        return f"{self.url}/health"  # 200 once Triton is ready too

    def env(self) -> dict[str, str]:
        return server_env(self.extra_env)


__all__ = ["DEFAULT_PORT", "OpenAIFrontend", "frontend_command"]
