#!/usr/bin/env bash
# Installs what KIS needs, idempotently, part by part: each scripts/setup.d/NN-NAME.sh is the part
# NAME (base, triton, loadgen, adapter, fuzz, kube, ...); it checks what is already there (Debian
# packages, the cached venvs and builds under ~/.cache/kis/) and installs only what is missing.
#
#   scripts/setup.sh                      every part
#   scripts/setup.sh triton loadgen       only these (base always comes first: the others need it)
#   scripts/setup.sh --skip fuzz          every part but these (repeatable)
#   scripts/setup.sh --list               the part names, in the order they run
#
# Parts run in their NN order whatever the order of the arguments; an unknown name is an error that
# lists the known ones. A new part is a new file in setup.d/ and needs no change here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

part_name() { local b; b="$(basename "$1" .sh)"; printf '%s\n' "${b#*-}"; }
all=()
for f in "$here"/setup.d/*.sh; do
  [ -e "$f" ] && all+=("$(part_name "$f")")
done

want=() skip=()
while [ $# -gt 0 ]; do
  case "$1" in
    --list) printf '%s\n' "${all[@]}"; exit 0 ;;
    --skip) [ $# -ge 2 ] || { echo "setup: --skip needs a part name" >&2; exit 2; }; skip+=("$2"); shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "setup: unknown option '$1' (use --list, --skip PART or part names)" >&2; exit 2 ;;
    *) want+=("$1") ;;
  esac
  shift
done
for name in ${want[@]+"${want[@]}"} ${skip[@]+"${skip[@]}"}; do
  if ! printf '%s\n' "${all[@]}" | grep -qx -- "$name"; then
    echo "setup: unknown part '$name' (parts: ${all[*]})" >&2
    exit 2
  fi
done

for f in "$here"/setup.d/*.sh; do
  [ -e "$f" ] || continue
  name="$(part_name "$f")"
  if [ ${#want[@]} -gt 0 ] && [ "$name" != base ] && ! printf '%s\n' "${want[@]}" | grep -qx -- "$name"; then
    continue
  fi
  if [ ${#skip[@]} -gt 0 ] && printf '%s\n' "${skip[@]}" | grep -qx -- "$name"; then
    continue
  fi
  bash "$f"
done
