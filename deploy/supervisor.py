"""Supervision of the deployed tritonserver: notice a dead model stub or a dead server within
seconds, say so on a readiness endpoint, and recover without an operator.

Why it is needed (checked on Triton 2.51, docs/faults.md): a python model whose stub is killed is
never restarted, and Triton keeps reporting the model and the server ready while every request to it
fails ("Stub process ... is not healthy") or, for the decoupled scheduler, hangs. A crashed
tritonserver stays down.

What it does, every `interval_s`:
- the server process is gone → restart it (same repository, ports and key);
- a model has fewer stubs than its instance count → not ready, with the reason, then recover:
  models whose requests end by themselves when their stub dies (the LLM: the scheduler's stall
  timeout ends its streams; preprocessing and the predictor: they answer per call) are reloaded
  through model control (unload + load; a `load` of an unchanged model is a no-op); for the
  scheduler and postprocessing Triton never ends the requests that were on the dead stub and a
  reloaded scheduler does not serve again, so the server is restarted, which ends those requests.
  The same holds for the decoupled entry model `ltr_bls` (its clients' requests and the scheduler
  requests it had open would be left hanging), so it is not reloadable either. Such a restart waits
  `restart_grace_s` (3 s) after the dead stub is seen: `ltr_bls` ends the requests it relays from a
  dead scheduler with a retryable error within ~2 s (runtime/stub_watch.py), which a restart at once
  would cut off (their connections would close without a message).
- every model has its stubs, but the pipeline no longer answers (a stub deadlocked: Triton 2.51's
  python backend can deadlock a stub that streams decoupled BLS responses under load, all its
  threads waiting on each other, docs/faults.md) → a probe thread sends a request that every stage
  answers at once without queueing (`ltr_bls` with a negative temperature: preprocessing runs, the
  scheduler refuses it before its queue); no answer for `hang_after_s` → not ready, then restart.
Readiness (`GET /ready` on the health port): 200 {"ready": true} or 503 {"ready": false, "reason"}.
Prometheus metrics (`GET /metrics` on the same port): `ltr_supervisor_recoveries_total{action,ok}`
(reloads and restarts, done or failed) and `ltr_supervisor_ready` (docs/operations.md alerts on both).

    python -m deploy.supervisor --state-dir .deploy --health-port 8003   (started by `make deploy`)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping, Protocol

from deploy.config_checks import load_repository
from deploy.triton import (
    Ports,
    RepositoryAccess,
    TritonServer,
    internal_key_env,
    process_tree,
    shm_regions,
    stop_tritonserver,
    wait_ports_free,
)

log = logging.getLogger("deploy.supervisor")

# Models whose in-flight requests end by themselves when their stub dies, so a reload suffices.
# Any other model (ltr_scheduler, postprocessing, ltr_bls, a model added later) restarts the server.
RELOADABLE = frozenset({"tensorrt_llm", "length_predictor", "preprocessing"})
PORTS_FILE = "ports.json"
SUPERVISOR_PID_FILE = "supervisor.pid"
DEFAULT_HEALTH_PORT = 8003
PROBE_MODEL = "ltr_bls"  # the liveness probe's entry (DeployedServer.answers)
RECOVERIES = "ltr_supervisor_recoveries_total"  # metric families on the health port's /metrics
READY = "ltr_supervisor_ready"


class ServerHandle(Protocol):
    """What the supervisor needs from a server; tests supply a fake."""

    def alive(self) -> bool: ...

    def stub_counts(self) -> Mapping[str, int]: ...

    def reload(self, model: str) -> None: ...

    def restart(self) -> None: ...

    def answers(self, timeout_s: float) -> bool:
        """Whether the pipeline answered a liveness probe within `timeout_s` (any answer counts)."""
        ...


@dataclass
class Health:
    ready: bool = False
    reason: str = "starting"
    recoveries: list[dict] = field(default_factory=list)  # what happened, for the faults benchmark

    def as_json(self) -> dict:
        return {"ready": self.ready, "reason": self.reason, "recoveries": self.recoveries[-20:]}

    def exposition(self) -> str:
        """The Prometheus text format of RECOVERIES (every action and outcome, zeros included, so the
        series exist before the first recovery) and READY."""
        lines = [f"# HELP {RECOVERIES} Reloads of a dead model stub and restarts of the server, by outcome",
                 f"# TYPE {RECOVERIES} counter"]
        for action in ("reload", "restart"):
            for ok in (True, False):
                count = sum(1 for r in self.recoveries if r["action"] == action and r["ok"] is ok)
                lines.append(f'{RECOVERIES}{{action="{action}",ok="{str(ok).lower()}"}} {count}')
        lines += [f"# HELP {READY} 1 when every model stub runs and the pipeline answers", f"# TYPE {READY} gauge",
                  f"{READY} {int(self.ready)}"]
        return "\n".join(lines) + "\n"


# The supervisor's decisions, as pure functions of what it saw (mutation-tested with
# tests/deploy/test_supervisor.py; Supervisor.check_once only gathers the inputs and acts).

def dead_models(expected: Mapping[str, int], counts: Mapping[str, int]) -> list[str]:
    """What is dead: the models with fewer live stubs than instances, sorted (the reason's order)."""
    return sorted(m for m, n in expected.items() if counts.get(m, 0) < n)


def pipeline_hung(hang_after_s: float | None, now: float, last_answer_at: float) -> bool:
    """Whether no probe has been answered for longer than `hang_after_s` (None: never probed, never hung)."""
    return hang_after_s is not None and now - last_answer_at > hang_after_s


def recovery_for(dead: list[str]) -> str:
    """"reload" when every dead model's requests end by themselves (RELOADABLE), else "restart"."""
    return "reload" if all(model in RELOADABLE for model in dead) else "restart"


def restart_due(due_since: float, now: float, grace_s: float) -> bool:
    """Whether a restart first called for at `due_since` has waited its grace."""
    return now - due_since >= grace_s


class Supervisor:
    def __init__(
        self,
        server: ServerHandle,
        expected_stubs: Mapping[str, int],
        clock: Callable[[], float] = time.time,
        restart_grace_s: float = 0.0,
        hang_after_s: float | None = None,
    ) -> None:
        self.server = server
        self.expected = dict(expected_stubs)
        self.clock = clock
        self.restart_grace_s = restart_grace_s  # a dead stub's restart waits this long (module docstring)
        self.hang_after_s = hang_after_s  # no probe answered for this long: a hung stub (None: no probes)
        self.health = Health()
        self._restart_due_since: float | None = None
        self.last_answer_at = clock()

    def probe_once(self) -> None:
        """One liveness probe (the probe thread calls this in a loop)."""
        if self.hang_after_s is not None and self.server.answers(self.hang_after_s):
            self.last_answer_at = self.clock()

    def hung(self) -> bool:
        return pipeline_hung(self.hang_after_s, self.clock(), self.last_answer_at)

    def missing_stubs(self) -> list[str]:
        return dead_models(self.expected, self.server.stub_counts())

    def check_once(self) -> Health:
        """One look, and the recovery it calls for. Returns the health seen before recovering."""
        if not self.server.alive():
            self._restart_due_since = None
            self._not_ready("tritonserver is not running")
            self._recover("server", "restart", self.server.restart)
            return self.health
        dead = self.missing_stubs()
        if not dead and self.hung():
            self._not_ready(f"every stub runs, but the pipeline has not answered for {self.hang_after_s:g} s: "
                            "a stub hangs")
            self._recover("hung pipeline", "restart", self.server.restart)
            self.last_answer_at = self.clock()  # the new server's grace
            return self.health
        if not dead:
            self._restart_due_since = None
            if not self.health.ready:
                log.info("ready")
            self.health.ready, self.health.reason = True, ""
            return self.health
        self._not_ready("stub of " + ", ".join(dead) + " is not running")
        if recovery_for(dead) == "reload":
            for model in dead:
                self._recover(model, "reload", lambda m=model: self.server.reload(m))
        else:
            if self._restart_due_since is None:
                self._restart_due_since = self.clock()
            if restart_due(self._restart_due_since, self.clock(), self.restart_grace_s):
                self._restart_due_since = None
                self._recover(",".join(dead), "restart", self.server.restart)
        return self.health

    def _not_ready(self, reason: str) -> None:
        if self.health.ready or self.health.reason != reason:
            log.warning("not ready: %s", reason)
        self.health.ready, self.health.reason = False, reason

    def _recover(self, what: str, action: str, do: Callable[[], None]) -> None:
        started = self.clock()
        try:
            do()
            ok, error = True, None
        except Exception as exc:  # the next check tries again
            ok, error = False, repr(exc)
            log.exception("%s of %s failed", action, what)
        self.health.recoveries.append({"what": what, "action": action, "at": started, "ok": ok,
                                       "seconds": round(self.clock() - started, 3), "error": error})
        log.warning("%s %s: %s in %.1fs", action, what, "done" if ok else "FAILED", self.clock() - started)

    def run(self, interval_s: float, stop: threading.Event, probe_every_s: float = 5.0) -> None:
        def probe() -> None:
            while not stop.wait(probe_every_s):
                try:
                    self.probe_once()
                except Exception:
                    log.exception("liveness probe failed")

        if self.hang_after_s is not None:
            threading.Thread(target=probe, daemon=True, name="probe").start()
        while not stop.is_set():
            try:
                self.check_once()
            except Exception:
                log.exception("supervision check failed")
            stop.wait(interval_s)


def expected_stubs(repository: Path) -> dict[str, int]:
    """Stubs per python model: the sum of its instance groups' counts (a group without a count: 1)."""
    configs, _ = load_repository(repository)
    return {
        name: sum(group.count or 1 for group in config.instance_group) or 1
        for name, config in configs.items()
        if config.backend == "python"
    }


def stub_counts(server_pid: int, repository: Path, proc: Path = Path("/proc")) -> dict[str, int]:
    """Live python stubs of a server by model: its children whose command runs `<repo>/<model>/...`."""
    counts: dict[str, int] = {}
    prefix = str(Path(repository).resolve()) + "/"
    for pid in process_tree(server_pid, proc)[1:]:
        for arg in _command_line(proc / str(pid)):
            text = arg.decode(errors="replace")
            if text.startswith(prefix):
                model = text[len(prefix):].split("/", 1)[0]
                counts[model] = counts.get(model, 0) + 1
                break
    return counts


def _command_line(process: Path) -> list[bytes]:
    """A process's arguments. A stub whose main thread has exited while its other threads run (seen
    with the scheduler's stub after a restart) shows an empty cmdline: its threads' still tell."""
    for path in [process / "cmdline", *sorted(process.glob("task/*/cmdline"))]:
        try:
            args = path.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(args):
            return args
    return []


class DeployedServer:
    """The tritonserver `make deploy` started, found through its state directory."""

    def __init__(self, state: Path) -> None:
        self.state = Path(state)
        self.repository = (self.state / "model_repository").resolve()
        self.ports = Ports(**json.loads((self.state / PORTS_FILE).read_text()))
        self.access = RepositoryAccess.load(self.state)
        self.pid_file = self.state / "tritonserver.pid"
        self._stubs_seen: set[int] = set()  # a killed server can leave a stub running, orphaned
        self._regions_seen: set[Path] = set()  # its shared memory, which only its own stop would remove

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
            status = Path(f"/proc/{self.pid}/stat").read_text().rsplit(") ", 1)[1]
            return not status.startswith("Z")
        except (OSError, ValueError, IndexError):
            return False

    def stub_counts(self) -> Mapping[str, int]:
        tree = process_tree(self.pid)
        self._stubs_seen = set(tree[1:]) or self._stubs_seen
        self._regions_seen = shm_regions(tree) or self._regions_seen
        return stub_counts(self.pid, self.repository)

    def _kill_orphaned_stubs(self) -> None:
        """Stubs of a server that died: still ours if their command still names our repository."""
        prefix = (str(self.repository) + "/").encode()
        for pid in self._stubs_seen:
            if any(arg.startswith(prefix) for arg in _command_line(Path(f"/proc/{pid}"))):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._stubs_seen = set()

    def reload(self, model: str) -> None:
        for action in ("unload", "load"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.ports.http}/v2/repository/models/{model}/{action}",
                data=b"{}", headers={"Content-Type": "application/json", **self.access.headers()},
            )
            urllib.request.urlopen(request, timeout=60).close()

    def answers(self, timeout_s: float) -> bool:
        """A request to the default entry that each stage answers without queueing: preprocessing
        tokenizes it, and the scheduler refuses its negative temperature before its queue. Any
        HTTP answer counts; only silence (a hung stub) does not. A refused connection counts as an
        answer: a dead or starting server is the process check's business."""
        body = json.dumps({"text_input": "liveness probe", "max_tokens": 1, "temperature": -1.0}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports.http}/v2/models/{PROBE_MODEL}/generate",
                                         data=body, headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=timeout_s).close()
        except urllib.error.HTTPError:
            return True
        except TimeoutError:
            return False
        except urllib.error.URLError as exc:
            return not isinstance(exc.reason, TimeoutError)
        return True

    def restart(self) -> None:
        """Kill what is left at once (the requests on a dead stub never end anyway), clean its shared
        memory, start a fresh server on the same ports."""
        if self.alive():
            stop_tritonserver(self.pid, timeout_s=0)
        self._kill_orphaned_stubs()
        # Only the dead server's own regions: a machine-wide sweep of "unmapped" regions once removed
        # live servers' regions, which their stubs reopen by name.
        for region in self._regions_seen:
            region.unlink(missing_ok=True)
        self._regions_seen = set()
        wait_ports_free([self.ports.http, self.ports.grpc, self.ports.metrics])
        server = TritonServer(self.repository, self.state, self.ports, repository_access=self.access,
                              env=internal_key_env(self.state))
        server.start(timeout_s=120, detach=True)
        self.pid_file.write_text(str(server.process.pid))


def serve_health(supervisor: Supervisor, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            health = supervisor.health
            if self.path.startswith("/metrics"):
                status, body, content_type = 200, health.exposition().encode(), "text/plain; version=0.0.4"
            else:
                status = 200 if self.path.startswith("/live") or health.ready else 503
                body, content_type = json.dumps(health.as_json()).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="health").start()
    return httpd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--health-port", type=int, default=DEFAULT_HEALTH_PORT)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--hang-after", type=float, default=15.0,
                        help="restart when the liveness probe has had no answer for this long (0: no probe)")
    parser.add_argument("--restart-grace", type=float, default=3.0,
                        help="seconds a restart for a dead stub waits, for ltr_bls to end its requests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = DeployedServer(Path(args.state_dir))
    expected = expected_stubs(server.repository)
    supervisor = Supervisor(server, expected, restart_grace_s=args.restart_grace,
                            hang_after_s=args.hang_after if args.hang_after > 0 and PROBE_MODEL in expected else None)
    serve_health(supervisor, args.health_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor.run(args.interval, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
