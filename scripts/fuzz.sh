#!/usr/bin/env bash
# Runs the adapter's label-selector fuzz target for SECONDS (default 30): libFuzzer through
# cargo-fuzz on the nightly toolchain (installed by scripts/setup.d/45-fuzz.sh). Fails on a crash,
# and when nightly or cargo-fuzz is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds="${1:-30}"
fuzz="$KIS_CACHE/cargo-fuzz-0.13.1/bin/cargo-fuzz"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain list); cargo fuzz needs it" >&2
  exit 1
fi
[ -x "$fuzz" ] || { echo "fuzz: $fuzz missing; run bash scripts/setup.sh" >&2; exit 1; }
cd "$KIS_ROOT/adapter/fuzz"
# Run through cargo so cargo-fuzz finds the toolchain; `cargo-fuzz fuzz ...` is how cargo calls it.
cargo +nightly --version >/dev/null
PATH="$(dirname "$fuzz"):$PATH" cargo +nightly fuzz run selector -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 15
echo "fuzz: selector ran ${seconds}s without a crash"
