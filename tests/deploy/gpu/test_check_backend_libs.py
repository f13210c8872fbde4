"""deploy/gpu/check_backend_libs.sh with a stand-in ldd, and its place in the Dockerfile: the image
build stops, naming the library, when a copied backend cannot resolve one."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from deploy.gpu.bundle import DOCKERFILE, GPU_SOURCES

SCRIPT = GPU_SOURCES / "check_backend_libs.sh"
# What `ldd` prints for a Triton backend in NVIDIA's images: every backend carries `NEEDED
# libtritonserver.so`, which resolves only where /opt/tritonserver/lib is on the search path (the
# server itself has it loaded at run time). The stand-in resolves it the same way, from LD_LIBRARY_PATH.
FAKE_LDD = """#!/usr/bin/env bash
echo "	linux-vdso.so.1 (0x00007ffd)"
found=""
IFS=: read -ra dirs <<< "${LD_LIBRARY_PATH:-}"
for d in "${dirs[@]}"; do [ -n "$d" ] && [ -f "$d/libtritonserver.so" ] && found="$d/libtritonserver.so"; done
if [ -n "$found" ]; then echo "	libtritonserver.so => $found (0x00007f)"; else echo "	libtritonserver.so => not found"; fi
echo "	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)"
case "$1" in *broken*) echo "	libnvinfer.so.10 => not found"; echo "	libcudnn.so.9 => not found" ;; esac
case "$1" in *lookalike*) echo "	libtritonserver.so.2 => not found" ;; esac
"""


def backend(root: Path, name: str, libs: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for lib in libs:
        (folder / lib).write_bytes(b"\x7fELF")
    return folder


def run(tmp_path: Path, *dirs: Path, triton_lib: Path | None = None) -> subprocess.CompletedProcess:
    """The check with the stand-in ldd; `triton_lib`: Triton's library folder (default: one that
    does not exist, so ldd prints `libtritonserver.so => not found` as in NVIDIA's images)."""
    ldd = tmp_path / "ldd"
    ldd.write_text(FAKE_LDD)
    ldd.chmod(0o755)
    env = {**os.environ, "LDD": str(ldd), "TRITON_LIB_DIR": str(triton_lib or tmp_path / "no-triton-lib")}
    env.pop("LD_LIBRARY_PATH", None)
    return subprocess.run(["bash", str(SCRIPT), *map(str, dirs)], capture_output=True, text=True, env=env)


def test_resolving_backends_pass_although_ldd_cannot_find_libtritonserver(tmp_path):
    """NVIDIA's images print `libtritonserver.so => not found` for every backend: not a failure."""
    ok = backend(tmp_path, "onnxruntime", ["libtriton_onnxruntime.so", "libonnxruntime.so.1"])
    ldd_says = subprocess.run(["bash", "-c", FAKE_LDD, "ldd", str(ok / "libtriton_onnxruntime.so")],
                              capture_output=True, text=True, env={"PATH": os.environ["PATH"]}).stdout
    assert "libtritonserver.so => not found" in ldd_says  # the stand-in prints what NVIDIA's images print
    result = run(tmp_path, ok)
    assert result.returncode == 0 and "resolves" in result.stdout, result.stderr


def test_the_check_puts_tritons_library_folder_on_the_search_path(tmp_path):
    lib_dir = tmp_path / "opt-tritonserver-lib"
    lib_dir.mkdir()
    (lib_dir / "libtritonserver.so").write_bytes(b"\x7fELF")
    ok = backend(tmp_path, "tensorrt", ["libtriton_tensorrt.so"])
    ldd = tmp_path / "ldd"
    result = run(tmp_path, ok, triton_lib=lib_dir)
    assert result.returncode == 0, result.stderr
    traced = subprocess.run(["bash", "-c", f"export LD_LIBRARY_PATH={lib_dir}; {ldd} x"], capture_output=True, text=True)
    assert f"libtritonserver.so => {lib_dir}/libtritonserver.so" in traced.stdout


def test_only_libtritonserver_itself_is_excused(tmp_path):
    """A library whose name merely starts like it (another soname) still fails the build."""
    bad = backend(tmp_path, "onnxruntime", ["libtriton_onnxruntime_lookalike.so"])
    result = run(tmp_path, bad)
    assert result.returncode == 1
    assert "cannot resolve: libtritonserver.so.2" in result.stderr


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


def test_the_dockerfile_prepends_to_pythonpath_instead_of_overwriting_it():
    (line,) = re.findall(r"^ENV PYTHONPATH=(.+)$", DOCKERFILE.read_text(), re.M)
    assert line == "/opt/ltr/python${PYTHONPATH:+:${PYTHONPATH}}"
