"""The deployment's Prometheus rules as code: recording rules for the dashboard's heavy queries and
alert rules, each alert with its runbook in docs/operations.md. Rendered twice from the same data: a
plain rules file (for any Prometheus, `promtool check|test rules`) and a PrometheusRule in the
Kustomize base (Prometheus Operator).

Every alert keeps its `signal` (the query before the threshold) apart from its `expr`, so the live
test can check that each alert's query returns data on a real deployment: an alert on a metric that
does not exist would never fire, and nothing else would say so.

    python -m deploy.prometheus_rules     # writes deploy/k8s/base/monitoring/ (make dashboard)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deploy.supervisor import RECOVERIES
from runtime import scheduler_metrics as m
from runtime.latency_histograms import TTFT_TARGET_S
from scheduler import GuardConfig

MONITORING_DIR = Path(__file__).resolve().parent / "k8s" / "base" / "monitoring"
RULES_FILE = MONITORING_DIR / "ltr-serving.rules.yml"
PROMETHEUS_RULE_FILE = MONITORING_DIR / "prometheusrule.yaml"
RUNBOOK = "docs/operations.md"  # in this repository; + "#<alert in lower case>" (prefix it with your repository URL)

# Metrics named outside runtime.scheduler_metrics: the preprocessing model's fallback counter and the
# OpenAI server's (prometheus_client adds `_total` to its counters).
PREDICTOR_FALLBACK = "ltr_predictor_fallback_total"  # model_repository/preprocessing/1/model.py
OPENAI_ERRORS = "openai_server_errors_total"  # openai_server.metrics ("openai_server_errors")
OPENAI_REQUESTS = "openai_server_requests_total"
RANKING_TAU = m.RANKING_TAU  # the live Kendall tau of scores against served lengths, every policy
RANKING_TAU_FLOOR = GuardConfig().floor  # the guarded policy falls back to arrival order below it


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    signal: str  # the query the threshold applies to (checked for data by the live test)
    condition: str  # e.g. "> 0"
    for_: str
    severity: str  # page | ticket | info
    summary: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def expr(self) -> str:
        return f"{self.signal} {self.condition}"

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK}#{self.name.lower()}"


def _quantiles(metric: str, short: str) -> list[Recording]:
    """`sum by (le)` of the bucket rates, then p50/p90/p99 over it (the dashboard's distributions)."""
    buckets = f"ltr:{short}_bucket:rate5m"
    return [Recording(buckets, f"sum by (le) (rate({metric}_bucket[5m]))")] + [
        Recording(f"ltr:{short}:p{q}_5m", f"histogram_quantile(0.{q}, {buckets})") for q in ("50", "90", "99")
    ]


def le(value: float) -> str:
    """Prometheus' spelling of a bucket bound in `le` (Triton writes 2.0 as "2")."""
    return f"{value:g}"


RECORDINGS: list[Recording] = [
    Recording("ltr:scheduler_events:rate1m", f"sum by (event) (rate({m.REQUESTS}[1m]))"),
    *_quantiles(m.QUEUE_WAIT, "scheduler_queue_wait_seconds"),
    *_quantiles(m.TTFT, "scheduler_ttft_seconds"),
    Recording("ltr:ttft_slo_attainment:ratio_rate5m",
              f'sum(rate({m.TTFT}_bucket{{le="{le(TTFT_TARGET_S)}"}}[5m])) / sum(rate({m.TTFT}_count[5m]))'),
    Recording("ltr:predictor_fallback:rate5m", f"sum(rate({PREDICTOR_FALLBACK}[5m]))"),
    Recording("ltr:openai_server_errors:rate5m", f"sum by (status) (rate({OPENAI_ERRORS}[5m]))"),
    Recording("ltr:predicted_backlog_tokens:sum", f"sum({m.PREDICTED_BACKLOG})"),
]

ALERTS: list[Alert] = [
    Alert("LTRRankingTauLow", f"min by (instance) ({RANKING_TAU})", f"< {RANKING_TAU_FLOOR:g}", "30m", "ticket",
          f"Live ranking tau below {RANKING_TAU_FLOOR:g}: the predictor barely orders this traffic"),
    Alert("LTRPredictorFallbackActive", f"sum by (instance) (rate({PREDICTOR_FALLBACK}[5m]))", "> 0", "5m", "ticket",
          "Requests are ranked without a predictor score (arrival order)"),
    Alert("LTRQueueWaitOverTTFTTarget", "ltr:scheduler_queue_wait_seconds:p90_5m", f"> {TTFT_TARGET_S:g}", "10m",
          "page", f"p90 queue wait over the {TTFT_TARGET_S:g} s TTFT target: the chat SLO is lost in the queue"),
    Alert("LTRQueueAtLimit", f'sum by (instance) (rate({m.REQUESTS}{{event="rejected"}}[5m]))', "> 0", "2m", "page",
          "The scheduler queue is full and refuses requests (503, retryable)"),
    Alert("LTRSupervisorRecovered", f"sum by (instance, action) (increase({RECOVERIES}[15m]))", "> 0", "0m",
          "ticket", "The supervisor reloaded a dead model stub or restarted tritonserver"),
    Alert("LTRSupervisorRecoveryFailing", f'sum by (instance) (increase({RECOVERIES}{{ok="false"}}[15m]))', "> 0",
          "0m", "page", "A supervisor reload or restart failed; it keeps trying"),
    Alert("LTRRequestLogFailing", f"sum by (instance) (rate({m.REQUEST_LOG_FAILURES}[5m]))", "> 0", "5m", "ticket",
          "Request-log rows are being lost: the next retrain sees less traffic"),
    Alert("LTRPredictorVersionChanged", f"changes({m.PREDICTOR_VERSION}[15m])", "> 0", "0m", "info",
          "A new length-predictor version is scoring requests"),
]

GROUPS = ("ltr-serving.recording", "ltr-serving.alerts")


def rule_groups() -> list[dict]:
    """The rule groups, as both the plain file and the PrometheusRule spec hold them."""
    alerts = []
    for alert in ALERTS:
        rule = {"alert": alert.name, "expr": alert.expr, "for": alert.for_,
                "labels": {"severity": alert.severity, **alert.labels},
                "annotations": {"summary": alert.summary, "runbook_url": alert.runbook_url}}
        alerts.append(rule)
    return [
        {"name": GROUPS[0], "interval": "30s", "rules": [{"record": r.record, "expr": r.expr} for r in RECORDINGS]},
        {"name": GROUPS[1], "rules": alerts},
    ]


HEADER = "# Generated by `python -m deploy.prometheus_rules` (make dashboard); edit deploy/prometheus_rules.py.\n"


def rules_file_text() -> str:
    return HEADER + yaml.safe_dump({"groups": rule_groups()}, sort_keys=False, width=200)


def prometheus_rule_text() -> str:
    obj = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "ltr-serving", "labels": {"app.kubernetes.io/name": "ltr-triton"}},
           "spec": {"groups": rule_groups()}}
    return HEADER + yaml.safe_dump(obj, sort_keys=False, width=200)


def write(out_dir: Path = MONITORING_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in ((out_dir / RULES_FILE.name, rules_file_text()),
                       (out_dir / PROMETHEUS_RULE_FILE.name, prometheus_rule_text())):
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=MONITORING_DIR)
    for path in write(parser.parse_args(argv).out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
