#!/usr/bin/env bash
# Fails the image build (deploy/gpu/Dockerfile) when a Triton backend copied from another image
# cannot resolve one of its shared libraries here, naming the library, instead of letting
# tritonserver find out at model load. Checks every *.so* under each folder with ldd, under the
# image's own LD_LIBRARY_PATH (the Dockerfile sets it as Triton's images do).
#
# Usage: check_backend_libs.sh BACKEND_DIR...     (LDD=ldd: the tool, replaceable in tests)
set -euo pipefail
LDD=${LDD:-ldd}
[ $# -gt 0 ] || { echo "usage: check_backend_libs.sh BACKEND_DIR..." >&2; exit 2; }
status=0
for dir in "$@"; do
  if [ ! -d "$dir" ]; then
    echo "check_backend_libs: no backend folder $dir" >&2
    status=1
    continue
  fi
  libs=0
  while IFS= read -r -d '' lib; do
    libs=$((libs + 1))
    missing=$("$LDD" "$lib" 2>&1 | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    if [ -n "$missing" ]; then
      echo "check_backend_libs: $lib cannot resolve: $missing" >&2
      status=1
    fi
  done < <(find "$dir" -name '*.so*' -type f -print0 | sort -z)
  if [ "$libs" -eq 0 ]; then
    echo "check_backend_libs: no shared libraries in $dir" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "check_backend_libs: the copied backends do not fit this image (TensorRT/cuDNN/CUDA versions differ?)." >&2
  echo "  Copy the missing libraries from the backends image too, pick a BACKENDS_IMAGE on the same TensorRT," >&2
  echo "  or serve the predictor as a python model (docs/gpu.md, 'If the predictor backends do not load')." >&2
  exit 1
fi
echo "check_backend_libs: every library in $* resolves"
