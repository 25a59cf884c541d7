#!/usr/bin/env bash
# Regenerates DejaVuSans-subset.ttf: Debian's DejaVu Sans (fonts-dejavu-core) cut to the characters
# plot text uses (Basic Latin, Latin-1, general punctuation, arrows, math operators, Greek), so the
# embedded font is about a tenth of the full 760 KB. Needs fonttools (`pip install fonttools`).
# Licence: LICENSE beside this script (Bitstream Vera + public-domain DejaVu changes; modified
# copies may be redistributed under names without "Bitstream" or "Vera").
set -euo pipefail
cd "$(dirname "$0")"
src=${1:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
pyftsubset "$src" --output-file=DejaVuSans-subset.ttf \
  --unicodes='U+0020-007E,U+00A0-00FF,U+0391-03C9,U+2010-2044,U+2190-2199,U+2200-22FF,U+2264-2265' \
  --layout-features='kern' --no-hinting --desubroutinize
ls -l DejaVuSans-subset.ttf
