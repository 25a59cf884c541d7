#!/usr/bin/env bash
# Quick start: the main job. Sets up what the live testbed needs (scripts/setup.sh triton loadgen kube:
# the Triton venv, etcd, Prometheus, nginx and Kubernetes v1.20.2 built from Debian's source; no
# fuzzing, no torch), builds kis-agent, kis-e2e, kis-adapter and kis-loadgen, and runs
# `kis-agent demo`: the shipped policy against the best tuned rule, each closing the loop on the
# testbed under the same compressed spike. Prints the comparison table and the plot paths; the run
# folder is out/demo/DATE-TIME/.
#
#   scripts/quickstart.sh                      the demo: shipped policy vs best tuned rule (~6 min once set up)
#   scripts/quickstart.sh --all                the four-way demo (+ forecaster, HPA on queue length; ~12 min)
#   scripts/quickstart.sh -- --duration 60s    extra flags for `kis-agent demo` after `--`
#   scripts/quickstart.sh --load-only [--port N] [DURATION]
#                                              the fast path for load generation alone: no Kubernetes;
#                                              a local CPU Triton driven with the ramp pattern (default 60s)
#
# The first run on a fresh machine builds Kubernetes from source: 15-30 minutes on 2 cores, once
# (cached under ~/.cache/kis/). Binaries come from cargo's target directory (CARGO_TARGET_DIR honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=demo all=() port="${KIS_QUICKSTART_PORT:-}" duration=60s demo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --load-only) mode=load ;;
    --all) all=(--all) ;;
    --port) [ $# -ge 2 ] || { echo "quickstart: --port needs a number" >&2; exit 2; }; port="$2"; shift ;;
    --port=*) port="${1#--port=}" ;;
    --) shift; demo_args=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "quickstart: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ "$mode" = load ] || { echo "quickstart: DURATION '$1' is for --load-only (demo flags go after --)" >&2; exit 2; }
       duration="$1" ;;
  esac
  shift
done
if [ "$mode" = demo ] && [ -n "$port" ]; then
  echo "quickstart: --port is for --load-only" >&2; exit 2
fi
target_dir() {
  cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

load_only() {
  bash scripts/setup.sh triton loadgen
  cargo build --release -p kis-loadgen
  local loadgen ports
  started=0  # global: the EXIT trap reads it after this function returns
  loadgen="$(target_dir)/release/kis-loadgen"
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
  cleanup() { [ "$started" = 1 ] && bash scripts/triton/run.sh stop || true; }
  trap cleanup EXIT INT TERM
  bash scripts/triton/run.sh start --http-port "${ports[0]}" --grpc-port "${ports[1]}" --metrics-port "${ports[2]}"
  started=1
  mkdir -p out
  "$loadgen" --url "http://127.0.0.1:${ports[0]}" --model image --pattern ramp --duration "$duration" \
    --json out/quickstart.json --plot out/quickstart.png --csv out/quickstart \
    --hdr-log out/quickstart.hlog
  echo "quickstart: wrote out/quickstart.json, out/quickstart.png, out/quickstart_stats.csv, out/quickstart_stats_history.csv, out/quickstart.hlog"
}

# Set-up with a heartbeat: the Kubernetes build prints little for many minutes.
setup_with_progress() {
  local log t0 pid rc=0
  mkdir -p out
  log="out/quickstart-setup.log"
  t0=$(date +%s)
  bash scripts/setup.sh "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null || break
    echo "quickstart: set-up still running, $(( ($(date +%s) - t0) / 60 )) min so far: $(tail -n 1 "$log" | cut -c1-100)"
  done
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 30 "$log" >&2
    echo "quickstart: set-up failed (exit $rc); full log: $log" >&2
    exit "$rc"
  fi
  echo "quickstart: set-up done in $(( $(date +%s) - t0 )) s (log: $log)"
}

demo() {
  local cache="${KIS_CACHE:-$HOME/.cache/kis}"
  if [ -x "$cache/kube-v1.20.2-1/bin/kube-apiserver" ]; then
    echo "quickstart: Kubernetes v1.20.2 is cached in $cache; set-up checks the rest"
  else
    echo "quickstart: first run: set-up builds Kubernetes v1.20.2 from Debian's source (15-30 min on 2 cores, once;"
    echo "            cached in $cache), then the demo takes about 6 minutes. Progress every 30 s."
  fi
  setup_with_progress triton loadgen kube
  echo "quickstart: building kis-agent, kis-e2e, kis-adapter, kis-loadgen (debug, as the tests use them)"
  cargo build -p kis-agent -p kis-e2e -p kis-adapter -p kis-loadgen
  "$(target_dir)/debug/kis-agent" demo ${all[@]+"${all[@]}"} ${demo_args[@]+"${demo_args[@]}"}
}

if [ "$mode" = load ]; then load_only; else demo; fi
