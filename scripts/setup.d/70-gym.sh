#!/usr/bin/env bash
# Gymnasium binding of the RL environment (agent/gym): a venv with gymnasium, numpy, pytest and
# maturin from PyPI, and the kis_gym wheel built from the crate by maturin (release) and installed
# in it; scripts/test.sh runs agent/gym/tests with it. Idempotent: the venv is rebuilt when the pins
# change, the wheel when a source it is built from changes (a hash stamp), so a cached run takes a
# second. sb3-contrib and torch (the MaskablePPO bench) are not installed here: agent/bench/setup.sh.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

GYM_HOME="$KIS_CACHE/gym-v1"
PINS="gymnasium==1.4.0 numpy==2.4.6 pytest==9.2.0 maturin==1.16.0"
VENV="$GYM_HOME/venv"

# Debian's python3.11, as for Triton: a venv that does not move with pyenv.
apt_install python3.11 python3.11-venv
mkdir -p "$GYM_HOME"

if [ "$(cat "$GYM_HOME/venv.stamp" 2>/dev/null)" != "$PINS" ]; then
  log "gym: creating $VENV ($PINS)"
  rm -rf "$VENV" "$GYM_HOME/venv.stamp" "$GYM_HOME/wheel.stamp"
  /usr/bin/python3.11 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check $PINS
  echo "$PINS" > "$GYM_HOME/venv.stamp"
fi

# Everything the wheel is compiled from: the binding and the crates it links (kis-sim embeds its
# profiles/ with include_str!), the workspace manifest and the lock file.
sources=(agent/gym/Cargo.toml agent/gym/pyproject.toml agent/gym/src agent/gym/python
         agent/sim/Cargo.toml agent/sim/src agent/sim/profiles
         agent/autoscale/Cargo.toml agent/autoscale/src
         loadgen/traffic/Cargo.toml loadgen/traffic/src Cargo.toml Cargo.lock)
src_hash="$(cd "$KIS_ROOT" && find "${sources[@]}" -type f ! -name '*.pyc' | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -c1-16)"
if [ "$(cat "$GYM_HOME/wheel.stamp" 2>/dev/null)" != "$src_hash" ]; then
  log "gym: building the kis_gym wheel (maturin, release; a few minutes the first time)"
  rm -rf "$GYM_HOME/wheels" "$GYM_HOME/wheel.stamp"
  # Its own target dir: the wheel's pyo3 has the extension-module feature, the workspace's not.
  CARGO_TARGET_DIR="$GYM_HOME/target" "$VENV/bin/maturin" build --release --locked --quiet \
    -m "$KIS_ROOT/agent/gym/Cargo.toml" -i "$VENV/bin/python" --out "$GYM_HOME/wheels"
  "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$GYM_HOME"/wheels/kis_gym-*.whl
  "$VENV/bin/python" -c 'import kis_gym' || { echo "gym: the built wheel does not import" >&2; exit 1; }
  echo "$src_hash" > "$GYM_HOME/wheel.stamp"
fi
log "gym: ready in $VENV (kis_gym wheel $src_hash)"
