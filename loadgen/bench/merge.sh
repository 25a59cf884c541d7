#!/usr/bin/env bash
# Issue 19: `kis-loadgen merge` of 100 shards' 10-minute interval logs in under 2 s, in memory
# that does not grow with the number of intervals.
#
#   loadgen/bench/merge.sh                 # 100 shards x 600 s, and x 60 s for the memory check (~1-2 min)
#   loadgen/bench/merge.sh 3 5 5           # SHARDS SECONDS SHORT_SECONDS: a quick check of the script
#
# Builds the release binary and the fixture writer (examples/merge_fixture.rs; a no-op when built;
# KIS_LOADGEN and MERGE_FIXTURE name other builds and skip it),
# writes synthetic shard results (the files a run writes, made-up latencies, 100,000 req/s in all),
# then times `kis-loadgen merge` over them with /usr/bin/time -v (wall time, CPU time, max RSS),
# once for the long run and once for a run of SHORT_SECONDS: the same max RSS for both shows
# memory per interval is constant. Writes loadgen/bench/runs/<UTC date>-merge[-N]/: summary.md,
# commands.txt, machine.txt, the raw /usr/bin/time output (time-S.txt), merge's stderr
# (stderr-S.txt) and its own phase times from it (phases-S.txt: reports read, intervals streamed,
# outputs written; RUST_LOG debug lines).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shards="${1:-100}" secs="${2:-600}" short="${3:-60}" rate="${RATE:-100000}"
cd "$root"
bin="${KIS_LOADGEN:-$root/target/release/kis-loadgen}"
fixture="${MERGE_FIXTURE:-$root/target/release/examples/merge_fixture}"
if [ -z "${KIS_LOADGEN:-}" ] || [ -z "${MERGE_FIXTURE:-}" ]; then
  cargo build --release -q -p kis-loadgen --bin kis-loadgen --example merge_fixture
fi
out="$(python3 -c "import sys; sys.path.insert(0, '$here'); import pairs, os; d = pairs.run_dir('merge'); os.makedirs(d); pairs.machine_info(d, '$bin'); print(d)")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: > "$out/commands.txt"
declare -A wall rss cpu
for s in "$secs" "$short"; do
  dir="$work/shards-$s"
  echo "$fixture $dir $shards $s $rate" >> "$out/commands.txt"
  "$fixture" "$dir" "$shards" "$s" "$rate" > /dev/null
  cmd=("$bin" merge "$dir" --quiet --json "$work/merged-$s.json" --hdr-log "$work/merged-$s.hlog")
  echo "RUST_LOG=kis_loadgen::merge=debug /usr/bin/time -v ${cmd[*]}" >> "$out/commands.txt"
  RUST_LOG=kis_loadgen::merge=debug /usr/bin/time -v -o "$out/time-$s.txt" "${cmd[@]}" \
    2> "$out/stderr-$s.txt"
  sed 's/\x1b\[[0-9;]*m//g' "$out/stderr-$s.txt" | grep 'merge:' > "$out/phases-$s.txt" || true
  wall[$s]="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out/time-$s.txt")"
  rss[$s]="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time-$s.txt")"
  cpu[$s]="$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$out/time-$s.txt")"
  du -sh "$dir" | awk '{print $1}' > "$out/input-size-$s.txt"
  rm -rf "$dir"
done
to_s() { awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }' <<< "$1"; }
long_s="$(to_s "${wall[$secs]}")"
{
  echo "# kis-loadgen merge: $shards shards x $secs s of 1 s interval logs ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "Synthetic shard results (examples/merge_fixture.rs: the files a run writes, $rate req/s in all)."
  echo "Machine: see machine.txt. Raw: time-*.txt (/usr/bin/time -v)."
  echo
  echo "| intervals per shard | input | wall | CPU (user + sys) | max RSS |"
  echo "|---|---|---|---|---|"
  for s in "$secs" "$short"; do
    echo "| $s | $(cat "$out/input-size-$s.txt") | ${wall[$s]} | ${cpu[$s]} s | $(( ${rss[$s]} / 1024 )) MB |"
  done
  echo
  echo "Goal (issue 19): merging $shards shards' $secs-interval logs takes under 2 s, in memory that does"
  echo "not grow with the number of intervals."
  echo
  awk -v t="$long_s" 'BEGIN { printf "- Time: %.2f s for the long run: %s.\n", t, (t < 2.0 ? "met" : "missed") }'
  awk -v a="${rss[$secs]}" -v b="${rss[$short]}" -v n="$((secs / short))" 'BEGIN {
    printf "- Memory: max RSS %.1f MB with %sx the intervals of the short run (%.1f MB), ratio %.2f: %s (within 10 %%).\n",
      a / 1024, n, b / 1024, a / b, (a <= 1.1 * b ? "met" : "missed") }'
  echo
  echo "Where the time goes (merge's own phase times, phases-*.txt):"
  echo
  for s in "$secs" "$short"; do
    sed "s/^.*merge: /- $s intervals: /" "$out/phases-$s.txt"
  done
} > "$out/summary.md"
cat "$out/summary.md"
echo "results in $out" >&2
