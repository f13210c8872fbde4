"""`make deploy RETRAIN_EVERY=6h`: the retrain-judge-ship cycle of `make retrain` on a timer, in the
background of a running deployment (optional; off by default).

Each cycle is exactly what an operator's `make retrain LOG=...` does: `predictor.retrain.retrain`
fine-tunes the serving version on the request log, judges old against new on the newest slice, and
installs `length_predictor/<N+1>/` only when it ranks better; then `deploy.swap.swap` makes the
running server serve it, without a restart. A cycle that ships nothing (too few rows, no gain)
changes nothing. A failed cycle is logged and the next one runs on time: the deployment never
depends on this process. Each cycle's report is appended to `<state>/retrain_timer.jsonl`.

    python -m deploy.retrain_timer --every 6h --log .deploy/request_log   (started by `make deploy`)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from repo_paths import REPO_ROOT

log = logging.getLogger("deploy.retrain_timer")

RETRAIN_TIMER_PID_FILE = "retrain_timer.pid"
REPORTS_FILE = "retrain_timer.jsonl"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """Seconds in "90", "90s", "30m", "6h" or "1d"; at least 60 s (a retrain takes minutes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"RETRAIN_EVERY={text!r}: give a number with an optional unit s, m, h or d (e.g. 6h)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 60:
        raise ValueError(f"RETRAIN_EVERY={text!r} is under a minute; a retrain alone takes minutes")
    return seconds


def run_cycle(retrain: Callable[[], dict], swap: Callable[[], dict]) -> dict:
    """One retrain, and a swap only when it shipped a version; never raises (the report says)."""
    started = time.time()
    try:
        report = retrain()
        summary = {k: report.get(k) for k in ("rows", "judge", "shipped", "reason", "version_dir", "retrain_seconds")}
        if report.get("shipped"):
            summary["swap"] = swap()
    except Exception as exc:  # the next cycle runs on time
        log.exception("retrain cycle failed")
        summary = {"shipped": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"started": started, "seconds": round(time.time() - started, 1), **summary}


def run_every(interval_s: float, cycle: Callable[[], dict], reports: Path, stop: threading.Event) -> None:
    """A cycle every `interval_s` (the first one interval after the start) until `stop` is set."""
    while not stop.wait(interval_s):
        result = cycle()
        with reports.open("a", encoding="utf-8") as out:
            out.write(json.dumps(result) + "\n")
        log.info("retrain cycle: %s", {k: result.get(k) for k in ("shipped", "reason", "error", "seconds")})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", required=True, help="interval: 90s, 30m, 6h, 1d")
    ap.add_argument("--log", type=Path, required=True, help="the deployment's request log")
    ap.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".deploy")
    ap.add_argument("--http-url", default="127.0.0.1:8000")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    interval = parse_interval(args.every)

    from deploy.swap import swap
    from deploy.triton import RepositoryAccess
    from predictor.retrain import retrain

    access = RepositoryAccess.load(args.state_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cycle = lambda: run_cycle(  # noqa: E731
        lambda: retrain(args.log),
        lambda: swap(args.state_dir / "model_repository", args.http_url, access),
    )
    log.info("retraining from %s every %g s", args.log, interval)
    run_every(interval, cycle, args.state_dir / REPORTS_FILE, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
