#!/usr/bin/env bash
# Set-up of the MaskablePPO bench (agent/gym/bench/train_maskable_ppo.py), not part of the test
# set-up: a venv at $KIS_CACHE/gym-bench-v1/venv with torch (the full PyPI wheel, about 4.7 GB with
# its CUDA libraries, so that `import torch` works; the version kis-learn's tch pairs with),
# stable-baselines3 and sb3-contrib, plus the kis_gym wheel that scripts/setup.d/70-gym.sh built.
# Idempotent: the venv is rebuilt when the pins change, the wheel reinstalled when it changed.
set -euo pipefail
source "$(dirname "$0")/../../../scripts/lib.sh"

bash "$KIS_ROOT/scripts/setup.d/70-gym.sh"
BENCH="$KIS_CACHE/gym-bench-v1"
PINS="torch==2.13.0 stable-baselines3==2.9.2 sb3-contrib==2.9.2 gymnasium==1.4.0 numpy==2.4.6"
VENV="$BENCH/venv"
if [ "$(cat "$BENCH/venv.stamp" 2>/dev/null)" != "$PINS" ]; then
  log "gym-bench: creating $VENV ($PINS; several GB)"
  rm -rf "$VENV" "$BENCH/venv.stamp" "$BENCH/wheel.stamp"
  mkdir -p "$BENCH"
  /usr/bin/python3.11 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check $PINS
  echo "$PINS" > "$BENCH/venv.stamp"
fi
wheel_stamp="$(cat "$KIS_CACHE/gym-v1/wheel.stamp")"
if [ "$(cat "$BENCH/wheel.stamp" 2>/dev/null)" != "$wheel_stamp" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$KIS_CACHE"/gym-v1/wheels/kis_gym-*.whl
  echo "$wheel_stamp" > "$BENCH/wheel.stamp"
fi
"$VENV/bin/python" -c 'import torch, sb3_contrib, kis_gym'
log "gym-bench: ready in $VENV"
