"""The deployment's Grafana dashboard as code (grafanalib, pinned in requirements.txt): one panel per
question an operator asks of a serving pod, each query either a raw metric of this project or a
recording rule of deploy.prometheus_rules. `make dashboard` writes the JSON into the Kustomize base,
where a ConfigMap labelled `grafana_dashboard: "1"` provisions it (Grafana's dashboard sidecar, as in
kube-prometheus-stack); tests check the file is what this module generates and, on a live deployment
scraped by a real Prometheus, that every query returns data.

    python -m deploy.dashboard            # writes deploy/k8s/base/monitoring/ltr-serving-dashboard.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from deploy.prometheus_rules import (
    MONITORING_DIR, OPENAI_REQUESTS, RANKING_TAU, RANKING_TAU_FLOOR, write as write_rules,
)
from deploy.supervisor import RECOVERIES
from runtime import scheduler_metrics as m
from runtime.latency_histograms import TTFT_TARGET_S

DASHBOARD_FILE = MONITORING_DIR / "ltr-serving-dashboard.json"
DATASOURCE = "${datasource}"
WIDTH, HEIGHT = 12, 8


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""


def _quantiles(short: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"ltr:{short}:p{q}_5m", f"p{q}") for q in ("50", "90", "99"))


PANELS: list[Panel] = [
    Panel("Queue depth per pod", ((f"sum by (instance) ({m.WAITING})", "{{instance}}"),),
          description="Requests waiting in ltr_scheduler for an LLM slot (the HPA's first metric)."),
    Panel("In flight per pod", ((f"sum by (instance) ({m.INFLIGHT})", "{{instance}}"),),
          description="Requests admitted into the LLM (at most max_inflight)."),
    Panel("Predicted backlog per pod", ((f"sum by (instance) ({m.PREDICTED_BACKLOG})", "{{instance}}"),),
          unit="none", description="Output tokens expected from waiting and generating requests (calibrated scores)."),
    Panel("Scheduler events per second",
          (('ltr:scheduler_events:rate1m{event=~"admitted|promoted|rejected|removed|cancelled|timed_out"}',
            "{{event}}"),), unit="reqps",
          description="admitted, promoted (starvation prevention), rejected (queue full), removed and cancelled."),
    Panel("Queue wait (arrival to admission)", _quantiles("scheduler_queue_wait_seconds"), unit="s"),
    Panel("Time to first token (at the scheduler)", _quantiles("scheduler_ttft_seconds"), unit="s"),
    Panel("TTFT SLO attainment", (("ltr:ttft_slo_attainment:ratio_rate5m", f"TTFT <= {TTFT_TARGET_S:g} s"),),
          unit="percentunit", description=f"Share of requests whose first token came within {TTFT_TARGET_S:g} s "
                                          "(the chat SLO wants 90%)."),
    Panel("Predictor version per pod", ((f"max by (instance) ({m.PREDICTOR_VERSION})", "{{instance}}"),)),
    Panel("Predictor fallback rate", (("ltr:predictor_fallback:rate5m", "ranked without a score"),), unit="reqps"),
    Panel("Live ranking tau", ((f"min by (instance) ({RANKING_TAU})", "{{instance}}"),),
          description=f"Kendall tau of predicted vs served lengths over the guard's window; alert below "
                      f"{RANKING_TAU_FLOOR:g} (the guarded policy's floor: below it, it orders by arrival)."),
    Panel("Request-log failures", ((f"sum by (instance) (rate({m.REQUEST_LOG_FAILURES}[5m]))", "{{instance}}"),),
          unit="reqps"),
    Panel("Supervisor recoveries (1 h)", ((f"sum by (action, ok) (increase({RECOVERIES}[1h]))", "{{action}} ok={{ok}}"),)),
    Panel("OpenAI server errors by status", (("ltr:openai_server_errors:rate5m", "{{status}}"),
                                             (f"sum(rate({OPENAI_REQUESTS}[5m]))", "all requests")), unit="reqps"),
    Panel("Triton requests per second by model",
          (("sum by (model) (rate(nv_inference_request_success[1m]))", "{{model}}"),), unit="reqps"),
]


def dashboard() -> g.Dashboard:
    panels = []
    for i, panel in enumerate(PANELS):
        panels.append(g.TimeSeries(
            title=panel.title, description=panel.description, dataSource=DATASOURCE, unit=panel.unit,
            targets=[g.Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + j), datasource=DATASOURCE)
                     for j, (expr, legend) in enumerate(panel.queries)],
            gridPos=g.GridPos(h=HEIGHT, w=WIDTH, x=(i % 2) * WIDTH, y=(i // 2) * HEIGHT),
        ))
    return g.Dashboard(
        title="LTR serving", uid="ltr-serving", tags=["ltr-serving", "triton"], timezone="browser",
        refresh="30s", time=g.Time("now-1h", "now"), panels=panels,
        templating=g.Templating([g.Template(name="datasource", label="Prometheus", query="prometheus",
                                            type="datasource", default="Prometheus")]),
    ).auto_panel_ids()


def dashboard_json() -> str:
    return json.dumps(dashboard().to_json_data(), cls=DashboardEncoder, sort_keys=True, indent=2) + "\n"


def queries(dashboard_data: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard's JSON."""
    return [(panel["title"], target["expr"]) for panel in dashboard_data["panels"] for target in panel["targets"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DASHBOARD_FILE)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dashboard_json())
    print(f"wrote {args.out} ({len(PANELS)} panels)")
    if args.out == DASHBOARD_FILE:  # the panels read the recording rules: keep both in step
        for path in write_rules():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
