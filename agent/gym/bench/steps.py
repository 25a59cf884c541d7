"""Control steps per second of the environment from Rust vs the same env stepped from Python through
the binding, for 1 and 16 environments, in the same run (the issue-13 bench; goal: Rust >= 10x per
core).

Rust: kis-sim's ``env_steps`` example (built by the caller; ``--rust-bin`` is its path).
Python: ``KisEnv`` (one ``gymnasium.Env``, reset by hand at each episode end, 1 environment) and
``KisVecEnv`` (kis-sim's ``VecEnv`` behind the binding, 1 and 16 environments). Both sides: the same
scenario, the same seeds (environment ``i`` starts with seed ``i``), the same step count, the same
random masked actions (``draw`` is the example's formula, so the actions are identical) and the
same number of threads (default 1: the rate is per core). Each side sums the rewards it saw: the
sums must agree, or the two did not step the same trajectories and the script fails.

    ~/.cache/kis/gym-v1/venv/bin/python agent/gym/bench/steps.py --rust-bin target/release/examples/env_steps \\
        [--steps 2000] [--scenario default] [--threads 1] [--csv out.csv]

Prints (and with ``--csv`` writes) one row per run: envs, threads, side, env steps per second,
per thread, Rust / Python. A debug-built example gives a meaningless ratio (the wheel is release);
only use one to check that the script runs.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import subprocess
import sys
import time

import numpy as np

from kis_gym import KisEnv, KisVecEnv

ENVS = (1, 16)
DIMS = ((0, 5), (5, 10), (10, 13))
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def draws(steps: int, n: int) -> np.ndarray:
    """``[steps, n, 3]`` uint64: SplitMix64's finaliser of (step, env, dimension), as env_steps.rs."""
    k = np.arange(steps, dtype=np.uint64)[:, None, None]
    i = np.arange(n, dtype=np.uint64)[None, :, None]
    d = np.arange(3, dtype=np.uint64)[None, None, :]
    with np.errstate(over="ignore"):
        z = ((k << np.uint64(32)) | (i << np.uint64(8)) | d) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) & M64


def pick_one(mask: list[bool], r: list[int]) -> list[int]:
    """One environment's action: per dimension the ``r % count``-th allowed value."""
    out = []
    for (lo, hi), rd in zip(DIMS, r):
        ok = [j - lo for j in range(lo, hi) if mask[j]]
        out.append(ok[rd % len(ok)] if ok else (hi - lo) // 2)
    return out


def pick_many(mask: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``[n, 3]`` actions for ``[n, 13]`` masks, vectorised ``pick_one``."""
    out = np.empty((mask.shape[0], 3), dtype=np.int64)
    for d, (lo, hi) in enumerate(DIMS):
        sub = mask[:, lo:hi]
        cnt = sub.sum(axis=1).astype(np.uint64)
        j = (r[:, d] % np.maximum(cnt, np.uint64(1))).astype(np.int64)
        # The (j+1)-th allowed position: how many prefix counts stay <= j.
        out[:, d] = (np.cumsum(sub, axis=1) <= j[:, None]).sum(axis=1)
    return out


def rust(binary: str, steps: int, scenario: str, threads: int) -> dict[int, tuple[int, float, float]]:
    """{envs: (threads, env steps per second, reward sum)} from the Rust example."""
    r = subprocess.run([binary, str(steps), scenario, str(threads)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"steps: the Rust example failed:\n{r.stderr}")
    out = {}
    for line in r.stdout.splitlines():
        f = line.split(",")
        if len(f) == 7 and f[0].isdigit():
            out[int(f[0])] = (int(f[1]), float(f[4]), float(f[6]))
    if set(out) != set(ENVS):
        sys.exit(f"steps: unexpected output from env_steps:\n{r.stdout}")
    return out


def python_single(steps: int, scenario: str) -> tuple[float, float]:
    """(env steps per second, reward sum) of one ``KisEnv``."""
    env = KisEnv(scenario)
    _, info = env.reset(seed=0)
    mask = info["action_mask"].tolist()
    r = draws(steps, 1)[:, 0, :].tolist()
    total = 0.0
    t = time.perf_counter()
    for k in range(steps):
        _, rew, term, trunc, info = env.step(pick_one(mask, r[k]))
        total += rew
        if term or trunc:
            _, info = env.reset()
        mask = info["action_mask"].tolist()
    return steps / (time.perf_counter() - t), total


def python_vec(steps: int, scenario: str, n: int, threads: int) -> tuple[float, float]:
    """(env steps per second, reward sum) of a ``KisVecEnv`` of ``n`` environments."""
    v = KisVecEnv(scenario, n, threads=threads)
    _, info = v.reset(seed=0)
    mask = info["action_mask"]
    r = draws(steps, n)
    total = 0.0
    t = time.perf_counter()
    for k in range(steps):
        _, rew, _, _, info = v.step(pick_many(mask, r[k]))
        total += math.fsum(rew.tolist())
        mask = info["action_mask"]
    dt = time.perf_counter() - t
    v.close()
    return steps * n / dt, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rust-bin", required=True, help="the built env_steps example")
    p.add_argument("--steps", type=int, default=2000, help="step calls per run (default 2000)")
    p.add_argument("--scenario", default="default", help="a named scenario (default: default)")
    p.add_argument("--threads", type=int, default=1, help="worker threads, both sides (default 1)")
    p.add_argument("--csv", type=pathlib.Path, help="also write the rows to this CSV file")
    a = p.parse_args()
    if a.steps <= 0 or a.threads <= 0:
        sys.exit("steps: --steps and --threads must be positive")
    if not pathlib.Path(a.rust_bin).is_file():
        sys.exit(f"steps: --rust-bin {a.rust_bin} is not a file (build the env_steps example)")
    r = rust(a.rust_bin, a.steps, a.scenario, a.threads)
    rows = ["envs,threads,side,env_steps_per_s,per_thread,rust_over_python,reward_sum"]
    for n in ENVS:
        threads, rust_rate, rust_sum = r[n]
        runs = [("rust", rust_rate, rust_sum), ("python-vec", *python_vec(a.steps, a.scenario, n, threads))]
        if n == 1:
            runs.append(("python-env", *python_single(a.steps, a.scenario)))
        for side, rate, total in runs:
            # Rust sums f32 rewards in f64; the single Env hands Python f64 rewards, so the sums
            # agree to f32 rounding (a different trajectory differs by far more than 1e-6).
            if not math.isclose(total, rust_sum, rel_tol=1e-6, abs_tol=1e-6):
                sys.exit(f"steps: {side} with {n} env(s) saw reward sum {total}, Rust {rust_sum}: "
                         "not the same trajectories")
            rows.append(f"{n},{threads},{side},{rate:.0f},{rate / threads:.0f},"
                        f"{rust_rate / rate:.2f},{total:.6f}")
    print(f"scenario {a.scenario}, {a.steps} steps per run, {a.threads} thread(s)")
    print("\n".join(rows))
    if a.csv:
        a.csv.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
