#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), checks formatting and lints,
# runs the whole workspace's unit, integration and end-to-end tests, then fuzzes the adapter's
# label-selector parser briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Say so up front when the disk is nearly full: a build that runs out of space fails in rustc or
# the linker with a message that does not name the cause.
avail_mib=$(( $(df -Pk . | awk 'NR==2 {print $4}') / 1024 ))
if [ "$avail_mib" -lt 4096 ]; then
  echo "test: warning: only ${avail_mib} MiB free on this disk; a first build and test run writes about 3 GiB" >&2
fi
# libtorch for kis-learn (scripts/setup.d/60-torch.sh); its build.rs files embed the rpath.
export LIBTORCH="${KIS_CACHE:-$HOME/.cache/kis}/torch-2.13.0-cpu/venv/lib/python3.11/site-packages/torch"
unset LIBTORCH_USE_PYTORCH
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked --features kis-agent/train -- -D warnings
cargo test --workspace --locked --features kis-agent/train
# The Gymnasium binding against the Rust env it wraps (venv and wheel: scripts/setup.d/70-gym.sh).
"${KIS_CACHE:-$HOME/.cache/kis}/gym-v1/venv/bin/python" -m pytest -q -p no:cacheprovider agent/gym/tests
bash scripts/fuzz.sh "${KIS_FUZZ_SECONDS:-30}"
