#!/usr/bin/env bash
# Quick start: set up, build kis-loadgen, start the local Triton (CPU), drive its `image` model
# with the `ramp` pattern for DURATION (default 60s), print the summary and write
# out/quickstart.{json,png} and out/quickstart_*.csv. Triton is stopped on exit, whatever happens.
#
#   scripts/quickstart.sh [DURATION]      e.g. scripts/quickstart.sh 5m   (the original 300 s ramp)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60s}"

bash scripts/setup.sh
cargo build --release -p kis-loadgen

started=0
cleanup() { [ "$started" = 1 ] && bash scripts/triton/run.sh stop || true; }
trap cleanup EXIT INT TERM
bash scripts/triton/run.sh start
started=1

mkdir -p out
./target/release/kis-loadgen --pattern ramp --duration "$duration" \
  --json out/quickstart.json --plot out/quickstart.png --csv out/quickstart \
  --hdr-log out/quickstart.hlog
echo "quickstart: wrote out/quickstart.json, out/quickstart.png, out/quickstart_stats.csv, out/quickstart_stats_history.csv, out/quickstart.hlog"
