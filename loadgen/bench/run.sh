#!/usr/bin/env bash
# The peer benchmark's entry point: loadgen/bench/run.sh [--quick] [--only SCENARIO] [...]
# (all flags: loadgen/bench/run.py --help; what it measures: loadgen/bench/README.md).
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
