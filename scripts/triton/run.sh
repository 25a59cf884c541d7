#!/usr/bin/env bash
# Starts, stops or reports the local Triton (CPU only) that scripts/setup.d/20-triton.sh installs,
# for people and the quick start. Tests use the kis-fixtures crate instead (free ports, cleanup).
#
#   scripts/triton/run.sh start|stop|status [--http-port N] [--grpc-port N] [--metrics-port N]
#
# Listens on 127.0.0.1 (defaults 8000 HTTP, 8001 gRPC, 8002 metrics). The pid file and the log are
# in $KIS_CACHE/triton-v1/run/. `start` waits up to 60 s for every model to be ready; `stop` sends
# SIGTERM, waits up to 15 s, then SIGKILLs the server's process group.
set -euo pipefail
KIS_CACHE="${KIS_CACHE:-$HOME/.cache/kis}"
HOME_DIR="$KIS_CACHE/triton-v1"
RUN="$HOME_DIR/run"
PIDFILE="$RUN/tritonserver.pid"
LOG="$RUN/tritonserver.log"
MODELS=(identity image faulty)

die() { echo "run.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 start|stop|status [--http-port N] [--grpc-port N] [--metrics-port N]" >&2; exit 2; }

[ $# -ge 1 ] || usage
cmd=$1; shift
http=8000 grpc=8001 metrics=8002
while [ $# -gt 0 ]; do
  case "$1" in
    --http-port|--grpc-port|--metrics-port)
      [ $# -ge 2 ] || die "$1 needs a value"
      [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1: '$2' is not a port (1-65535)"
      case "$1" in --http-port) http=$2 ;; --grpc-port) grpc=$2 ;; --metrics-port) metrics=$2 ;; esac
      shift 2 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q tritonserver "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }

case "$cmd" in
  start)
    [ -x "$HOME_DIR/bin/tritonserver" ] && [ -f "$HOME_DIR/stamp" ] \
      || die "Triton is not installed in $HOME_DIR: run scripts/setup.sh"
    if pid=$(running_pid); then die "already running (pid $pid); stop it first"; fi
    mkdir -p "$RUN"
    # Its own session and process group, so stop can take the Python stubs with it.
    setsid "$HOME_DIR/bin/tritonserver" \
      --http-address=127.0.0.1 --http-port="$http" \
      --grpc-address=127.0.0.1 --grpc-port="$grpc" \
      --metrics-address=127.0.0.1 --metrics-port="$metrics" \
      --exit-timeout-secs=5 </dev/null >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" > "$PIDFILE"
    echo "$http $grpc $metrics" > "$RUN/ports"
    for _ in $(seq 600); do
      kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOG" >&2; rm -f "$PIDFILE"; die "tritonserver exited during start-up (log $LOG)"; }
      ready=1
      for path in /v2/health/ready "${MODELS[@]/#//v2/models/}"; do
        case "$path" in /v2/models/*) path="$path/ready" ;; esac
        [ "$(http_code "http://127.0.0.1:$http$path")" = 200 ] || { ready=0; break; }
      done
      if [ $ready = 1 ]; then
        echo "tritonserver ready (pid $pid): http://127.0.0.1:$http grpc 127.0.0.1:$grpc metrics http://127.0.0.1:$metrics/metrics; log $LOG"
        exit 0
      fi
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    die "tritonserver not ready after 60 s; killed it (log $LOG)"
    ;;
  stop)
    pid=$(running_pid) || { rm -f "$PIDFILE"; echo "tritonserver is not running"; exit 0; }
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: no exit 15 s after SIGTERM; sending SIGKILL" >&2
    fi
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "tritonserver stopped (pid $pid)"
    ;;
  status)
    if pid=$(running_pid); then
      read -r h _ _ < "$RUN/ports" 2>/dev/null || h=$http
      echo "tritonserver running (pid $pid), /v2/health/ready: $(http_code "http://127.0.0.1:$h/v2/health/ready")"
    else
      echo "tritonserver is not running"
      exit 3
    fi
    ;;
  *) usage ;;
esac
