#!/usr/bin/env bash
# kis-loadgen: `kill` (procps) used by the SIGINT test. (No font: kis-plot embeds its own.)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install procps
