"""`make deploy` / `make stop`: one background tritonserver serving the ensemble on 127.0.0.1, behind
the door (door/: what clients reach on HTTP_PORT/GRPC_PORT; Triton listens on private loopback ports).

    python -m deploy start --policy ltr --llm-mode timing --http-port 8000 ...
    python -m deploy stop

State (rendered model repository, backend folder, PID file, server log) lives in `.deploy/`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import get_args

from deploy.door import Door
from deploy.openai_frontend import DEFAULT_PORT as OPENAI_DEFAULT_PORT
from deploy.openai_frontend import OpenAIFrontend
from deploy.repository import render_repository, source_parameters
from deploy.retrain_timer import RETRAIN_TIMER_PID_FILE, parse_interval
from deploy.supervisor import DEFAULT_HEALTH_PORT, PORTS_FILE, SUPERVISOR_PID_FILE
from deploy.triton import (
    Ports,
    RepositoryAccess,
    TritonServer,
    free_ports,
    internal_key_env,
    stop_pid,
    stop_tritonserver,
)
from engine.lengths import LengthTable
from engine.settings import EngineSettings, Mode
from repo_paths import REPO_ROOT
from runtime import scheduler_metrics
from runtime.internal_key import write_key
from runtime.drain import begin_drain
from scheduler import POLICY_NAMES

DEFAULT_STATE_DIR = REPO_ROOT / ".deploy"
OPENAI_PID_FILE = "openai_server.pid"
DOOR_PID_FILE = "door.pid"
DRAIN_FILE = "draining"  # graceful stop: the grace deadline, read by the scheduler (runtime/drain.py)
METRICS_URL_FILE = "metrics_url"
DEFAULT_GRACE_S = 30.0


def parse_sets(pairs: list[str]) -> dict[str, dict[str, str]]:
    """`model.param=value` strings → overrides."""
    overrides: dict[str, dict[str, str]] = {}
    for pair in pairs:
        target, sep, value = pair.partition("=")
        model, dot, param = target.partition(".")
        if not (sep and dot and model and param):
            raise SystemExit(f"--set expects model.parameter=value, got {pair!r}")
        overrides.setdefault(model, {})[param] = value
    return overrides


def deployment_overrides(policy: str, llm_mode: str, sets: list[str]) -> dict[str, dict[str, str]]:
    overrides = {"ltr_scheduler": {"policy": policy}, "tensorrt_llm": {"mode": llm_mode}}
    for model, params in parse_sets(sets).items():
        overrides.setdefault(model, {}).update(params)
    return overrides


def answer_lengths(overrides: dict[str, dict[str, str]]) -> tuple[LengthTable | None, str]:
    """Where the stand-in ends answers (the length table, or None) and a line saying so, for the banner."""
    params = {**source_parameters("tensorrt_llm"), **overrides.get("tensorrt_llm", {})}
    return EngineSettings.from_parameters(params, environ={}).load_lengths()


def request_log_path(overrides: dict[str, dict[str, str]]) -> str:
    """The scheduler's `request_log` parameter as deployed ("" when the log is off)."""
    return {**source_parameters("ltr_scheduler"), **overrides.get("ltr_scheduler", {})}["request_log"]


