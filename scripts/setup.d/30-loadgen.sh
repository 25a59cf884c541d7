#!/usr/bin/env bash
# kis-loadgen: a TrueType font for `--plot` PNG/SVG text (plotters' ab_glyph backend), and `kill`
# (procps) used by the SIGINT test.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
apt_install fonts-dejavu-core procps
