"""Issue-13 fault injection against a real deployment (`python -m deploy start`, its supervisor and
the OpenAI server), bounded in time: hostile input, overload, a kill -9 of every model's stub and of
tritonserver under load, crash payloads sent to the public door, and a graceful stop.

    python -m benchmarks.faults          # (make faults) writes results/faults.json and .md

Per probe: requests lost (no answer at all), hung (no answer within the client timeout), wrongly
answered (a 2xx for a bad request, a non-retryable error for overload); time to detect (the
supervisor's /ready turns 503) and to recover (/ready 200 and a request served) after each kill;
phantom in-flight requests Triton still counts at the stop; RSS of every process before and after.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from deploy.triton import free_ports
from repo_paths import BUILD_DIR, REPO_ROOT, RESULTS_DIR

CLIENT_TIMEOUT_S = 40.0
OVERRIDES = [
    "ltr_scheduler.max_inflight=2", "ltr_scheduler.max_queue_size=8", "ltr_scheduler.llm_stall_timeout_s=5",
    "ltr_bls.stall_timeout_s=8",
    "tensorrt_llm.length_table=",  # answers run to max_tokens: the probes choose the lengths
]
BAD_REQUESTS = {
    "NaN temperature": {"temperature": float("nan")},
    "negative temperature": {"temperature": -0.5},
    "negative top_k": {"top_k": -3},
    "top_p 1.5": {"top_p": 1.5},
    "out-of-vocabulary end_id": {"end_id": 10**6},
    "100,000 stop words": {"stop_words": ["x"] * 100_000},
    "a 1 KB stop word": {"stop_words": ["y" * 1024]},
    "5 MB prompt": {"text_input": "z" * 5_000_000},
    "max_tokens 0": {"max_tokens": 0},
    "max_tokens 2^31+8 (wraps negative)": {"max_tokens": 2**31 + 8},
}


ENTRY_MODELS = ("ltr_bls", "ensemble")  # Triton entry points with the same interface; ltr_bls is the default


class Deployment:
    def __init__(self, state: Path, overrides: list[str] = OVERRIDES, model: str = ENTRY_MODELS[0]) -> None:
        self.state = state
        self.overrides = overrides
        self.model = model  # the entry point the probes' Triton clients call
        self.http, self.grpc, self.metrics, self.openai, self.health = free_ports(5)

    def deploy(self, *args: str) -> str:
        cmd = [sys.executable, "-m", "deploy", "--state-dir", str(self.state), *args]
        return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout

    def start(self) -> None:
        sets = [a for s in self.overrides for a in ("--set", s)]
        out = self.deploy("start", "--http-port", str(self.http), "--grpc-port", str(self.grpc), "--metrics-port",
                          str(self.metrics), "--openai-port", str(self.openai), "--health-port", str(self.health), *sets)
        if "ready" not in out:
            raise SystemExit(f"deploy failed:\n{out}\n{(self.state / 'tritonserver.log').read_text()[-3000:]}")

    def pid(self, name: str) -> int:
        return int((self.state / name).read_text())

    def readiness(self, timeout_s: float = 2.0) -> tuple[bool, dict]:
        """The supervisor's readiness answer: (ready, its JSON body: reason, recoveries)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health}/ready", timeout=timeout_s) as resp:
                return True, json.loads(resp.read())
        except urllib.error.HTTPError as err:  # 503 while not ready: the same body
            return False, json.loads(err.read() or b"{}")

    def ready(self) -> tuple[bool, str]:
        try:
            ready, body = self.readiness()
        except OSError as exc:
            return False, f"supervisor unreachable: {exc}"
        return ready, "" if ready else body.get("reason", "")

    def generate(self, body: dict, stream: bool = True, timeout: float = CLIENT_TIMEOUT_S) -> dict:
        """One request; outcome ok | error (with status and message) | hung | lost (connection ended without an answer)."""
        body = {"text_input": "Tell me a story.", "max_tokens": 30, **body}
        if stream:
            body.setdefault("stream", True)
        path = "generate_stream" if stream else "generate"
        data = json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}/v2/models/{self.model}/{path}", data=data,
                                         headers={"Content-Type": "application/json"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                text = resp.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
        except TimeoutError:
            return {"outcome": "hung", "seconds": round(time.monotonic() - started, 2)}
        except (OSError, http.client.HTTPException) as exc:  # the connection ended without an answer
            return {"outcome": "lost", "seconds": round(time.monotonic() - started, 2), "detail": repr(exc)[:160]}
        events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")] if stream else [json.loads(text)]
        error = next((e["error"] for e in events if "error" in e), None)
        seconds = round(time.monotonic() - started, 2)
        if error is not None:
            return {"outcome": "error", "message": error[:200], "seconds": seconds}
        final = events[-1] if events else {}
        if not final.get("finish_reason"):
            return {"outcome": "lost", "seconds": seconds, "detail": "stream ended without a final response"}
        return {"outcome": "ok", "seconds": seconds, "finish_reason": final["finish_reason"]}


def rss_by_process(root_pids: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for root in root_pids:
        try:
            procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                cmd = proc.cmdline()
                name = next((part.split("/")[-3] for part in cmd if part.endswith("/model.py")), None) or Path(cmd[0]).name
                if "-m" in cmd:
                    name = cmd[cmd.index("-m") + 1]
                out[f"{name} ({proc.pid})"] = round(proc.memory_info().rss / 2**20, 1)
            except (psutil.Error, IndexError):
                continue
    return out


def parallel(calls: list) -> list:
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def probe_bad_input(d: Deployment) -> dict:
    rows = {}
    for name, body in BAD_REQUESTS.items():
        result = d.generate(body, stream=False, timeout=60)
        result["right"] = result["outcome"] == "error"
        rows[name] = result
    alive = d.generate({"max_tokens": 4}, stream=False)["outcome"] == "ok"
    return {"requests": rows, "wrongly_answered": sum(not r["right"] for r in rows.values()), "server_alive_after": alive}


def probe_overload(d: Deployment, n: int = 40) -> dict:
    results = parallel([lambda: d.generate({"max_tokens": 200}) for _ in range(n)])
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("ok", "error", "hung", "lost")}
    overloaded = sum("overloaded" in r.get("message", "") for r in results)
    # ltr_bls's retryable error when Triton dropped the scheduler's refusal (runtime/entry_decision.py)
    refusal_lost = sum("without an answer" in r.get("message", "") for r in results)
    return {"requests": n, **counts, "overloaded_errors": overloaded, "refusal_lost_errors": refusal_lost,
            "wrongly_answered": counts["error"] - overloaded - refusal_lost}


def kill_stub(d: Deployment, model: str) -> dict:
    """kill -9 a model's stub with requests in flight; their fate, detection and recovery times."""
    repo = (d.state / "model_repository").resolve()
    inflight: list = []
    threads = [threading.Thread(target=lambda: inflight.append(d.generate({"max_tokens": 300}))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server = d.pid("tritonserver.pid")
    victims = []
    for pid in psutil.Process(server).children(recursive=True):
        try:
            if any(f"{repo}/{model}/" in part for part in pid.cmdline()):
                victims.append(pid.pid)
        except psutil.Error:
            pass
    killed_at = time.monotonic()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    return _watch_recovery(d, killed_at, threads, inflight, extra={"model": model, "killed_pids": victims})


def kill_server(d: Deployment) -> dict:
    inflight: list = []
    threads = [threading.Thread(target=lambda: inflight.append(d.generate({"max_tokens": 300}))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    killed_at = time.monotonic()
    os.kill(d.pid("tritonserver.pid"), signal.SIGKILL)
    return _watch_recovery(d, killed_at, threads, inflight, extra={"model": "tritonserver (kill -9)"})


def _watch_recovery(d: Deployment, killed_at: float, threads: list, inflight: list, extra: dict) -> dict:
    detected = recovered = None
    reason = ""
    during = {"ok": 0, "error": 0, "hung": 0, "lost": 0}
    while time.monotonic() - killed_at < 60:
        ready, why = d.ready()
        if not ready and detected is None:
            detected, reason = time.monotonic() - killed_at, why
        if ready and detected is not None:
            probe = d.generate({"max_tokens": 4}, timeout=10)
            if probe["outcome"] == "ok":
                recovered = time.monotonic() - killed_at
                break
        elif detected is not None:
            during[d.generate({"max_tokens": 4}, timeout=10)["outcome"]] += 1  # what arrives meanwhile
        time.sleep(0.25)
    for t in threads:
        t.join()
    outcomes = [r["outcome"] for r in inflight]
    return {
        **extra,
        "detect_s": None if detected is None else round(detected, 2), "not_ready_reason": reason,
        "recover_s": None if recovered is None else round(recovered, 2),
        "inflight": {k: outcomes.count(k) for k in ("ok", "error", "hung", "lost")},
        "inflight_errors": sorted({r.get("message", r.get("detail", ""))[:120] for r in inflight if r["outcome"] != "ok"}),
        "arriving_meanwhile": during,
    }


def send_chunked(sock: socket.socket, path: str, body: bytes, chunk: int = 65536) -> OSError | None:
    """POST `body` to `path` with chunked transfer encoding, `chunk` bytes a chunk (the shape of the
    public Triton 2.51 crash payload). The OSError that ended the sending (a server that stops
    reading once it has answered), or None when all of it went out."""
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    try:
        for start in range(0, len(body), chunk):
            piece = body[start:start + chunk]
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    except OSError as exc:
        return exc
    return None


def probe_door(d: Deployment) -> dict:
    """The crash payloads of the issue, sent to the public door (the OpenAI server)."""
    results = {}
    with socket.create_connection(("127.0.0.1", d.openai), timeout=30) as sock:
        sent = send_chunked(sock, "/v1/completions", b"A" * 3_600_000)
        if sent is not None:
            results["chunked_3_6MB_send"] = f"connection closed by the door: {sent.__class__.__name__}"
        try:
            results["chunked_3_6MB"] = sock.recv(200).split(b"\r\n", 1)[0].decode()
        except OSError as exc:
            results["chunked_3_6MB"] = repr(exc)
    for path in ("/v2/cudasharedmemory/region/x/register", "/v2/systemsharedmemory/region/x/register",
                 "/v2/repository/models/ltr_scheduler/load", "/v2/models/tensorrt_llm/generate_stream"):
        request = urllib.request.Request(f"http://127.0.0.1:{d.openai}{path}", data=b'{"key":"/other","byte_size":1}')
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                results[path] = resp.status
        except urllib.error.HTTPError as err:
            results[path] = err.code
    results["triton_alive_after"] = d.generate({"max_tokens": 4})["outcome"] == "ok"
    return results


def phantom_inflight(log_path: Path, from_byte: int) -> int:
    text = log_path.read_bytes()[from_byte:].decode(errors="replace")
    counts = [int(line.split(" has ")[1].split()[0]) for line in text.splitlines() if "in-flight inferences" in line and " has " in line]
    return max(counts, default=0)


def run(out: Path, model: str = ENTRY_MODELS[0]) -> dict:
    state = BUILD_DIR / "faults" / "state"
    state.mkdir(parents=True, exist_ok=True)
    shm_before = set(glob.glob("/dev/shm/triton_python_backend_shm_region_*"))
    d = Deployment(state, model=model)
    t0 = time.monotonic()
    d.start()
    roots = [d.pid("tritonserver.pid"), d.pid("openai_server.pid"), d.pid("supervisor.pid")]
    rss_before = rss_by_process(roots)
    report: dict = {"deploy_s": round(time.monotonic() - t0, 1), "overrides": OVERRIDES, "model": model}
    try:
        report["bad_input"] = probe_bad_input(d)
        report["overload"] = probe_overload(d)
        report["stub_kills"] = [kill_stub(d, m) for m in
                                ("length_predictor", "preprocessing", "tensorrt_llm", "postprocessing", "ltr_scheduler",
                                 "ltr_bls")]
        report["server_crash"] = kill_server(d)
        report["public_door"] = probe_door(d)
        roots = [d.pid("tritonserver.pid"), d.pid("openai_server.pid"), d.pid("supervisor.pid")]
        report["rss_mib_before"], report["rss_mib_after"] = rss_before, rss_by_process(roots)
        # graceful stop, idle
        log = state / "tritonserver.log"
        log_at = log.stat().st_size
        started = time.monotonic()
        d.deploy("stop", "--grace", "10")
        report["stop"] = {"seconds": round(time.monotonic() - started, 2), "phantom_inflight": phantom_inflight(log, log_at),
                          "leftover_shm": len(set(glob.glob("/dev/shm/triton_python_backend_shm_region_*")) - shm_before),
                          "leftover_processes": sum(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                                    for p in roots)}
    finally:
        d.deploy("stop", "--grace", "1")
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "faults.md").write_text(markdown(report))
    return report


def markdown(r: dict) -> str:
    lines = ["# Faults (issue 13): `make faults`", "",
             f"Real deployment (`python -m deploy start`, supervisor, OpenAI server), CPU stand-in LLM; "
             f"overrides {', '.join(r['overrides'])}; Triton clients call `{r.get('model', 'ensemble')}`. "
             f"Reproduce: `make faults`.", "",
             "## Hostile input (HTTP generate)", "", "| request | answer | wrong |", "|---|---|---|"]
    for name, row in r["bad_input"]["requests"].items():
        lines.append(f"| {name} | {row['outcome']}: {row.get('message', row.get('finish_reason', ''))[:110]} | "
                     f"{'' if row['right'] else 'YES'} |")
    lines += ["", f"Server alive after: {r['bad_input']['server_alive_after']}.", "",
              "## Overload (40 concurrent into 2 slots + a queue of 8)", "",
              "| ok | overloaded (retryable) | refusal lost on the way (retryable) | other errors | hung | lost |",
              "|---|---|---|---|---|---|",
              f"| {r['overload']['ok']} | {r['overload']['overloaded_errors']} | {r['overload'].get('refusal_lost_errors', 0)} | "
              f"{r['overload']['wrongly_answered']} | {r['overload']['hung']} | {r['overload']['lost']} |", "",
              "## kill -9 under load (4 streaming requests in flight)", "",
              "| killed | detected (s) | recovered (s) | in flight: ok / error / hung / lost | arriving meanwhile: ok / error / hung / lost | not-ready reason |",
              "|---|---|---|---|---|---|"]
    for row in [*r["stub_kills"], r["server_crash"]]:
        f, m = row["inflight"], row["arriving_meanwhile"]
        lines.append(f"| {row['model']} | {row['detect_s']} | {row['recover_s']} | {f['ok']} / {f['error']} / {f['hung']} / "
                     f"{f['lost']} | {m['ok']} / {m['error']} / {m['hung']} / {m['lost']} | {row['not_ready_reason']} |")
    lines += ["", "Errors the in-flight requests got:", ""]
    for row in [*r["stub_kills"], r["server_crash"]]:
        for message in row["inflight_errors"]:
            lines.append(f"- {row['model']}: `{message}`")
    lines += ["", "## Crash payloads sent to the public door (OpenAI server)", ""]
    lines += [f"- `{k}`: {v}" for k, v in r["public_door"].items()]
    s = r["stop"]
    lines += ["", "## Graceful stop (idle)", "",
              f"`make stop` took {s['seconds']} s; phantom in-flight requests Triton still counted: {s['phantom_inflight']}; "
              f"leftover shared-memory regions: {s['leftover_shm']}; leftover processes: {s['leftover_processes']}.", "",
              "## Resident memory (MiB), before → after the probes", "", "| process | before | after |", "|---|---|---|"]
    after = r["rss_mib_after"]
    for name, value in r["rss_mib_before"].items():
        lines.append(f"| {name} | {value} | {after.get(name, '(restarted)')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(RESULTS_DIR))
    parser.add_argument("--model", default=ENTRY_MODELS[0], choices=ENTRY_MODELS, help="the Triton entry point probed")
    args = parser.parse_args(argv)
    report = run(Path(args.out), args.model)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
