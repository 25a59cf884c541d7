#!/usr/bin/env bash
# libtorch for kis-learn (the one crate that links tch): the slim CPU subset of the PyPI torch wheel
# (shared/reference/tch-setup.md §2a, 1.25 GB instead of 4.7 GB), in a venv outside the clone at a
# path keyed by the torch version. tch 0.26.0 pairs with torch 2.13.0 exactly; on the LIBTORCH route
# torch-sys only reads $LIBTORCH/build-version, which the wheel lacks, so it is written here and a
# wrong version fails the build instead of linking against the wrong ABI. Idempotent: the venv is
# rebuilt only when its stamp (the pins) is missing or different; a cached run takes a second.
#
# `import torch` does not work in this venv (libtorch_cuda's dependencies are left out on purpose);
# only the C++ libraries are used. A GPU build needs the full install (tch-setup.md §2b).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

TORCH_VERSION=2.13.0
TORCH_HOME="$KIS_CACHE/torch-$TORCH_VERSION-cpu"
PINS="torch==$TORCH_VERSION nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85"
VENV="$TORCH_HOME/venv"
LIBTORCH="$VENV/lib/python3.11/site-packages/torch"

if [ "$(cat "$TORCH_HOME/stamp" 2>/dev/null)" != "$PINS" ] || [ ! -f "$LIBTORCH/lib/libtorch_cpu.so" ]; then
  log "torch: creating $VENV ($PINS, about 40 s and 1.25 GB)"
  rm -rf "$VENV" "$TORCH_HOME/stamp"
  mkdir -p "$TORCH_HOME"
  python3.11 -m venv "$VENV"
  # --no-deps: the CPU library needs only the CUDA runtime and CUPTI, not the other nvidia wheels.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps $PINS
  echo "$TORCH_VERSION" > "$LIBTORCH/build-version"
  # Written last, so a half-done install is redone.
  echo "$PINS" > "$TORCH_HOME/stamp"
fi
[ "$(cat "$LIBTORCH/build-version")" = "$TORCH_VERSION" ] || echo "$TORCH_VERSION" > "$LIBTORCH/build-version"
log "torch: ready, LIBTORCH=$LIBTORCH"
