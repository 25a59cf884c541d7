#!/usr/bin/env bash
# Base tools every other part relies on.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install ca-certificates curl python3 python3-venv python3-dev procps
