"""The OpenAI server's launcher: a process of this interpreter, bound to loopback."""

from __future__ import annotations

import sys

from deploy.openai_frontend import OpenAIFrontend, frontend_command


def test_the_command_binds_loopback_and_points_at_triton(tmp_path):
    cmd = frontend_command("127.0.0.1:8001", 9123, ["--model-name", "m"])
    assert cmd[:3] == [sys.executable, "-m", "openai_server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "9123"
    assert cmd[cmd.index("--triton-url") + 1] == "127.0.0.1:8001" and cmd[-2:] == ["--model-name", "m"]
    frontend = OpenAIFrontend("127.0.0.1:8001", tmp_path, port=9123)
    assert frontend.base_url == "http://127.0.0.1:9123/v1" and frontend.log_path.parent == tmp_path
    assert OpenAIFrontend("127.0.0.1:8001", tmp_path).port > 0  # a free port when none is given
