#!/usr/bin/env bash
# cargo-fuzz for the adapter's label-selector fuzz target (adapter/fuzz), run briefly by
# scripts/test.sh. libFuzzer needs the nightly toolchain, which this machine image ships beside
# stable; cargo-fuzz itself is built once into a versioned cache.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
version=0.13.1
root="$KIS_CACHE/cargo-fuzz-$version"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  log "fuzz: no nightly toolchain here; scripts/fuzz.sh will say so and fail"
  exit 0
fi
if [ ! -x "$root/bin/cargo-fuzz" ]; then
  log "fuzz: cargo install cargo-fuzz $version into $root"
  cargo install -q --locked --root "$root" cargo-fuzz --version "$version"
fi
