#!/usr/bin/env bash
# Installs everything the tests, benches and the quick start need, idempotently: each part in
# scripts/setup.d/ checks what is already there (Debian packages, the cached venvs and builds under
# ~/.cache/kis/) and only installs what is missing. Safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for part in "$here"/setup.d/*.sh; do
  [ -e "$part" ] || continue
  bash "$part"
done
