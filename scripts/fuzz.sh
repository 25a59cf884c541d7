#!/usr/bin/env bash
# Runs the adapter's label-selector fuzz target for SECONDS (default 30; 0 skips): libFuzzer through
# cargo-fuzz on the nightly toolchain (set up by scripts/setup.d/45-fuzz.sh). Fails on a crash, and
# when nightly or cargo-fuzz is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }
if [ "$seconds" = 0 ]; then
  echo "fuzz: skipped (0 seconds)"
  exit 0
fi
fuzz="$KIS_CACHE/cargo-fuzz-0.13.1/bin/cargo-fuzz"
fuzz_requirements || exit 1
[ -x "$fuzz" ] || { echo "fuzz: $fuzz missing; run bash scripts/setup.sh fuzz" >&2; exit 1; }
cd "$KIS_ROOT/adapter/fuzz"
# Run through cargo so cargo-fuzz finds the toolchain; `cargo-fuzz fuzz ...` is how cargo calls it.
cargo +nightly --version >/dev/null
PATH="$(dirname "$fuzz"):$PATH" cargo +nightly fuzz run selector -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 15
echo "fuzz: selector ran ${seconds}s without a crash"
