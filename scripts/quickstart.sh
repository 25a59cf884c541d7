#!/usr/bin/env bash
# Quick start: set up only what a load run needs (scripts/setup.sh triton loadgen: no Kubernetes,
# no fuzzing), build kis-loadgen, start the local Triton (CPU) on free loopback ports, drive its
# `image` model with the `ramp` pattern for DURATION (default 60s), print the summary and write
# out/quickstart.{json,png}, out/quickstart_*.csv and out/quickstart.hlog. Triton is stopped on exit,
# whatever happens.
#
#   scripts/quickstart.sh [--port N] [DURATION]   e.g. scripts/quickstart.sh 5m (the original 300 s ramp)
#
# Triton's HTTP port is N (and N+1 gRPC, N+2 metrics) with --port or $KIS_QUICKSTART_PORT, else
# three free ones. The binary is taken from cargo's target directory (CARGO_TARGET_DIR honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${KIS_QUICKSTART_PORT:-}"
duration=60s
while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || { echo "quickstart: --port needs a number" >&2; exit 2; }; port="$2"; shift ;;
    --port=*) port="${1#--port=}" ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "quickstart: unknown option '$1'" >&2; exit 2 ;;
    *) duration="$1" ;;
  esac
  shift
done

bash scripts/setup.sh triton loadgen
cargo build --release -p kis-loadgen
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
loadgen="$target_dir/release/kis-loadgen"

if [ -n "$port" ]; then
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65533 ] \
    || { echo "quickstart: --port '$port' is not a port (1-65533; N+1 and N+2 are used too)" >&2; exit 2; }
  ports=("$port" $((port + 1)) $((port + 2)))
else
  # Three loopback ports free right now (the kernel's choice, so not 8000 when that is taken).
  read -r -a ports < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
fi

started=0
cleanup() { [ "$started" = 1 ] && bash scripts/triton/run.sh stop || true; }
trap cleanup EXIT INT TERM
bash scripts/triton/run.sh start --http-port "${ports[0]}" --grpc-port "${ports[1]}" --metrics-port "${ports[2]}"
started=1

mkdir -p out
"$loadgen" --url "http://127.0.0.1:${ports[0]}" --model image --pattern ramp --duration "$duration" \
  --json out/quickstart.json --plot out/quickstart.png --csv out/quickstart \
  --hdr-log out/quickstart.hlog
echo "quickstart: wrote out/quickstart.json, out/quickstart.png, out/quickstart_stats.csv, out/quickstart_stats_history.csv, out/quickstart.hlog"
