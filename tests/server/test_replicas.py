"""Two real tritonservers behind a real HAProxy: both serve, and a graceful stop of one (drain, then
SIGTERM) while it streams loses no request. Needs Debian's haproxy (make deploy-replicas installs it)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy.replicas import LocalReplicas
from tests.server.helpers import TEST_OVERRIDES

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy not installed: `apt-get install -y haproxy` (make deploy-replicas)")


def stream(url: str, max_tokens: int) -> tuple[int, int]:
    """(HTTP status, tokens received) of one generate_stream request through the balancer."""
    body = json.dumps({"text_input": "Tell me a story.", "max_tokens": max_tokens, "stream": True}).encode()
    req = urllib.request.Request(f"{url}/v2/models/ensemble/generate_stream", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        events = [json.loads(line[len(b"data: "):]) for line in resp.read().splitlines() if line.startswith(b"data: ")]
        return resp.status, sum(int(e.get("output_token_count", 0) or 0) for e in events)


def test_both_replicas_serve_and_a_drained_stop_loses_nothing(tmp_path):
    overrides = {model: dict(params) for model, params in TEST_OVERRIDES.items()}
    with LocalReplicas(tmp_path, replicas=2, overrides=overrides) as cluster, ThreadPoolExecutor(16) as pool:
        first = list(pool.map(lambda _: stream(cluster.url, 16), range(8)))
        assert first == [(200, 16)] * 8
        assert all(s["http_2xx"] > 0 for s in cluster.stats().values())  # least connections used both

        long_ones = [pool.submit(stream, cluster.url, 300) for _ in range(8)]  # ~4 s each at the stand-in's pace
        deadline = time.monotonic() + 30
        while cluster.in_flight("r2") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        report = cluster.stop_replica("r2", drain=True, drain_timeout_s=60)
        assert report.in_flight_at_drain > 0 and report.in_flight_at_sigterm == 0
        assert [f.result() for f in long_ones] == [(200, 300)] * 8

        served_by_r2 = cluster.stats()["r2"]["requests"]
        after = list(pool.map(lambda _: stream(cluster.url, 8), range(6)))
        assert after == [(200, 8)] * 6
        assert cluster.stats()["r2"]["requests"] == served_by_r2  # r1 took everything after the stop
