#!/usr/bin/env bash
# The agent's performance benches (issues 13 and 14), peers side by side in one run, into a dated
# run folder agent/bench/runs/YYYY-MM-DD-HHMM/ (commands, raw outputs, machine info, summary.md with
# the ratios against the goals). Meant for a quiet machine: nothing else running.
#
#   agent/bench/run.sh [--quick] [--only PARTS] [--profile release|dev] [--out DIR]
#
# Parts (comma-separated for --only; default all, in this order):
#   steps   env control steps/s, Rust (kis-sim VecEnv) vs Python (kis_gym), 1 and 16 envs, 1 thread;
#           again on the same scenario at 1e-6 of its rate (the binding's own cost per step)
#   update  one PPO update, kis-learn (tch) vs PyTorch, same torch 2.13.0 build, 1 thread
#   train   training end to end: kis-agent train vs sb3-contrib MaskablePPO on the same scenario,
#           both on one core; then kis-agent train on all cores, for the 1M-steps estimate
#   decide  policy decision latency without libtorch (kis-policy), the shipped policy and the
#           paper-sized network
# --quick shrinks every part (checks that the run works; the figures are not measurements).
# --profile dev builds the Rust side unoptimised: only to check the script (ratios meaningless).
# The set-up (agent/bench/setup.sh) and the builds run first and are not counted in the parts'
# times; their logs go into the run folder.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

quick=0 only="steps,update,train,decide" profile=release out="" invoked="agent/bench/run.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) [ $# -ge 2 ] || { echo "run.sh: --only needs a list of parts" >&2; exit 2; }; only="$2"; shift ;;
    --profile) [ $# -ge 2 ] || { echo "run.sh: --profile needs release or dev" >&2; exit 2; }; profile="$2"; shift ;;
    --out) [ $# -ge 2 ] || { echo "run.sh: --out needs a folder" >&2; exit 2; }; out="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$profile" in release|dev) ;; *) echo "run.sh: --profile must be release or dev, got '$profile'" >&2; exit 2 ;; esac
IFS=, read -ra parts <<< "$only"
for p in "${parts[@]}"; do
  case "$p" in steps|update|train|decide) ;; *) echo "run.sh: unknown part '$p' (parts: steps, update, train, decide)" >&2; exit 2 ;; esac
done
want() { printf '%s\n' "${parts[@]}" | grep -qx "$1"; }

# Sizes: full (a quiet 2-core machine: about 6 minutes of parts) and quick (about a minute).
if [ "$quick" = 1 ]; then
  STEPS=50 UPDATE_REPS=2 DECIDE_N=2000 SB3_STEPS=2048 KIS1_STEPS=4096 KIS2_STEPS=4096
else
  STEPS=2000 UPDATE_REPS=6 DECIDE_N=100000 SB3_STEPS=40960 KIS1_STEPS=163840 KIS2_STEPS=204800
fi
SCENARIO_STEPS=default                                        # a named kis-sim scenario
SCENARIO_TRAIN=agent/learn/scenarios/gpu16-randomized.json    # the shipped policy's scenario
PIN="taskset -c 0"                                            # "per core": one CPU for both peers

run_dir="${out:-agent/bench/runs/$(date -u +%Y-%m-%d-%H%M)}"
[ "$quick" = 1 ] && [ -z "$out" ] && run_dir="${run_dir}-quick"
mkdir -p "$run_dir"
run_dir="$(cd "$run_dir" && pwd)"
: > "$run_dir/commands.txt"
echo "$invoked" > "$run_dir/command.txt"
echo "quick=$quick profile=$profile parts=$only" >> "$run_dir/command.txt"

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# cmd NAME CMD...: runs CMD, stdout+stderr to NAME.txt in the run folder, with its wall time and
# the load average before and after in timing.csv; the command line goes to commands.txt.
cmd() {
  local name="$1"; shift
  printf '%s: %s\n' "$name" "$*" >> "$run_dir/commands.txt"
  local before after t0 t1 rc=0
  before="$(cut -d' ' -f1-3 /proc/loadavg)"
  t0="$(date +%s.%N)"
  "$@" > "$run_dir/$name.txt" 2>&1 || rc=$?
  t1="$(date +%s.%N)"
  after="$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%s,%s,%s,%s,%s\n' "$name" "$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")" "$before" "$after" "$rc" \
    >> "$run_dir/timing.csv"
  if [ "$rc" != 0 ]; then
    log "$name failed (exit $rc); its output:"; tail -n 20 "$run_dir/$name.txt" >&2; exit 1
  fi
}
echo "name,seconds,load_before,load_after,exit" > "$run_dir/timing.csv"

machine() {
  {
    echo "when: $(date -u +%FT%TZ) ($1)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . 2>/dev/null || echo ' (with local changes)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}')"
    echo "loadavg: $(cat /proc/loadavg)"
    echo "kernel: $(uname -sr)"
    echo "rustc: $(rustc --version)"
  } >> "$run_dir/machine.txt"
}
: > "$run_dir/machine.txt"
machine before

log "run folder $run_dir"
log "set-up (agent/bench/setup.sh; cached after the first time)"
bash agent/bench/setup.sh > "$run_dir/setup.log" 2>&1 || { tail -n 20 "$run_dir/setup.log" >&2; exit 1; }
PY="${KIS_CACHE:-$HOME/.cache/kis}/agent-bench-v1/venv/bin/python"
GYM_PY="${KIS_CACHE:-$HOME/.cache/kis}/gym-v1/venv/bin/python"
export LIBTORCH="${KIS_CACHE:-$HOME/.cache/kis}/torch-2.13.0-cpu/venv/lib/python3.11/site-packages/torch"
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CI=true  # no progress bars in the logs

