"""The supervisor with a fake server: what it notices, what it reports, how it recovers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from deploy.supervisor import (
    Supervisor,
    dead_models,
    expected_stubs,
    pipeline_hung,
    recovery_for,
    restart_due,
    serve_health,
    stub_counts,
)
from deploy.triton import free_ports
from repo_paths import REPO_ROOT

EXPECTED = {"preprocessing": 1, "length_predictor": 1, "ltr_scheduler": 1, "tensorrt_llm": 1, "postprocessing": 1,
            "ltr_bls": 1}


class FakeServer:
    def __init__(self) -> None:
        self.running = True
        self.stubs = dict(EXPECTED)
        self.actions: list[str] = []

    def alive(self) -> bool:
        return self.running

    def stub_counts(self) -> dict[str, int]:
        return dict(self.stubs)

    def reload(self, model: str) -> None:
        self.actions.append(f"reload {model}")
        self.stubs[model] = EXPECTED[model]

    def restart(self) -> None:
        self.actions.append("restart")
        self.running, self.stubs = True, dict(EXPECTED)


def test_all_stubs_running_is_ready_and_nothing_is_done():
    server = FakeServer()
    supervisor = Supervisor(server, EXPECTED)
    assert supervisor.check_once().ready and server.actions == []


def test_a_dead_llm_or_predictor_stub_is_reported_then_reloaded():
    server = FakeServer()
    supervisor = Supervisor(server, EXPECTED)
    server.stubs["tensorrt_llm"] = 0
    health = supervisor.check_once()
    assert not health.ready and health.reason == "stub of tensorrt_llm is not running"
    assert server.actions == ["reload tensorrt_llm"]
    assert supervisor.check_once().ready  # recovered: ready again on the next look
    assert supervisor.health.recoveries[0]["what"] == "tensorrt_llm" and supervisor.health.recoveries[0]["ok"]


def test_a_dead_scheduler_or_postprocessing_stub_restarts_the_server():
    # ltr_bls as well: a decoupled entry model, whose requests Triton never ends when its stub dies
    for model in ("ltr_scheduler", "postprocessing", "ltr_bls"):
        server = FakeServer()
        supervisor = Supervisor(server, EXPECTED)
        server.stubs[model] = 0
        server.stubs["length_predictor"] = 0
        assert not supervisor.check_once().ready
        assert server.actions == ["restart"], model  # one restart recovers both


def test_a_restart_for_a_dead_stub_waits_its_grace_so_ltr_bls_can_end_the_requests_first():
    server, now = FakeServer(), [100.0]
    supervisor = Supervisor(server, EXPECTED, clock=lambda: now[0], restart_grace_s=3.0)
    server.stubs["ltr_scheduler"] = 0
    for t in (100.0, 101.0, 102.0):  # seen dead; not ready at once, but no restart yet
        now[0] = t
        health = supervisor.check_once()
        assert not health.ready and health.reason == "stub of ltr_scheduler is not running" and server.actions == []
    now[0] = 103.0
    supervisor.check_once()
    assert server.actions == ["restart"]
    assert supervisor.check_once().ready
    server.running = False  # a dead server does not wait
    supervisor.check_once()
    assert server.actions == ["restart", "restart"]


def test_a_crashed_server_is_restarted():
    server = FakeServer()
    supervisor = Supervisor(server, EXPECTED)
    server.running = False
    health = supervisor.check_once()
    assert health.reason == "tritonserver is not running" and server.actions == ["restart"]
    assert supervisor.check_once().ready


def test_a_failed_recovery_is_recorded_and_tried_again():
    server = FakeServer()
    calls = []

    def broken_reload(model: str) -> None:
        calls.append(model)
        raise ConnectionError("refused")

    server.reload = broken_reload
    supervisor = Supervisor(server, EXPECTED)
    server.stubs["preprocessing"] = 0
    supervisor.check_once()
    supervisor.check_once()
    assert calls == ["preprocessing", "preprocessing"]
    assert [r["ok"] for r in supervisor.health.recoveries] == [False, False]


def test_readiness_endpoint_says_why_it_is_not_ready():
    server = FakeServer()
    supervisor = Supervisor(server, EXPECTED)
    port = free_ports(1)[0]
    httpd = serve_health(supervisor, port)
    try:
        server.stubs["postprocessing"] = 0
        server.restart = lambda: None  # stays broken
        supervisor.check_once()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as err:
            assert err.code == 503
            assert json.loads(err.read())["reason"] == "stub of postprocessing is not running"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/live", timeout=5) as resp:
            assert resp.status == 200  # alive (the supervisor answers) though not ready
    finally:
        httpd.shutdown()


def test_metrics_count_recoveries_by_action_and_outcome_and_say_ready():
    server = FakeServer()
    supervisor = Supervisor(server, EXPECTED)
    port = free_ports(1)[0]
    httpd = serve_health(supervisor, port)
    try:
        server.stubs["tensorrt_llm"] = 0
        supervisor.check_once()  # reload
        server.running = False
        supervisor.check_once()  # restart
        supervisor.check_once()  # ready again
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        httpd.shutdown()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples == {
        'ltr_supervisor_recoveries_total{action="reload",ok="true"}': "1",
        'ltr_supervisor_recoveries_total{action="reload",ok="false"}': "0",
        'ltr_supervisor_recoveries_total{action="restart",ok="true"}': "1",
        'ltr_supervisor_recoveries_total{action="restart",ok="false"}': "0",
        "ltr_supervisor_ready": "1",
    }


def test_expected_stubs_come_from_the_instance_groups():
    counts = expected_stubs(REPO_ROOT / "model_repository")
    assert counts == EXPECTED  # the ensemble has no stub


def _fake_proc(root: Path, pid: int, ppid: int, cmdline: list[str]) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(f"{pid} (x y) S {ppid} 1 1")
    (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline) + b"\0")


def test_stub_counts_read_the_server_children_command_lines(tmp_path):
    proc, repo = tmp_path / "proc", tmp_path / "repo"
    repo.mkdir()
    _fake_proc(proc, 100, 1, ["tritonserver"])
    _fake_proc(proc, 101, 100, ["stub", f"{repo}/tensorrt_llm/1/model.py", "region"])
    _fake_proc(proc, 102, 100, ["stub", f"{repo}/ltr_scheduler/1/model.py", "region"])
    _fake_proc(proc, 103, 100, ["stub", f"{repo}/ltr_scheduler/1/model.py", "region"])
    _fake_proc(proc, 200, 1, ["stub", f"{repo}/preprocessing/1/model.py"])  # another server's
    assert stub_counts(100, repo, proc) == {"tensorrt_llm": 1, "ltr_scheduler": 2}


def test_a_stub_whose_main_thread_exited_is_counted_by_its_threads(tmp_path):
    proc, repo = tmp_path / "proc", tmp_path / "repo"
    repo.mkdir()
    _fake_proc(proc, 100, 1, ["tritonserver"])
    _fake_proc(proc, 101, 100, [])  # the leader's cmdline reads empty
    (proc / "101" / "cmdline").write_bytes(b"")
    (proc / "101" / "task" / "105").mkdir(parents=True)
    (proc / "101" / "task" / "105" / "cmdline").write_bytes(f"stub\0{repo}/ltr_scheduler/1/model.py\0".encode())
    _fake_proc(proc, 102, 100, [])  # a zombie: nothing anywhere
    (proc / "102" / "cmdline").write_bytes(b"")
    assert stub_counts(100, repo, proc) == {"ltr_scheduler": 1}


class HangingServer(FakeServer):
    """Every stub runs, but the pipeline answers only while `answering` (a deadlocked stub)."""

    def __init__(self) -> None:
        super().__init__()
        self.answering = True

    def answers(self, timeout_s: float) -> bool:
        return self.answering

    def restart(self) -> None:
        super().restart()
        self.answering = True


def test_a_pipeline_that_stops_answering_is_restarted_after_hang_after_s():
    now = [0.0]
    server = HangingServer()
    supervisor = Supervisor(server, EXPECTED, clock=lambda: now[0], hang_after_s=20.0)
    supervisor.probe_once()
    server.answering = False
    now[0] = 15.0
    supervisor.probe_once()
    assert supervisor.check_once().ready and server.actions == []  # silent, but not for long yet
    now[0] = 20.5
    health = supervisor.check_once()
    assert not health.ready and "has not answered for 20 s" in health.reason
    assert server.actions == ["restart"]
    now[0] = 30.0
    supervisor.probe_once()
    assert supervisor.check_once().ready and server.actions == ["restart"]  # the new server answers


def test_without_hang_after_there_is_no_probe():
    server = HangingServer()
    server.answering = False
    now = [0.0]
    supervisor = Supervisor(server, EXPECTED, clock=lambda: now[0])
    supervisor.probe_once()
    now[0] = 1e6
    assert supervisor.check_once().ready and server.actions == []


def test_a_model_is_dead_below_its_instance_count_and_missing_counts_as_none():
    expected = {"b": 2, "a": 1, "c": 1}
    assert dead_models(expected, {"a": 1, "b": 2, "c": 1}) == []
    assert dead_models(expected, {"a": 2, "b": 1, "c": 1}) == ["b"]  # one of two stubs gone
    assert dead_models(expected, {"b": 2}) == ["a", "c"]  # absent: none running; sorted
    assert dead_models(expected, {"c": 0, "b": 3, "a": 1}) == ["c"]


def test_the_pipeline_is_hung_only_past_hang_after_s_and_never_without_probes():
    assert not pipeline_hung(None, now=1000.0, last_answer_at=0.0)
    assert not pipeline_hung(15.0, now=115.0, last_answer_at=100.0)  # exactly the limit: not yet
    assert pipeline_hung(15.0, now=115.5, last_answer_at=100.0)
    assert not pipeline_hung(15.0, now=114.0, last_answer_at=100.0)


def test_only_models_whose_requests_end_by_themselves_are_reloaded():
    assert recovery_for(["tensorrt_llm"]) == "reload"
    assert recovery_for(["length_predictor", "preprocessing", "tensorrt_llm"]) == "reload"
    for model in ("ltr_scheduler", "postprocessing", "ltr_bls", "a_model_added_later"):
        assert recovery_for([model]) == "restart"
        assert recovery_for(["tensorrt_llm", model]) == "restart"


def test_a_restart_is_due_once_its_grace_has_passed():
    assert not restart_due(100.0, now=102.9, grace_s=3.0)
    assert restart_due(100.0, now=103.0, grace_s=3.0)  # the grace reached: due
    assert restart_due(100.0, now=100.0, grace_s=0.0)
