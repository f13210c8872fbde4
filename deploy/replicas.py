"""Several tritonservers on loopback ports behind a real load balancer (HAProxy, Debian's package).

    python -m deploy.replicas start --replicas 2 --port 8080    # make deploy-replicas
    python -m deploy.replicas drain r2                          # graceful stop of one replica
    python -m deploy.replicas stop                              # make stop-replicas

HAProxy rather than nginx: it balances least-connections, checks each replica's readiness
(`/v2/health/ready`) actively, retries a request that found no connection or an empty answer on the
other replica, and takes a server out of rotation at run time through its admin socket (`drain`:
requests in flight finish, no new ones arrive), which is what a graceful stop needs here. A graceful
stop of a replica is what Kubernetes does with a pod (deploy/k8s): leave the rotation first, let the
requests in flight finish, then SIGTERM. Triton's own SIGTERM handling is the second half of that;
the draining on SIGTERM inside the server (issue "Faults, abandoned requests and hostile input") is
not built yet, which is why the balancer drains first.

Only HTTP is balanced (the ensemble's generate / generate_stream); everything binds 127.0.0.1.
State (rendered repository, per-replica logs, haproxy.cfg, PIDs) lives in `.deploy/replicas/`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from deploy.local import deployment_overrides
from deploy.repository import render_repository
from deploy.triton import Ports, TritonServer, free_ports, stop_pid
from repo_paths import REPO_ROOT

DEFAULT_STATE_DIR = REPO_ROOT / ".deploy" / "replicas"
BACKEND = "triton"
HEALTH_PATH = "/v2/health/ready"


@dataclass(frozen=True)
class Backend:
    name: str
    address: str  # host:port of the replica's HTTP endpoint


def haproxy_config(listen_port: int, backends: Sequence[Backend], stats_socket: Path,
                   check_interval_ms: int = 500, retries: int = 3) -> str:
    """haproxy.cfg for `backends` behind 127.0.0.1:`listen_port`.

    leastconn: a streaming request holds its connection for the whole generation, so open
    connections are the requests in flight on each replica. A replica whose readiness check fails
    once leaves the rotation; retries go to another replica (redispatch) when a connection is refused
    or closed before any answer, or a 503 comes back. Timeouts are long: an answer may stream for minutes.
    Server connections close after each answer (http-server-close): a stopping tritonserver waits for
    its open connections, idle ones included, until its exit timeout.
    """
    if not backends:
        raise ValueError("at least one backend")
    servers = "\n".join(f"    server {b.name} {b.address} check" for b in backends)
    return f"""# Rendered by deploy/replicas.py; do not edit.
global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 900s
    timeout server 900s
    timeout http-request 30s
    timeout queue 60s
    retries {retries}
    option redispatch 1
    option http-server-close
    retry-on conn-failure empty-response 503

