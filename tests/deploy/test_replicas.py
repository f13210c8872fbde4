"""The local replicas' balancer: its rendered HAProxy config, the stats it reports, its admin socket."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from deploy.replicas import Backend, HaproxyAdmin, haproxy_config, parse_show_stat

BACKENDS = [Backend("r1", "127.0.0.1:9101"), Backend("r2", "127.0.0.1:9102")]


def test_config_balances_least_connections_over_ready_replicas_on_loopback(tmp_path):
    config = haproxy_config(8080, BACKENDS, tmp_path / "admin.sock")
    assert "bind 127.0.0.1:8080" in config
    assert "balance leastconn" in config
    assert "option httpchk GET /v2/health/ready" in config
    assert "server r1 127.0.0.1:9101 check" in config and "server r2 127.0.0.1:9102 check" in config
    assert "retry-on conn-failure empty-response 503" in config and "option redispatch" in config
    assert "option http-server-close" in config  # else idle connections hold a stopping replica open
    assert f"stats socket {tmp_path / 'admin.sock'} mode 600 level admin" in config


def test_config_needs_a_backend(tmp_path):
    with pytest.raises(ValueError):
        haproxy_config(8080, [], tmp_path / "admin.sock")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make deploy-replicas installs it)")
def test_haproxy_accepts_the_rendered_config(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(8080, BACKENDS, tmp_path / "admin.sock"))
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


SHOW_STAT = """# pxname,svname,qcur,scur,stot,hrsp_2xx,status,
ltr,FRONTEND,,3,40,,OPEN,
triton,r1,0,2,25,24,UP,
triton,r2,0,1,15,15,DRAIN,
triton,BACKEND,0,3,40,39,UP,
"""


def test_show_stat_gives_the_backend_servers_only():
    servers = parse_show_stat(SHOW_STAT)
    assert set(servers) == {"r1", "r2"}
    assert servers["r1"]["scur"] == "2" and servers["r2"]["status"] == "DRAIN"


def serve_once(path: Path, answer: bytes, received: list[bytes]) -> threading.Thread:
    """A one-shot stand-in for HAProxy's admin socket."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(1024))
            conn.sendall(answer)
        server.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_set_state_sends_the_command_and_raises_on_an_answer(tmp_path):
    received: list[bytes] = []
    thread = serve_once(tmp_path / "ok.sock", b"\n", received)
    HaproxyAdmin(tmp_path / "ok.sock").set_state("r2", "drain")
    thread.join()
    assert received == [b"set server triton/r2 state drain\n"]

    thread = serve_once(tmp_path / "bad.sock", b"No such server.\n", [])
    with pytest.raises(RuntimeError, match="No such server"):
        HaproxyAdmin(tmp_path / "bad.sock").set_state("r9", "drain")
    thread.join()
