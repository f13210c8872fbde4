"""Following the container's log to a verdict, with fake log streams and a fake `docker logs`."""

from __future__ import annotations

import io
import itertools
import subprocess
import time

from deploy.gpu.__main__ import wait_until_ready
from deploy.gpu.follow import LogWatch, Outcome, describe, follow_container, watch_lines

READY_LOG = """I0101 00:00:01.000 1 server.cc:674] successfully loaded 'tensorrt_llm'
I0101 00:00:02.000 1 grpc_server.cc:2558] Started GRPCInferenceService at 0.0.0.0:8001
I0101 00:00:02.000 1 http_server.cc:4704] Started HTTPService at 0.0.0.0:8000
I0101 00:00:02.000 1 http_server.cc:362] Started Metrics Service at 0.0.0.0:8002
"""

FAILED_LOG = """I0101 00:00:01.000 1 model_lifecycle.cc:473] loading: tensorrt_llm:1
E0101 00:00:03.000 1 model_lifecycle.cc:654] failed to load 'tensorrt_llm' version 1: Internal: unexpected error when creating modelInstanceState: Cannot find parameter with name: tokenizer_dir
I0101 00:00:03.100 1 server.cc:674] model statuses ...
error: creating server: Internal - failed to load all models
"""


def test_ready_is_the_http_service_line():
    echoed = []
    outcome = watch_lines(io.StringIO(READY_LOG), timeout_s=5, echo=echoed.append)
    assert outcome == Outcome("ready", [])
    assert echoed[-1].endswith("Started HTTPService at 0.0.0.0:8000")  # stops there, not at the end


def test_a_log_that_ends_unready_is_a_failure_with_its_error_lines():
    outcome = watch_lines(io.StringIO(FAILED_LOG), timeout_s=5)
    assert outcome.status == "failed"
    assert any("Cannot find parameter with name: tokenizer_dir" in line for line in outcome.lines)
    assert any(line.startswith("error: creating server") for line in outcome.lines)
    assert not any("loading: tensorrt_llm" in line for line in outcome.lines)


def test_without_error_lines_the_last_lines_are_reported():
    watch = LogWatch()
    for i in range(100):
        watch.feed(f"I0101 line {i}\n")
    assert watch.report()[-1] == "I0101 line 99" and len(watch.report()) == 30


def test_a_silent_log_times_out():
    def silent():
        yield "I0101 loading\n"
        time.sleep(30)  # a blocked read: the watcher must not wait for it

    ticks = itertools.count()
    outcome = watch_lines(silent(), timeout_s=3, clock=lambda: next(ticks))
    assert outcome.status == "timeout" and outcome.lines == ["I0101 loading"]


class FakeDockerLogs:
    """Stands in for subprocess.Popen(["docker", "logs", "-f", name], ...)."""

    def __init__(self, text: str):
        self.text, self.args, self.terminated = text, None, False

    def __call__(self, args, **kwargs):
        self.args, self.stdout = args, io.StringIO(self.text)
        assert kwargs["stdout"] is subprocess.PIPE and kwargs["text"]
        return self

    def terminate(self):
        self.terminated = True

    def wait(self, timeout=None):
        return 0


def test_follow_container_reads_docker_logs_and_stops_it():
    fake = FakeDockerLogs(FAILED_LOG)
    outcome = follow_container("ltr-serving-gpu", 5, popen=fake)
    assert fake.args == ["docker", "logs", "-f", "ltr-serving-gpu"] and fake.terminated
    assert outcome.status == "failed"
    text = describe(outcome, "ltr-serving-gpu", 5)
    assert "stopped before it was ready" in text and "tokenizer_dir" in text and "docker logs ltr-serving-gpu" in text


def test_deploy_returns_the_verdict(capsys):
    assert wait_until_ready(5, follow=lambda name, t, echo: follow_container(name, t, echo, popen=FakeDockerLogs(READY_LOG))) == 0
    assert "tritonserver is ready" in capsys.readouterr().out
    assert wait_until_ready(5, follow=lambda name, t, echo: follow_container(name, t, echo, popen=FakeDockerLogs(FAILED_LOG))) == 1
    captured = capsys.readouterr()
    assert "  | E0101" in captured.out and "Cannot find parameter" in captured.err
