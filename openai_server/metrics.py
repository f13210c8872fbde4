"""The OpenAI server's own Prometheus metrics, served at GET /metrics on its port (Triton's,
with the scheduler's gauges, stay on Triton's metrics port). One registry per app, so that tests
can build several apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds from "end this request" to the end of its ensemble stream: the scheduler has let go.
END_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("openai_server_requests", "Requests received, by endpoint",
                                ["endpoint"], registry=self.registry)
        self.errors = Counter("openai_server_errors", "Requests answered with an error, by HTTP status and error type",
                              ["status", "type"], registry=self.registry)
        self.open_streams = Gauge("openai_server_open_streams", "Streamed (SSE) responses open now",
                                  registry=self.registry)
        self.disconnects = Counter("openai_server_client_disconnects",
                                   "Clients that went away before their answer was complete", registry=self.registry)
        self.early_ends = Counter("openai_server_early_ends",
                                  "Requests ended in the scheduler before their end (client gone, stop string), "
                                  "by outcome: ended, timed_out, failed", ["outcome"], registry=self.registry)
        self.end_seconds = Histogram("openai_server_early_end_seconds",
                                     "Seconds from ending a request to the end of its ensemble stream",
                                     buckets=END_BUCKETS, registry=self.registry)

    def record_early_end(self, outcome: str, seconds: float) -> None:
        self.early_ends.labels(outcome).inc()
        if outcome == "ended":
            self.end_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
