#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), checks formatting and lints,
# runs the whole workspace's unit, integration and end-to-end tests, then fuzzes the adapter's
# label-selector parser briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
bash scripts/fuzz.sh "${KIS_FUZZ_SECONDS:-30}"
