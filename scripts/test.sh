#!/usr/bin/env bash
# Runs every test: checks the fuzzing requirement up front, installs what is missing
# (scripts/setup.sh: every part, but fuzz when KIS_FUZZ_SECONDS=0), checks formatting and lints,
# runs the whole workspace's unit, integration and end-to-end tests, then fuzzes the adapter's
# label-selector parser for KIS_FUZZ_SECONDS (default 30; 0 skips fuzzing and its set-up).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
fuzz_seconds="${KIS_FUZZ_SECONDS:-30}"
[[ "$fuzz_seconds" =~ ^[0-9]+$ ]] || { echo "test: KIS_FUZZ_SECONDS must be a whole number of seconds, got '$fuzz_seconds'" >&2; exit 2; }
setup_args=()
if [ "$fuzz_seconds" = 0 ]; then
  setup_args+=(--skip fuzz)
elif ! fuzz_requirements; then
  # Say it now, not after the whole test run.
  echo "test: stopping before the build: fuzzing cannot run here (see above)" >&2
  exit 1
fi
# Say so up front when the disk is nearly full: a build that runs out of space fails in rustc or
# the linker with a message that does not name the cause. A run from a fresh clone writes about
# 1.8 GiB (target/ and the fuzz target's; see README.md); 4 GiB leaves room for a second build.
avail_mib=$(( $(df -Pk . | awk 'NR==2 {print $4}') / 1024 ))
if [ "$avail_mib" -lt 4096 ]; then
  echo "test: warning: only ${avail_mib} MiB free on this disk; a first build and test run writes about 1.8 GiB (more without CI's CARGO_INCREMENTAL=0)" >&2
fi
bash scripts/setup.sh ${setup_args[@]+"${setup_args[@]}"}
# libtorch for kis-learn (scripts/setup.d/60-torch.sh); its build.rs files embed the rpath.
export LIBTORCH="${KIS_CACHE:-$HOME/.cache/kis}/torch-2.13.0-cpu/venv/lib/python3.11/site-packages/torch"
unset LIBTORCH_USE_PYTORCH
cargo fmt --all --check
# No module import cycle within a crate, no function over 120 lines outside tests (issue 12).
bash scripts/dev/cycles.sh
bash scripts/dev/long-fns.sh
cargo clippy --workspace --all-targets --locked --features kis-agent/train -- -D warnings
cargo test --workspace --locked --features kis-agent/train
# The Gymnasium binding against the Rust env it wraps (venv and wheel: scripts/setup.d/70-gym.sh).
"${KIS_CACHE:-$HOME/.cache/kis}/gym-v1/venv/bin/python" -m pytest -q -p no:cacheprovider agent/gym/tests
bash scripts/fuzz.sh "$fuzz_seconds"
