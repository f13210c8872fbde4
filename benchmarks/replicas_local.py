"""Two tritonservers behind HAProxy, a locust run through the balancer, one replica stopped mid-run.

    python -m benchmarks.replicas_local        # writes results/replicas_local.json and .md

Per stop mode, on fresh servers: locust's HttpStreamUser sends `--requests` AlpacaEval prompts as a
Poisson stream of `--rate` req/s to the balancer; `--stop-after` seconds in, replica r2 is stopped:
`drain` (out of rotation, wait for its requests in flight, then SIGTERM: what a Kubernetes pod's
preStop + SIGTERM does) or `sigterm` (SIGTERM at once, the balancer's readiness checks and retries
alone protect the requests). Reported: requests sent, completed and failed (locust, `e2e`), what each
replica served and the balancer's retries (HAProxy's counters), and what happened at the stop.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from deploy.replicas import LocalReplicas
from repo_paths import REPO_ROOT, RESULTS_DIR

LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"
MODES = ("drain", "sigterm")


def locust_command(url: str, requests: int, rate: float, users: int, time_limit_s: int, csv_prefix: Path,
                   workload: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-H", url, "--workload", workload, "--rate", str(rate), "--max-requests", str(requests),
            "-u", str(users), "-r", str(users), "-t", f"{time_limit_s}s", "--csv", str(csv_prefix),
            "--json-file", str(csv_prefix), "HttpStreamUser"]


def e2e_counts(stats_prefix: Path) -> dict[str, float]:
    """Finished requests from locust's final stats (`--json-file`; its CSV can miss the last event):
    every request fires one `e2e` event, failed or not."""
    entries = json.loads(Path(f"{stats_prefix}.json").read_text())
    e2e = next(e for e in entries if e["method"] == "HTTP-SSE" and e["name"] == "e2e")
    finished, failed = e2e["num_requests"], e2e["num_failures"]
    times = sorted((float(ms), n) for ms, n in e2e["response_times"].items())
    return {"finished": finished, "completed": finished - failed, "failed": failed,
            "e2e_p50_s": percentile(times, 0.5) / 1000, "e2e_p90_s": percentile(times, 0.9) / 1000}


def percentile(histogram: list[tuple[float, int]], q: float) -> float:
    """The q-quantile of locust's rounded response-time histogram [(milliseconds, count)], ascending."""
    total = sum(n for _, n in histogram)
    seen = 0
    for value, n in histogram:
        seen += n
        if seen >= q * total:
            return value
    return float("nan")


def failure_messages(csv_prefix: Path) -> list[str]:
    path = Path(f"{csv_prefix}_failures.csv")
    if not path.exists():
        return []
    with open(path) as f:
        return [f"{r['Occurrences']}x {r['Error']}" for r in csv.DictReader(f)]


def run_mode(mode: str, args: argparse.Namespace, work: Path) -> dict:
    overrides = {"ltr_scheduler": {"policy": "ltr"}, "tensorrt_llm": {"mode": "timing"}}
    with LocalReplicas(work / mode, replicas=2, overrides=overrides) as cluster:
        prefix = work / mode / "locust"
        cmd = locust_command(cluster.url, args.requests, args.rate, args.users, args.time_limit, prefix, args.workload)
        started = time.monotonic()
        locust = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stop: dict = {}

        def stop_later() -> None:
            time.sleep(args.stop_after)
            stop["at_s"] = round(time.monotonic() - started, 1)
            stop.update(asdict(cluster.stop_replica("r2", drain=(mode == "drain"))))

        stopper = threading.Thread(target=stop_later)
        stopper.start()
        output, _ = locust.communicate(timeout=args.time_limit + 120)
        stopper.join()
        counts = e2e_counts(prefix)
        result = {
            "mode": mode, "requests_sent": args.requests, **counts,
            "lost": args.requests - counts["completed"],
            "failures": failure_messages(prefix),
            "replicas": cluster.stats(),
            "stop": stop, "run_s": round(time.monotonic() - started, 1),
            "locust_exit_code": locust.returncode,
        }
        if counts["finished"] != args.requests:
            result["locust_tail"] = output[-2000:]
    return result


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "# Two replicas behind HAProxy, one stopped mid-run",
        "",
        "`python -m benchmarks.replicas_local` (`make bench-replicas-local`): 2 tritonservers "
        "(CPU, `timing` stand-in, "
        f"policy ltr) behind HAProxy 2.6 (`balance leastconn`, readiness checks, retries), locust "
        f"HttpStreamUser (SSE), {args.requests} `{args.workload}` requests at {args.rate} req/s; replica r2 "
        f"stopped {args.stop_after:.0f} s into the run.",
        "",
        "| stop mode | sent | completed | failed | lost | r1 served | r2 served | retries "
        "| in flight on r2 at stop | at SIGTERM | drain (s) | SIGTERM to exit (s) | e2e p50 / p90 (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        reps, stop = r["replicas"], r["stop"]
        retries = sum(v["retries"] + v["redispatches"] for v in reps.values())
        lines.append(
            f"| {r['mode']} | {r['requests_sent']} | {r['completed']} | {r['failed']} | {r['lost']} | "
            f"{reps['r1']['http_2xx']} | {reps['r2']['http_2xx']} | {retries} | {stop.get('in_flight_at_drain')} | "
            f"{stop.get('in_flight_at_sigterm')} | {stop.get('drain_s')} | {stop.get('sigterm_to_exit_s')} | "
            f"{r['e2e_p50_s']:.2f} / {r['e2e_p90_s']:.2f} |"
        )
    lines += ["", "`drain`: r2 leaves the rotation (HAProxy `set server ... state drain`), its requests in flight "
              "finish, then SIGTERM. `sigterm`: SIGTERM at once; Triton stops taking connections and waits for "
              "those open (its exit timeout), HAProxy's readiness check takes r2 out and retries refused "
              "connections on r1."]
    for r in results:
        if r["failures"]:
            lines += ["", f"Failures ({r['mode']}): " + "; ".join(r["failures"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=160)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--workload", default="alpaca")
    p.add_argument("--stop-after", type=float, default=15.0, help="seconds into the run when r2 is stopped")
    p.add_argument("--time-limit", type=int, default=240, help="locust's -t bound (s)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--out", default=str(RESULTS_DIR / "replicas_local.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="replicas_local_") as tmp:
        results = [run_mode(mode, args, Path(tmp)) for mode in args.modes]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "results": results}, indent=2))
    report = markdown(results, args)
    out.with_suffix(".md").write_text(report)
    print(report)
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
