"""Control steps per second of the environment from Rust vs the same env stepped from Python through
the binding, for 1 and 16 environments, in the same run (the issue-13 bench; goal: Rust >= 10x per
core).

Rust: kis-sim's ``env_steps`` example (``cargo run --release -p kis-sim --example env_steps``).
Python: ``KisEnv`` (one ``gymnasium.Env``, reset by hand at each episode end) and ``KisVecEnv``
(kis-sim's ``VecEnv`` behind the binding), with the same action pattern and as many worker
threads as the Rust run. Prints one CSV row per run and the ratio Rust / Python, overall and per
thread.

    ~/.cache/kis/gym-v1/venv/bin/python agent/gym/bench/steps.py [--steps 2000] [--scenario default]

``--rust-profile dev`` builds the Rust side unoptimised: only for checking that the script runs
(the wheel is always a release build, so the ratio is then meaningless).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from kis_gym import KisEnv, KisVecEnv

ROOT = pathlib.Path(__file__).resolve().parents[3]
ENVS = (1, 16)


def actions(k: int, n: int) -> np.ndarray:
    """The env_steps example's action pattern for step ``k``."""
    i = np.arange(n)
    return np.stack([(k + i) % 5, (k * 3 + i) % 5, np.full(n, k % 3)], axis=1).astype(np.int64)


def rust(steps: int, scenario: str, profile: str) -> dict[int, tuple[int, float]]:
    """{envs: (threads, env steps per second)} from the Rust example."""
    cmd = ["cargo", "run", "-q", "--locked", "-p", "kis-sim", "--example", "env_steps"]
    if profile == "release":
        cmd.insert(2, "--release")
    cmd += ["--", str(steps), scenario]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"steps: the Rust example failed:\n{r.stderr}")
    out = {}
    for line in r.stdout.splitlines():
        f = line.split(",")
        if len(f) == 6 and f[0].isdigit():
            out[int(f[0])] = (int(f[1]), float(f[4]))
    if set(out) != set(ENVS):
        sys.exit(f"steps: unexpected output from env_steps:\n{r.stdout}")
    return out


def python_single(steps: int, scenario: str) -> float:
    env = KisEnv(scenario)
    env.reset(seed=0)
    t = time.perf_counter()
    for k in range(steps):
        _, _, term, trunc, _ = env.step(actions(k, 1)[0])
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t)


def python_vec(steps: int, scenario: str, n: int, threads: int) -> float:
    v = KisVecEnv(scenario, n, threads=threads)
    v.reset(seed=0)
    acts = [actions(k, n) for k in range(steps)]
    t = time.perf_counter()
    for a in acts:
        v.step(a)
    dt = time.perf_counter() - t
    v.close()
    return steps * n / dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="step calls per run (default 2000)")
    p.add_argument("--scenario", default="default", help="a named scenario (default: default)")
    p.add_argument("--rust-profile", choices=("release", "dev"), default="release")
    a = p.parse_args()
    if a.steps <= 0:
        sys.exit("steps: --steps must be positive")
    cores = os.cpu_count() or 1
    r = rust(a.steps, a.scenario, a.rust_profile)
    print(f"scenario {a.scenario}, {a.steps} steps per run, {cores} cores, rust {a.rust_profile}")
    print("envs,threads,side,env_steps_per_s,per_thread,rust_over_python")
    for n in ENVS:
        threads, rust_rate = r[n]
        rows = [("rust", rust_rate), ("python-vec", python_vec(a.steps, a.scenario, n, threads))]
        if n == 1:
            rows.append(("python-env", python_single(a.steps, a.scenario)))
        for side, rate in rows:
            ratio = rust_rate / rate
            print(f"{n},{threads},{side},{rate:.0f},{rate / threads:.0f},{ratio:.2f}")


if __name__ == "__main__":
    main()
