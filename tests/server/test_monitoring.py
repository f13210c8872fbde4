"""The dashboard and the rules against the real thing: a real Prometheus on loopback scrapes a real
deployment (tritonserver's metrics port, the OpenAI server's and the supervisor's /metrics), evaluates
the project's rules file, traffic is driven through the OpenAI server, and then every query of the
shipped dashboard JSON, every recording rule and every alert's signal must return data: no panel or
alert names a metric that does not exist."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploy.dashboard import DASHBOARD_FILE, queries
from deploy.openai_frontend import OpenAIFrontend
from deploy.prometheus_local import LocalPrometheus, ScrapeTarget, with_interval
from deploy.prometheus_rules import ALERTS, RECORDINGS, RULES_FILE
from deploy.triton import free_ports, server_env, stop_pid, wait_ready
from openai_server.settings import API_KEY_ENV, DEFAULT_MODEL_NAME
from runtime import scheduler_metrics as m
from tests.server.helpers import start_supervised_server

KEY = "test-key"


def _chat(base_url: str, max_tokens: int, model: str = DEFAULT_MODEL_NAME) -> int:
    body = json.dumps({"model": model, "max_tokens": max_tokens, "stream": False,
                       "messages": [{"role": "user", "content": "Say something."}]}).encode()
    request = urllib.request.Request(f"{base_url}/chat/completions", data=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    state = tmp_path_factory.mktemp("monitoring")
    # two slots and a short queue: requests wait (queue-wait histogram), some are refused
    triton = start_supervised_server(state, {"ltr_scheduler": {"max_inflight": "2", "max_queue_size": "4"}})
    started: list = [triton]
    supervisor = None
    try:
        frontend = OpenAIFrontend(triton.grpc_url, state, env={API_KEY_ENV: KEY}).start()
        started.append(frontend)
        health_port = free_ports(1)[0]
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "deploy.supervisor", "--state-dir", str(state), "--health-port", str(health_port),
             "--hang-after", "0"],
            stdout=open(state / "supervisor.log", "ab"), stderr=subprocess.STDOUT, env=server_env())
        wait_ready(f"http://127.0.0.1:{health_port}/live", 60, supervisor, "the supervisor")
        rules = state / "rules.yml"
        rules.write_text(with_interval(RULES_FILE.read_text(), "1s"))
        prom = LocalPrometheus(state / "prometheus", [
            ScrapeTarget("triton", f"127.0.0.1:{triton.ports.metrics}"),
            ScrapeTarget("openai", f"127.0.0.1:{frontend.port}"),
            ScrapeTarget("supervisor", f"127.0.0.1:{health_port}"),
        ], [rules]).start()
        started.append(prom)
        # Traffic: 16 answers at once on 2 slots and a queue of 4 (waits, admissions, rejections), then
        # an unknown model (an OpenAI error status), spread over a few scrapes.
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda n: _chat(frontend.base_url, 8 + n), range(16)))
        statuses.append(_chat(frontend.base_url, 4, model="no-such-model"))
        assert 200 in statuses and any(s >= 400 for s in statuses), statuses
        # until the slowest recording rule has data
        assert prom.wait_for("ltr:ttft_slo_attainment:ratio_rate5m", 60), prom.log_tail()
        assert prom.targets_up() == {"triton": True, "openai": True, "supervisor": True}
        yield prom
    finally:
        if supervisor is not None:
            stop_pid(supervisor.pid, 10)
            supervisor.wait(timeout=5)
        for server in reversed(started):
            server.stop()


DASHBOARD_QUERIES = queries(json.loads(DASHBOARD_FILE.read_text()))
RULE_QUERIES = [(r.record, r.expr) for r in RECORDINGS] + [(r.record, r.record) for r in RECORDINGS] + [
    (a.name, a.signal) for a in ALERTS]


@pytest.mark.parametrize(("what", "expr"), DASHBOARD_QUERIES + RULE_QUERIES,
                         ids=[f"{what}: {expr}" for what, expr in DASHBOARD_QUERIES + RULE_QUERIES])
def test_every_query_returns_data(prometheus, what, expr):
    assert prometheus.wait_for(expr, timeout_s=20), f"{what}: no data for {expr}"


def test_the_histograms_are_native_and_count_what_was_served(prometheus):
    for name in (m.QUEUE_WAIT, m.TTFT):
        buckets = prometheus.query(f"{name}_bucket")
        assert {s["metric"]["le"] for s in buckets} >= {"2", "+Inf"}
        count = float(prometheus.query(f"sum({name}_count)")[0]["value"][1])
        assert count >= 1
    rejected = prometheus.query(f'sum({m.REQUESTS}{{event="rejected"}})')
    admitted = prometheus.query(f'sum({m.REQUESTS}{{event="admitted"}})')
    ttft_count = float(prometheus.query(f"sum({m.TTFT}_count)")[0]["value"][1])
    assert float(admitted[0]["value"][1]) >= ttft_count >= 1 and rejected