frontend ltr
    bind 127.0.0.1:{listen_port}
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    option httpchk GET {HEALTH_PATH}
    http-check expect status 200
    default-server inter {check_interval_ms} fall 1 rise 2
{servers}
"""


def parse_show_stat(text: str) -> dict[str, dict[str, str]]:
    """HAProxy's `show stat` CSV -> {server name: its columns}, servers of the backend only."""
    body = text.lstrip("# ")
    rows = csv.DictReader(io.StringIO(body))
    return {row["svname"]: row for row in rows
            if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")}


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise FileNotFoundError("no haproxy: `apt-get install -y haproxy` (make deploy-replicas does it)")
    return found


class HaproxyAdmin:
    """HAProxy's runtime API on its admin socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_state(self, server: str, state: str) -> None:
        """`ready`, `drain` (no new requests, those in flight go on) or `maint`."""
        answer = self.command(f"set server {BACKEND}/{server} state {state}")
        if answer.strip():
            raise RuntimeError(f"haproxy: {answer.strip()}")

    def servers(self) -> dict[str, dict[str, str]]:
        return parse_show_stat(self.command("show stat"))


@dataclass
class StopReport:
    replica: str
    drained: bool
    in_flight_at_drain: int
    drain_s: float
    in_flight_at_sigterm: int
    sigterm_to_exit_s: float


class LocalReplicas:
    """N tritonservers (one rendered repository) and one HAProxy in front of them."""

    def __init__(self, state_dir: Path, replicas: int = 2, listen_port: int | None = None,
                 overrides: dict[str, dict[str, str]] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.count = replicas
        self.listen_port = listen_port or free_ports(1)[0]
        self.overrides = overrides or {}
        self.servers: dict[str, TritonServer] = {}
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.admin = HaproxyAdmin(self.state_dir / "haproxy.sock")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def start(self, detach: bool = False, timeout_s: float = 180.0) -> "LocalReplicas":
        haproxy = haproxy_binary()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        repo = render_repository(self.state_dir / "model_repository", self.overrides)
        try:
            for i in range(1, self.count + 1):
                server = TritonServer(repo, self.state_dir / f"r{i}", Ports.free())
                self.servers[f"r{i}"] = server.start(timeout_s=timeout_s, detach=detach)
            config = self.state_dir / "haproxy.cfg"
            backends = [Backend(name, s.http_url) for name, s in self.servers.items()]
            config.write_text(haproxy_config(self.listen_port, backends, self.admin.socket_path))
            subprocess.run([haproxy, "-c", "-q", "-f", str(config)], check=True)
            log = open(self.state_dir / "haproxy.log", "ab")
            self.haproxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=detach)
            log.close()
            self._wait_all_up(timeout_s=30)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_all_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.haproxy is not None and self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy exited: {(self.state_dir / 'haproxy.log').read_text()[-2000:]}")
            try:
                if all(row["status"] == "UP" for row in self.admin.servers().values()):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("haproxy did not see every replica UP")

    def in_flight(self, replica: str) -> int:
        return int(self.admin.servers()[replica]["scur"] or 0)

    def stop_replica(self, replica: str, drain: bool = True, drain_timeout_s: float = 300.0) -> StopReport:
        """Graceful stop: out of the balancer's rotation, wait for its requests in flight (if `drain`),
        then SIGTERM (Triton unloads and exits; SIGKILL after 30 s). Without `drain`, SIGTERM at once:
        the balancer's readiness check and retries are all that protect the requests."""
        t0 = time.monotonic()
        at_drain = self.in_flight(replica)
        if drain:
            self.admin.set_state(replica, "drain")
            deadline = t0 + drain_timeout_s
            while self.in_flight(replica) > 0 and time.monotonic() < deadline:
                time.sleep(0.1)
        drain_s = time.monotonic() - t0
        at_sigterm = self.in_flight(replica)
        t1 = time.monotonic()
        self.servers[replica].stop()
        return StopReport(replica, drain, at_drain, round(drain_s, 2), at_sigterm, round(time.monotonic() - t1, 2))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per replica: requests sent to it, 2xx/5xx answers, retries and redispatches, errors."""
        columns = {"requests": "stot", "http_2xx": "hrsp_2xx", "http_5xx": "hrsp_5xx", "retries": "wretr",
                   "redispatches": "wredis", "connection_errors": "econ", "response_errors": "eresp"}
        return {name: {key: int(row.get(col) or 0) for key, col in columns.items()}
                for name, row in self.admin.servers().items()}

    def stop(self) -> None:
        if self.haproxy is not None:
            stop_pid(self.haproxy.pid, timeout_s=5)
            self.haproxy.wait(timeout=5)
            self.haproxy = None
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> "LocalReplicas":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- make deploy-replicas / make stop-replicas: the same, in the background, with PID files ---------

def _state_file(state_dir: Path) -> Path:
    return Path(state_dir) / "replicas.json"


def start(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    if _state_file(state_dir).exists():
        print("replicas already running; run `make stop-replicas` first")
        return 1
    overrides = deployment_overrides(args.policy, "timing", args.set)
    cluster = LocalReplicas(state_dir, args.replicas, args.port, overrides).start(detach=True)
    state = {"haproxy": cluster.haproxy.pid, "url": cluster.url,
             "replicas": {name: {"pid": s.process.pid, "http": s.http_url, "grpc": s.grpc_url,
                                 "metrics": s.metrics_url} for name, s in cluster.servers.items()}}
    _state_file(state_dir).write_text(json.dumps(state, indent=2))
    print(f"{len(cluster.servers)} tritonservers behind HAProxy (least connections) at {cluster.url}")
    for name, replica in state["replicas"].items():
        print(f"  {name}: http {replica['http']}  grpc {replica['grpc']}  pid {replica['pid']}")
    example = json.dumps({"text_input": "Hi", "max_tokens": 8})
    print(f"  e.g. curl -s {cluster.url}/v2/models/ltr_bls/generate -d '{example}'")
    return 0


def drain(args: argparse.Namespace) -> int:
    state = json.loads(_state_file(Path(args.state_dir)).read_text())
    admin = HaproxyAdmin(Path(args.state_dir) / "haproxy.sock")
    admin.set_state(args.replica, "drain")
    while int(admin.servers()[args.replica]["scur"] or 0) > 0:
        time.sleep(0.1)
    stop_pid(state["replicas"][args.replica]["pid"])
    print(f"{args.replica} drained and stopped; the others serve on")
    return 0


def stop(args: argparse.Namespace) -> int:
    path = _state_file(Path(args.state_dir))
    if not path.exists():
        print("no replicas running from this checkout")
        return 0
    state = json.loads(path.read_text())
    pids = [state["haproxy"]] + [r["pid"] for r in state["replicas"].values()]
    for pid in pids:
        if _running_pid_alive(pid):
            stop_pid(pid)
    path.unlink()
    print(f"stopped HAProxy and {len(state['replicas'])} tritonservers")
    return 0


def _running_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    from scheduler import POLICY_NAMES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    start_p = sub.add_parser("start", help="start N tritonservers and HAProxy in front of them (background)")
    start_p.add_argument("--replicas", type=int, default=2)
    start_p.add_argument("--port", type=int, default=8080, help="the balancer's HTTP port on 127.0.0.1")
    start_p.add_argument("--policy", default="ltr", choices=POLICY_NAMES)
    start_p.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE")
    drain_p = sub.add_parser("drain", help="take one replica out of rotation, wait for its requests, stop it")
    drain_p.add_argument("replica", help="r1, r2, ...")
    sub.add_parser("stop", help="stop the balancer and every replica, by PID")
    args = parser.parse_args(argv)
    return {"start": start, "drain": drain, "stop": stop}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
