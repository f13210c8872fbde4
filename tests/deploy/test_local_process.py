"""A helper process starts with its own log, is ready once its URL answers, fails with its log's tail,
and is stopped by its PID."""

from __future__ import annotations

import sys

import pytest

from deploy.local_process import LocalProcess
from deploy.triton import free_ports


class Static(LocalProcess):
    name, log_name = "the file server", "static.log"

    def __init__(self, work_dir, argv: list[str]) -> None:
        super().__init__(work_dir)
        self.port = free_ports(1)[0]
        self.argv = argv

    def command(self) -> list[str]:
        return [sys.executable, *self.argv, str(self.port), "--bind", "127.0.0.1"]

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def test_a_process_is_ready_when_its_url_answers_and_stops_by_pid(tmp_path):
    with Static(tmp_path, ["-m", "http.server", "--directory", str(tmp_path)]) as server:
        process = server.process
        assert process is not None and process.poll() is None
    assert server.process is None and process.poll() is not None
    assert server.log_path == tmp_path / "static.log" and server.log_path.exists()


def test_a_process_that_dies_fails_with_its_log(tmp_path):
    dying = Static(tmp_path, ["-c", "import sys; print('bad flag', sys.argv[1:]); sys.exit(3)"])
    with pytest.raises(RuntimeError, match="the file server did not become ready:(.|\n)*bad flag"):
        dying.start(timeout_s=10)
    assert dying.process is None