def predictor_line(repo: Path, overrides: dict[str, dict[str, str]]) -> str:
    """Which predictor version scores requests, and where the request log goes, for the banner."""
    from runtime.predictor_version import version_folders

    versions = version_folders(repo / "length_predictor")
    request_log = request_log_path(overrides)
    return (f"length predictor version {versions[0] if versions else '?'} "
            f"(`make retrain LOG=...` ships a new one live); request log: {request_log or 'off (REQUEST_LOG=path)'}")


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(args: argparse.Namespace) -> int:
    state = Path(args.state_dir)
    pid_file = state / "tritonserver.pid"
    if (pid := _running_pid(pid_file)) is not None:
        print(f"tritonserver already running (pid {pid}); run `make stop` first", file=sys.stderr)
        return 1
    overrides = deployment_overrides(args.policy, args.llm_mode, args.set)
    request_log = request_log_path(overrides)
    if args.retrain_every:
        parse_interval(args.retrain_every)  # a bad interval fails before anything starts
        if not request_log:
            print("RETRAIN_EVERY needs the request log: add REQUEST_LOG=path", file=sys.stderr)
            return 1
    (state / DRAIN_FILE).unlink(missing_ok=True)
    overrides.setdefault("ltr_scheduler", {}).setdefault("drain_file", str((state / DRAIN_FILE).resolve()))
    repo = render_repository(state / "model_repository", overrides)
    # explicit model control behind a key (a new predictor version without a restart: deploy/swap.py)
    access = RepositoryAccess.generate()
    key_file = access.save(state)
    # Triton on private loopback ports (0: free ones, kept in ports.json for the supervisor's restarts);
    # clients reach the door on --http-port/--grpc-port.
    private = iter(free_ports(2))
    triton_ports = Ports(args.triton_http_port or next(private), args.triton_grpc_port or next(private),
                         args.metrics_port)
    write_key(state)  # the internal models' second wall (runtime/internal_key.py)
    server = TritonServer(repo, state, triton_ports, repository_access=access, env=internal_key_env(state))
    t0 = time.monotonic()
    server.start(timeout_s=args.timeout, detach=True)
    pid_file.write_text(str(server.process.pid))
    (state / METRICS_URL_FILE).write_text(server.metrics_url)
    (state / PORTS_FILE).write_text(json.dumps(vars(server.ports)))
    door = Door(server, state, http_port=args.http_port, grpc_port=args.grpc_port)
    frontend = OpenAIFrontend(server.grpc_url, state, port=args.openai_port)
    try:
        door.start(detach=True)
        (state / DOOR_PID_FILE).write_text(str(door.process.pid))
        frontend.start(detach=True)
    except RuntimeError as exc:  # all run or none
        print(exc, file=sys.stderr)
        if door.process is not None:
            stop_pid(door.process.pid)
        (state / DOOR_PID_FILE).unlink(missing_ok=True)
        stop_pid(server.process.pid)
        pid_file.unlink(missing_ok=True)
        return 1
    (state / OPENAI_PID_FILE).write_text(str(frontend.process.pid))
    supervisor = start_supervisor(state, args.health_port)
    retrain_line = "retraining: on demand (`make retrain`; RETRAIN_EVERY=6h retrains on a timer)"
    if args.retrain_every:
        timer = start_background(state, "retrain_timer", RETRAIN_TIMER_PID_FILE, [
            "deploy.retrain_timer", "--every", args.retrain_every, "--log", request_log,
            "--state-dir", str(state), "--http-url", server.http_url])
        retrain_line = (f"retraining: every {args.retrain_every} from the request log (pid {timer}; "
                        f"reports {state / 'retrain_timer.jsonl'}, log {state / 'retrain_timer.log'})")
    print(
        f"tritonserver ready in {time.monotonic() - t0:.1f}s (pid {server.process.pid}, policy {args.policy}, "
        f"LLM stand-in mode {args.llm_mode})\n"
        f"  HTTP    http://{door.http_url}   e.g. POST /v2/models/ltr_bls/generate_stream (or ensemble); "
        f"the door (pid {door.process.pid}, log {door.log_path}): ltr_bls and ensemble only\n"
        f"  gRPC    {door.grpc_url}   (the door)\n"
        f"  metrics {server.metrics_url}   (also GET http://{door.http_url}/metrics)\n"
        f"  OpenAI  {frontend.base_url}   (pid {frontend.process.pid}; metrics {frontend.url}/metrics, "
        f"log {frontend.log_path})\n"
        f"  log     {server.log_path}\n"
        f"  ready   http://127.0.0.1:{args.health_port}/ready   (supervisor pid {supervisor}: restarts dead "
        f"stubs and a crashed server; log {state / 'supervisor.log'})\n"
        f"  {answer_lengths(overrides)[1]}\n"
        f"  {predictor_line(repo, overrides)}\n"
        f"  {retrain_line}\n"
        f"  Triton itself: private, HTTP {server.http_url}, gRPC {server.grpc_url} (for this host's tools: "
        f"the repository API with header {access.header} and the key in {key_file})"
    )
    return 0


def start_supervisor(state: Path, health_port: int) -> int:
    """deploy/supervisor.py beside the server."""
    return start_background(state, "supervisor", SUPERVISOR_PID_FILE, [
        "deploy.supervisor", "--state-dir", str(state), "--health-port", str(health_port)])


def start_background(state: Path, name: str, pid_file: str, module_args: list[str]) -> int:
    """`python -m <module_args>` in its own session, logging to `<state>/<name>.log`; its PID goes to
    the state dir, where `stop` finds it."""
    from deploy.triton import server_env

    with open(state / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=server_env(), start_new_session=True,
        )
    (state / pid_file).write_text(str(process.pid))
    return process.pid


