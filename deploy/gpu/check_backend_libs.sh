#!/usr/bin/env bash
# Fails the image build (deploy/gpu/Dockerfile) when a Triton backend copied from another image
# cannot resolve one of its shared libraries here, naming the library, instead of letting
# tritonserver find out at model load. Checks every *.so* under each folder with ldd, under the
# image's own LD_LIBRARY_PATH (the Dockerfile sets it as Triton's images do) with Triton's own
# library folder added ($TRITON_LIB_DIR, default /opt/tritonserver/lib).
#
# Why that folder: every backend carries `NEEDED libtritonserver.so`, which tritonserver satisfies
# at run time because it has loaded that library itself. /opt/tritonserver/lib is not on the
# default search path, so a plain `ldd` in NVIDIA's own images prints
# `libtritonserver.so => not found` (Triton's QA scripts add the folder by hand, as here). Should it
# still print that (the folder moved), that one line is accepted, and only that one: the server
# provides exactly `libtritonserver.so`; any other unresolved library fails the build.
#
# Usage: check_backend_libs.sh BACKEND_DIR...     (LDD=ldd: the tool, replaceable in tests)
set -euo pipefail
LDD=${LDD:-ldd}
TRITON_LIB_DIR=${TRITON_LIB_DIR:-/opt/tritonserver/lib}
PROVIDED_BY_SERVER="libtritonserver.so"
[ $# -gt 0 ] || { echo "usage: check_backend_libs.sh BACKEND_DIR..." >&2; exit 2; }
export LD_LIBRARY_PATH="${TRITON_LIB_DIR}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
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
    missing=$("$LDD" "$lib" 2>&1 | awk -v ok="$PROVIDED_BY_SERVER" '/not found/ && $1 != ok {print $1}' \
      | sort -u | tr '\n' ' ')
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
echo "check_backend_libs: every library in $* resolves (${PROVIDED_BY_SERVER} is tritonserver's own)"