log "building ($profile)"
pflag=(--release); bflag=(); tdir=release
[ "$profile" = dev ] && { pflag=(); bflag=(--profile dev); tdir=debug; }
build() (
  set -x
  if want steps; then cargo build --locked ${pflag[@]+"${pflag[@]}"} -p kis-sim --example env_steps; fi
  if want update; then cargo bench --locked --no-run ${bflag[@]+"${bflag[@]}"} -p kis-learn --bench update; fi
  if want train; then cargo build --locked ${pflag[@]+"${pflag[@]}"} -p kis-agent --features train; fi
  if want decide; then cargo bench --locked --no-run ${bflag[@]+"${bflag[@]}"} -p kis-policy --bench decide; fi
)
t0="$(date +%s)"
build > "$run_dir/build.log" 2>&1 || { tail -n 30 "$run_dir/build.log" >&2; exit 1; }
echo "build: $profile, $(( $(date +%s) - t0 )) s (not counted in the parts)" >> "$run_dir/machine.txt"

if want steps; then
  log "steps: Rust vs Python, $STEPS steps per run, 1 and 16 envs, 1 thread, pinned to CPU 0"
  cmd steps $PIN "$GYM_PY" agent/gym/bench/steps.py --rust-bin "target/$tdir/examples/env_steps" \
    --steps "$STEPS" --scenario "$SCENARIO_STEPS" --threads 1 --csv "$run_dir/steps.csv"
  # The binding's own cost per step, apart from the simulation's: the same runs on the scenario at
  # 1e-6 of its rate (a step then costs the scrapes, controllers and observation only), so the
  # summary can give the arithmetic (env step cost vs binding overhead, the best ratio reachable).
  "$GYM_PY" -c 'import json, sys, kis_gym
c = kis_gym.scenario(sys.argv[1]); c["sim"]["workload"]["scale"] *= 1e-6
json.dump(c, open(sys.argv[2], "w"), indent=1)' "$SCENARIO_STEPS" "$run_dir/scenario-near-empty.json"
  cmd steps-near-empty $PIN "$GYM_PY" agent/gym/bench/steps.py --rust-bin "target/$tdir/examples/env_steps" \
    --steps "$STEPS" --scenario "$run_dir/scenario-near-empty.json" --threads 1 \
    --csv "$run_dir/steps-near-empty.csv"
fi

if want update; then
  log "update: kis-learn (tch) vs PyTorch, $UPDATE_REPS updates each (1 warm-up), 1 thread, pinned"
  q=(); [ "$quick" = 1 ] && q=(--quick)
  cmd update-tch $PIN cargo bench -q --locked ${bflag[@]+"${bflag[@]}"} -p kis-learn --bench update -- ${q[@]+"${q[@]}"}
  cmd update-pytorch $PIN "$PY" agent/learn/benches/ppo_update.py --reps "$UPDATE_REPS"
fi

if want train; then
  kis="target/$tdir/kis-agent"
  log "train: kis-agent train ($KIS1_STEPS steps) and MaskablePPO ($SB3_STEPS steps), pinned to CPU 0"
  rm -rf "$run_dir/train-kis-1core" "$run_dir/train-kis-all-cores" "$run_dir/train-sb3-1core"
  cmd train-kis-1core $PIN "$kis" train --scenario "$SCENARIO_TRAIN" --out "$run_dir/train-kis-1core" \
    --steps "$KIS1_STEPS" --seed 1 --envs 8 --rollout 128 --net cleanrl --threads 1 --device cpu \
    --eval-every 0 --checkpoint-every 100000
  cmd train-sb3-1core $PIN "$PY" agent/gym/bench/train_maskable_ppo.py --scenario "$SCENARIO_TRAIN" \
    --timesteps "$SB3_STEPS" --seed 1 --envs 8 --rollout 128 --threads 1 --eval-episodes 0 \
    --out "$run_dir/train-sb3-1core"
  log "train: kis-agent train on all $(nproc) cores ($KIS2_STEPS steps, for the 1M-steps estimate)"
  cmd train-kis-all-cores "$kis" train --scenario "$SCENARIO_TRAIN" --out "$run_dir/train-kis-all-cores" \
    --steps "$KIS2_STEPS" --seed 1 --envs 8 --rollout 128 --net cleanrl --threads 1 --device cpu \
    --eval-every 0 --checkpoint-every 100000
  rm -f "$run_dir"/train-*/checkpoint.ckpt "$run_dir"/train-sb3-1core/model.zip  # size; not results
fi

if want decide; then
  log "decide: $DECIDE_N decisions per policy, pinned"
  q=(); [ "$quick" = 1 ] && q=(--quick)
  # Absolute path: cargo runs a bench in its package's folder.
  cmd decide $PIN cargo bench -q --locked ${bflag[@]+"${bflag[@]}"} -p kis-policy --bench decide -- \
    ${q[@]+"${q[@]}"} --n "$DECIDE_N" --policy "$ROOT/agent/policies/default.kpol"
fi

machine after
"$PY" agent/bench/summarize.py "$run_dir" --profile "$profile" --quick "$quick"
log "done: $run_dir/summary.md"
