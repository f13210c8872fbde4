"""Start and stop a real `tritonserver` on a CPU-only machine.

The binary and the Python backend come from the PyPI wheel `nvidia-pytriton` (Triton 2.51). What
makes it work here (checked, see docs/ARCHITECTURE.md): a backend directory holding the python
backend library, its utils and the interpreter's stub side by side; LD_LIBRARY_PATH with the
wheel's bundled libraries and this interpreter's LIBDIR; the virtual environment's `bin/` first on
PATH so the stub imports the venv's packages. Servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
from typing import Callable

import pytriton

from repo_paths import REPO_ROOT
from runtime import internal_key

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


def internal_key_env(state_dir: Path) -> dict[str, str]:
    """What tritonserver's environment needs so that the internal models require the deploy's key
    (runtime/internal_key.py): the file `make deploy` wrote in its state dir, if any."""
    path = Path(state_dir) / internal_key.FILE_NAME
    return {internal_key.ENV_FILE: str(path.resolve())} if path.exists() else {}


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
    # The stubs import this checkout's packages, whichever checkout the venv was installed from
    # (a second worktree sharing one venv would otherwise serve the first one's code).
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class RepositoryAccess:
    """The key that guards Triton's model-repository API (load / unload / index).

    Loading a model runs its code, so with dynamic loading on (`--model-control-mode=explicit`,
    how a new predictor version goes live without a restart: deploy/swap.py) that API must not
    be open to any caller. Triton 2.51 restricts it with `--http-restricted-api` and
    `--grpc-restricted-protocol`: a call without the header `header: key` is refused. The deploy
    generates the key, keeps it in a 0600 file beside the server's state and never prints it; an
    operator sends it as that header (`curl -H "triton-repository-key: $(cat .deploy/repository_api_key)"`).
    Shared by every deploy path that starts tritonserver (one place for the flags).
    """

    key: str
    header: str = "triton-repository-key"
    FILE_NAME = "repository_api_key"

    @classmethod
    def generate(cls) -> "RepositoryAccess":
        return cls(secrets.token_urlsafe(32))

    def save(self, state_dir: Path) -> Path:
        path = Path(state_dir) / self.FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.key + "\n")
        return path

    @classmethod
    def load(cls, state_dir: Path) -> "RepositoryAccess":
        return cls((Path(state_dir) / cls.FILE_NAME).read_text().strip())

    def headers(self) -> dict[str, str]:
        return {self.header: self.key}

    def flags(self) -> list[str]:
        """Explicit model control (every model loaded at start) with the repository API restricted."""
        restriction = f"model-repository:{self.header}={self.key}"
        return [
            "--model-control-mode=explicit",
            "--load-model=*",
            f"--http-restricted-api={restriction}",
            f"--grpc-restricted-protocol={restriction}",
        ]

    def __repr__(self) -> str:  # never the key, in logs or tracebacks
        return f"RepositoryAccess(header={self.header!r}, key=<hidden>)"


# Triton's other administrative APIs, behind the same key (issue 13): shared-memory registration
# (Triton 2.51 crashes on a region key of another process), logging and trace settings. Health,
# metadata and inference stay open on loopback; the public door is the OpenAI server (docs/faults.md).
ADMIN_APIS = ("shared-memory", "logging", "trace")


def admin_api_flags(access: "RepositoryAccess") -> list[str]:
    restriction = f"{','.join(ADMIN_APIS)}:{access.header}={access.key}"
    return [f"--http-restricted-api={restriction}", f"--grpc-restricted-protocol={restriction}"]


def server_command(
    model_repository: Path, backend_dir: Path, ports: Ports, log_verbose: int = 0,
    repository_access: RepositoryAccess | None = None,
) -> list[str]:
    """`repository_access`: dynamic loading through the guarded repository API (else none)."""
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
    ] + (repository_access.flags() + admin_api_flags(repository_access) if repository_access else [])


class TritonServer:
    """One tritonserver process: start, wait until ready, stop by PID."""

    def __init__(
        self,
        model_repository: Path,
        work_dir: Path,
        ports: Ports | None = None,
        env: dict[str, str] | None = None,
        repository_access: RepositoryAccess | None = None,
    ) -> None:
        self.repository_access = repository_access
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
        """Launch and block until /v2/health/ready and the metrics endpoint answer 200 (raises with
        the log tail if not): Triton reports ready a few ms before its metrics port listens.

        `detach=True` starts it in its own session so it outlives this Python process (deploy).
        """
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backend_dir = prepare_backend_dir(self.work_dir / "backends")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            server_command(self.model_repository, backend_dir, self.ports, repository_access=self.repository_access),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(self.env),
            start_new_session=detach,
        )
        log.close()
        try:
            wait_ready(f"http://{self.http_url}/v2/health/ready", timeout_s, self.process)
            wait_ready(self.metrics_url, timeout_s, self.process)
        except Exception:
            self.stop()
            raise RuntimeError(f"tritonserver did not become ready:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then after `timeout_s` SIGKILL to the server and its stubs (a killed server leaves
        its stubs running otherwise), and remove their shared memory (`stop_tritonserver`)."""
        if self.process is not None:
            stop_tritonserver(self.process.pid, timeout_s)
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


