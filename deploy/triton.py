"""Start and stop a real `tritonserver` on a CPU-only machine.

The binary and the Python backend come from the PyPI wheel `nvidia-pytriton` (Triton 2.51). What
makes it work here (checked, see docs/ARCHITECTURE.md): a backend directory holding the python
backend library, its utils and the interpreter's stub side by side; LD_LIBRARY_PATH with the
wheel's bundled libraries and this interpreter's LIBDIR; the virtual environment's `bin/` first on
PATH so the stub imports the venv's packages. Servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytriton

PYTRITON_DIR = Path(pytriton.__file__).resolve().parent / "tritonserver"
TRITONSERVER_BIN = PYTRITON_DIR / "bin" / "tritonserver"
PYTRITON_LIBS = PYTRITON_DIR.parents[1] / "nvidia_pytriton.libs"
STUB_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> "Ports":
        """Three free loopback ports (for tests and side-by-side benchmarks)."""
        return cls(*free_ports(3))


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def prepare_backend_dir(dest: Path) -> Path:
    """Lay out `dest/python/` as tritonserver expects its python backend (idempotent)."""
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [
        PYTRITON_DIR / "backends" / "python" / "libtriton_python.so",
        PYTRITON_DIR / "backends" / "python" / "triton_python_backend_utils.py",
        PYTRITON_DIR / "python_backend_stubs" / STUB_VERSION / "triton_python_backend_stub",
    ]
    for src in sources:
        target = python_dir / src.name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copy2(src, target)
    return dest


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment under which the python stubs embed this interpreter and see its packages."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(Path(sys.prefix))
    libdirs = [str(PYTRITON_LIBS), sysconfig.get_config_var("LIBDIR") or ""]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [d for d in libdirs if d] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else [])
    )
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def server_command(model_repository: Path, backend_dir: Path, ports: Ports, log_verbose: int = 0) -> list[str]:
    return [
        str(TRITONSERVER_BIN),
        f"--model-repository={model_repository}",
        f"--backend-directory={backend_dir}",
        "--http-address=127.0.0.1",
        f"--http-port={ports.http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={ports.grpc}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={ports.metrics}",
        "--allow-metrics=true",
        "--disable-auto-complete-config",
        f"--log-verbose={log_verbose}",
    ]


class TritonServer:
    """One tritonserver process: start, wait until ready, stop by PID."""

    def __init__(
        self,
        model_repository: Path,
        work_dir: Path,
        ports: Ports | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.model_repository = Path(model_repository)
        self.work_dir = Path(work_dir)
        self.ports = ports or Ports.free()
        self.env = env or {}
        self.log_path = self.work_dir / "tritonserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    def start(self, timeout_s: float = 120.0, detach: bool = False) -> "TritonServer":
        """Launch and block until /v2/health/ready answers 200 (raises with the log tail if not).

        `detach=True` starts it in its own session so it outlives this Python process (deploy).
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backend_dir = prepare_backend_dir(self.work_dir / "backends")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            server_command(self.model_repository, backend_dir, self.ports),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(self.env),
            start_new_session=detach,
        )
        log.close()
        try:
            wait_ready(self.http_url, timeout_s, self.process)
        except Exception:
            self.stop()
            raise RuntimeError(f"tritonserver did not become ready:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is not None:
            stop_pid(self.process.pid, timeout_s)
            self.process.wait(timeout=5)
            self.process = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(http_url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"tritonserver exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"tritonserver at {http_url} not ready after {timeout_s:.0f}s")


def stop_pid(pid: int, timeout_s: float = 30.0) -> bool:
    """SIGTERM (Triton then unloads models and stops its stubs), SIGKILL after `timeout_s`.
    Returns False if no such process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if _is_zombie(pid):
                return True
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False