def scheduler_busy(metrics_text: str) -> float:
    """Requests the scheduler still holds (waiting + generating), from Triton's metrics page."""
    names = (scheduler_metrics.WAITING, scheduler_metrics.INFLIGHT)
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines() if line.startswith(names))


def _scheduler_idle(state: Path) -> bool:
    url = (state / METRICS_URL_FILE).read_text().strip()
    with urllib.request.urlopen(url, timeout=1) as resp:
        return scheduler_busy(resp.read().decode()) == 0


def stop(args: argparse.Namespace) -> int:
    """Graceful: new and waiting requests get a retryable "shutting down" at once, generating ones
    may finish within `--grace` seconds and are then ended with that error; the server exits as
    soon as nothing is left, and nothing (processes, shared memory) is left behind."""
    state = Path(args.state_dir)
    for helper in (SUPERVISOR_PID_FILE, RETRAIN_TIMER_PID_FILE):  # first: they would restart or swap
        if (helper_pid := _running_pid(state / helper)) is not None:
            stop_pid(helper_pid, 5)
        (state / helper).unlink(missing_ok=True)
    triton_pid = _running_pid(state / "tritonserver.pid")
    if triton_pid is not None:
        begin_drain(state / DRAIN_FILE, args.grace)
    openai_pid_file = Path(args.state_dir) / OPENAI_PID_FILE
    openai_stop = None
    if (openai_pid := _running_pid(openai_pid_file)) is not None:  # stops beside tritonserver
        openai_stop = threading.Thread(target=stop_pid, args=(openai_pid,))
        openai_stop.start()
    pid_file = Path(args.state_dir) / "tritonserver.pid"
    pid = _running_pid(pid_file)
    t0 = time.monotonic()
    if pid is not None:
        stop_tritonserver(pid, args.grace + 5, idle=lambda: _scheduler_idle(state))
    if openai_stop is not None:
        openai_stop.join()
        print(f"stopped the OpenAI server (pid {openai_pid})")
    openai_pid_file.unlink(missing_ok=True)
    door_pid_file = state / DOOR_PID_FILE  # after Triton: the door relays the drain's answers to the end
    if (door_pid := _running_pid(door_pid_file)) is not None:
        stop_pid(door_pid, 5)
        print(f"stopped the door (pid {door_pid})")
    door_pid_file.unlink(missing_ok=True)
    if pid is None:
        print("no tritonserver running from this checkout")
        pid_file.unlink(missing_ok=True)
        return 0
    pid_file.unlink(missing_ok=True)
    (state / DRAIN_FILE).unlink(missing_ok=True)
    print(f"stopped tritonserver (pid {pid}) in {time.monotonic() - t0:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    sub = parser.add_subparsers(dest="command", required=True)
    start_p = sub.add_parser("start", help="render the repository and start tritonserver in the background")
    start_p.add_argument("--policy", default="ltr", choices=POLICY_NAMES)
    start_p.add_argument("--llm-mode", default="timing", choices=get_args(Mode), help="CPU stand-in LLM mode")
    start_p.add_argument("--http-port", type=int, default=8000, help="the door's HTTP port (what clients reach)")
    start_p.add_argument("--grpc-port", type=int, default=8001, help="the door's gRPC port (what clients reach)")
    start_p.add_argument("--metrics-port", type=int, default=8002, help="Triton's metrics (read-only, loopback)")
    start_p.add_argument("--triton-http-port", type=int, default=0, help="Triton's private HTTP port (0: a free one)")
    start_p.add_argument("--triton-grpc-port", type=int, default=0, help="Triton's private gRPC port (0: a free one)")
    start_p.add_argument("--openai-port", type=int, default=OPENAI_DEFAULT_PORT, help="the OpenAI-compatible server")
    start_p.add_argument("--health-port", type=int, default=DEFAULT_HEALTH_PORT,
                         help="the supervisor's readiness endpoint (GET /ready)")
    start_p.add_argument("--set", action="append", default=[], metavar="MODEL.PARAM=VALUE",
                         help="override a config.pbtxt parameter (repeatable)")
    start_p.add_argument("--timeout", type=float, default=180.0)
    start_p.add_argument("--retrain-every", default="", metavar="INTERVAL",
                         help="retrain, judge and ship from the request log on a timer, e.g. 6h (deploy/retrain_timer.py)")
    stop_p = sub.add_parser("stop", help="stop the server started by `start`, by its PID, gracefully")
    stop_p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S,
                        help="seconds generating requests may take to finish before they are ended")
    args = parser.parse_args(argv)
    return start(args) if args.command == "start" else stop(args)


if __name__ == "__main__":
    raise SystemExit(main())