def wait_ready(
    url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None, name: str = "tritonserver"
) -> None:
    """Until `url` answers 200; fails at once if `process` (the `name`d server) exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} at {url} not ready after {timeout_s:.0f}s")


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


# The python backend's shared-memory regions: Triton unlinks them when it stops its stubs, not
# when it is killed, so a forced stop must remove what the server had mapped.
SHM_REGION_PREFIX = "/dev/shm/triton_python_backend_shm_region_"


def process_tree(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """`pid` and its descendants (the python stubs are the server's children)."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def shm_regions(pids: list[int], proc: Path = Path("/proc")) -> set[Path]:
    """The python-backend shared-memory files these processes have mapped."""
    regions: set[Path] = set()
    for pid in pids:
        try:
            maps = (proc / str(pid) / "maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            path = line.split(maxsplit=5)[-1]
            if path.startswith(SHM_REGION_PREFIX):
                regions.add(Path(path.removesuffix(" (deleted)")))
    return regions


def stop_tritonserver(
    pid: int, timeout_s: float = 30.0, idle: Callable[[], bool] | None = None, idle_for_s: float = 3.0
) -> bool:
    """Stop a tritonserver and leave nothing behind: SIGTERM; then SIGKILL to it once all its model
    stubs have exited (the models are unloaded: Triton itself would exit at its next once-a-second
    check), or to it and its stubs after `timeout_s`, or once `idle()` has said True for
    `idle_for_s` while Triton still waits for
    in-flight requests (requests it counts but nobody serves: Triton 2.51 never releases a
    cancelled ensemble stream, docs/faults.md); `timeout_s` 0: SIGKILL at once. Then remove the
    shared-memory regions it had mapped. Returns False if no such process was running."""
    tree = process_tree(pid)
    regions = shm_regions(tree)
    if not _alive(pid):
        return False
    if timeout_s > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    idle_since: float | None = None
    stubs = tree[1:]  # process_tree lists the server first
    while time.monotonic() < deadline and _alive(pid):
        if stubs and not any(_alive(stub) for stub in stubs):
            break  # every model is unloaded; Triton would only wait for its next once-a-second check
        if idle is not None:
            idle_since = (idle_since or time.monotonic()) if _quietly(idle) else None
            if idle_since is not None and time.monotonic() - idle_since >= idle_for_s:
                break
        time.sleep(0.1)
    for member in tree:
        if _alive(member):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
    for region in regions:
        region.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _quietly(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def wait_ports_free(ports: list[int], timeout_s: float = 10.0) -> None:
    """Until every loopback port can be bound (a killed server's sockets are gone)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = False
        for port in ports:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    busy = True
        if not busy:
            return
        time.sleep(0.1)
