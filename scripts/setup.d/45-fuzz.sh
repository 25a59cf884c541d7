#!/usr/bin/env bash
# cargo-fuzz for the adapter's label-selector fuzz target (adapter/fuzz), run briefly by
# scripts/test.sh (scripts/fuzz.sh). libFuzzer needs the nightly toolchain: without it this part
# fails with a message naming the fix (install nightly, or skip this part: `setup.sh --skip fuzz`,
# and `KIS_FUZZ_SECONDS=0 scripts/test.sh`). cargo-fuzz itself is built once into a versioned cache.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
version=0.13.1
root="$KIS_CACHE/cargo-fuzz-$version"
if ! fuzz_requirements; then
  log "fuzz: cannot set up fuzzing (see above); skip it with: scripts/setup.sh --skip fuzz"
  exit 1
fi
if [ ! -x "$root/bin/cargo-fuzz" ]; then
  log "fuzz: cargo install cargo-fuzz $version into $root"
  cargo install -q --locked --root "$root" cargo-fuzz --version "$version"
fi
