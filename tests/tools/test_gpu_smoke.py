"""tools/gpu_smoke.sh offline (its --dry-run and argument checks; the real run needs a GPU and
Docker) and tools/gpu_smoke_requests.py against a stand-in OpenAI front end on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.gpu.bundle import CONTAINER_NAME, SERVING_IMAGE
from deploy.gpu.predictor_profile import PredictorProfile
from repo_paths import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "gpu_smoke.sh"
spec = importlib.util.spec_from_file_location("gpu_smoke_requests", REPO_ROOT / "tools" / "gpu_smoke_requests.py")
smoke = importlib.util.module_from_spec(spec)
spec.loader.exec_module(smoke)


def dry_run(*args: str, **env: str) -> list[list[str]]:
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def test_dry_run_builds_starts_requests_stops_and_checks_the_predictor_in_that_order():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    commands = dry_run("--engine-dir", "/e", "--checkpoint-dir", "/c", "--gpu-memory-gib", "141")
    deploy, health, requests, stop, check = commands
    assert deploy[:3] == ["make", "deploy", "TARGET=gpu"] and "ENGINE_DIR=/e" in deploy and "CHECKPOINT_DIR=/c" in deploy
    assert "GPU_ARGS=--run always --gpu-memory-gib 141" in deploy  # fails unless the container really starts
    assert health[-1].endswith("/v2/health/ready")
    assert requests[1] == "tools/gpu_smoke_requests.py" and "http://127.0.0.1:9000" in requests
    assert stop == ["docker", "rm", "-f", CONTAINER_NAME]
    assert check[:3] == ["docker", "run", "--rm"] and SERVING_IMAGE in check
    inner = check[-1]
    profile = PredictorProfile.from_repository()
    assert "tools/predictor_gpu_check.py" in inner and profile.shapes("max") in inner
    assert "onnxruntime-gpu==" in inner and "numpy==1.26.4" in inner  # pinned, numpy from requirements.txt
    # built for CUDA 12.x like the image (12.9), and Triton's own ORT backend (first on LD_LIBRARY_PATH) is
    # taken off the search path for the check, so that the wheel's libraries are the ones loaded
    assert "onnxruntime-gpu==1.22.0 " in inner
    assert "LD_LIBRARY_PATH=${LD_LIBRARY_PATH//\\/opt\\/tritonserver\\/backends\\/onnxruntime/}" in inner
    assert inner.index("LD_LIBRARY_PATH=") < inner.index("predictor_gpu_check.py")


def test_keep_leaves_the_server_running():
    commands = dry_run("--keep")
    assert not any(c[:2] == ["docker", "rm"] for c in commands)


@pytest.mark.parametrize("args, message", [(["--bogus"], "unknown argument"),
                                           (["--predictor-variant", "x"], "onnx or plan")])
def test_bad_arguments_fail(args, message):
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr


def test_without_docker_it_stops_before_doing_anything():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                            env={**os.environ, "DOCKER": "/nonexistent/docker"})
    assert result.returncode == 2 and "no Docker engine" in result.stderr and "==" not in result.stdout


def test_makefile_target_runs_the_script():
    out = subprocess.run(["make", "-n", "--no-print-directory", "gpu-smoke", "SMOKE_ARGS=--dry-run"], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "tools/gpu_smoke.sh --engine-dir" in out and out.rstrip().endswith("--dry-run")


def test_summarize():
    assert smoke.summarize(10.0, [10.5, 10.6, 11.5], 3) == {
        "tokens": 3, "ttft_s": 0.5, "tokens_per_s": 2.0, "decode_tokens_per_s": 2.0}
    assert smoke.summarize(10.0, [], 0)["ttft_s"] is None


class FakeOpenAI(BaseHTTPRequestHandler):
    """/v1/models and a streamed /v1/chat/completions with a final usage chunk."""

    def do_GET(self):
        body = json.dumps({"data": [{"id": "ensemble"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert request["stream"] and request["model"] == "ensemble"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunks = [{"choices": [{"delta": {"role": "assistant"}}]}, {"choices": [{"delta": {"content": "Hel"}}]},
                  {"choices": [{"delta": {"content": "lo"}}]}, {"choices": [], "usage": {"completion_tokens": 2}}]
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


def test_openai_front_end_request_and_skip(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert smoke.openai_models(url) == ["ensemble"]
        out = tmp_path / "smoke.json"
        assert smoke.main(["--skip-ensemble", "--openai-url", url, "--out", str(out)]) == 0
        result = json.loads(out.read_text())["openai"]
        assert result["status"] == "ok" and result["text"] == "Hello" and result["tokens"] == 2 and result["ttft_s"] > 0
    finally:
        server.shutdown()
        server.server_close()
    assert smoke.openai_models(url, timeout_s=1) is None  # nothing there any more
    assert smoke.main(["--skip-ensemble", "--openai-url", url, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["openai"]["status"] == "skipped"
