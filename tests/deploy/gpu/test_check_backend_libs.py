"""deploy/gpu/check_backend_libs.sh with a stand-in ldd, and its place in the Dockerfile: the image
build stops, naming the library, when a copied backend cannot resolve one."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from deploy.gpu.bundle import DOCKERFILE, GPU_SOURCES

SCRIPT = GPU_SOURCES / "check_backend_libs.sh"
FAKE_LDD = """#!/usr/bin/env bash
echo "	linux-vdso.so.1 (0x00007ffd)"
echo "	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)"
case "$1" in *broken*) echo "	libnvinfer.so.10 => not found"; echo "	libcudnn.so.9 => not found" ;; esac
"""


def backend(root: Path, name: str, libs: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for lib in libs:
        (folder / lib).write_bytes(b"\x7fELF")
    return folder


def run(tmp_path: Path, *dirs: Path) -> subprocess.CompletedProcess:
    ldd = tmp_path / "ldd"
    ldd.write_text(FAKE_LDD)
    ldd.chmod(0o755)
    return subprocess.run(["bash", str(SCRIPT), *map(str, dirs)], capture_output=True, text=True,
                          env={**os.environ, "LDD": str(ldd)})


def test_resolving_backends_pass(tmp_path):
    ok = backend(tmp_path, "onnxruntime", ["libtriton_onnxruntime.so", "libonnxruntime.so.1"])
    result = run(tmp_path, ok)
    assert result.returncode == 0 and "resolves" in result.stdout


def test_an_unresolved_library_fails_and_is_named(tmp_path):
    ok = backend(tmp_path, "onnxruntime", ["libtriton_onnxruntime.so"])
    bad = backend(tmp_path, "tensorrt", ["libtriton_tensorrt_broken.so"])
    result = run(tmp_path, ok, bad)
    assert result.returncode == 1
    assert "libtriton_tensorrt_broken.so cannot resolve: libcudnn.so.9 libnvinfer.so.10" in result.stderr
    assert "libtriton_onnxruntime.so" not in result.stderr


def test_a_missing_or_empty_backend_folder_fails(tmp_path):
    assert run(tmp_path, tmp_path / "absent").returncode == 1
    empty = backend(tmp_path, "empty", [])
    assert "no shared libraries" in run(tmp_path, empty).stderr


def test_the_dockerfile_checks_both_copied_backends_right_after_copying_them():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)  # COPY keeps the mode; RUN calls it directly
    text = DOCKERFILE.read_text()
    copied = re.findall(r"^COPY --from=backends (\S+) ", text, re.M)
    (checked,) = re.findall(r"^RUN check_backend_libs\.sh (.+)$", text, re.M)
    assert sorted(copied) == sorted(checked.split()) and len(copied) == 2
    assert text.index("ENV LD_LIBRARY_PATH=/opt/tritonserver/backends/onnxruntime") < text.index("RUN check_backend_libs")
    assert "COPY check_backend_libs.sh" in text
