"""A real Prometheus on loopback for one deployment: scrape config for its targets, the project's rule
file, start and stop by PID, and the query API. The live monitoring test runs it against a real
deployment (tests/server/test_monitoring.py); `prometheus` is Debian's package (`make prometheus`).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.local_process import LocalProcess
from deploy.triton import free_ports


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port
    path: str = "/metrics"


def prometheus_config(targets: list[ScrapeTarget], rule_files: list[Path], interval: str = "1s") -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": t.job, "metrics_path": t.path, "static_configs": [{"targets": [t.address]}]}
                           for t in targets],
    }


def with_interval(rules_text: str, interval: str) -> str:
    """A rules file with every group evaluated every `interval` (a test cannot wait the 30 s of production)."""
    data = yaml.safe_load(rules_text)
    for group in data["groups"]:
        group["interval"] = interval
    return yaml.safe_dump(data, sort_keys=False, width=200)


class LocalPrometheus(LocalProcess):
    """A Prometheus on loopback scraping `targets` and evaluating `rule_files` (tests)."""

    name, log_name = "prometheus", "prometheus.log"

    def __init__(self, work_dir: Path, targets: list[ScrapeTarget], rule_files: list[Path],
                 interval: str = "1s", port: int | None = None) -> None:
        super().__init__(work_dir)
        self.targets = targets
        self.rule_files = rule_files
        self.interval = interval
        self.port = port if port is not None else free_ports(1)[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("no prometheus: `make prometheus` installs Debian's package")
        config = self.work_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(self.targets, self.rule_files, self.interval)))
        return [binary, f"--config.file={config}", f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}"]

    def ready_url(self) -> str:
        return f"{self.url}/-/ready"

    def env(self) -> None:
        return None  # Prometheus needs none of the python stubs' environment

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises on a PromQL error)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body}")
        return body["data"]["result"]

    def targets_up(self) -> dict[str, bool]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as resp:
            active = json.loads(resp.read())["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] == "up" for t in active}

    def wait_for(self, expr: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Poll `expr` until it returns data (or `timeout_s` passes); the last result."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)
