"""Trains sb3-contrib's MaskablePPO on the kis-sim environment through the binding for a fixed
number of steps, then evaluates it against holding still (all deltas 0) on the same seeds: the
peer our own PPO is compared with on the *same* environment.

Needs the bench venv (agent/gym/bench/setup.sh: torch, stable-baselines3, sb3-contrib and the
kis_gym wheel), not the test venv:

    ~/.cache/kis/gym-bench-v1/venv/bin/python agent/gym/bench/train_maskable_ppo.py \\
        [--timesteps 200000] [--envs 8] [--scenario default] [--seed 0] [--eval-episodes 20]

Writes a dated run folder (default agent/gym/bench/runs/<UTC date>-maskable-ppo/) with the command,
the per-episode evaluation (evaluation.csv), the model (model.zip) and summary.json (training
steps per second, mean evaluation return and SLO-miss fraction of both policies).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import pathlib
import sys
import time

import numpy as np

try:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env
except ImportError as e:  # the test venv has neither: say which set-up is missing
    sys.exit(f"train_maskable_ppo: {e}; run agent/gym/bench/setup.sh and use its venv")

from kis_gym import KisEnv

HOLD = np.array([2, 2, 1])


def evaluate(policy, scenario: str, seeds: range) -> list[dict]:
    """One episode per seed; ``policy(obs, mask) -> action``."""
    rows = []
    for s in seeds:
        env = KisEnv(scenario)
        obs, info = env.reset(seed=s)
        ret, cohort, missed, done = 0.0, 0, 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(policy(obs, info["action_mask"]))
            ret += r
            cohort += info["cohort"]
            missed += info["slo_miss"] * info["cohort"]
            done = term or trunc
        rows.append({"seed": s, "return": ret, "slo_miss": missed / max(cohort, 1)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=200_000)
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--scenario", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--out", type=pathlib.Path, default=None)
    a = p.parse_args()
    if a.timesteps <= 0 or a.envs <= 0 or a.eval_episodes <= 0:
        sys.exit("train_maskable_ppo: --timesteps, --envs and --eval-episodes must be positive")
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    out = a.out or pathlib.Path(__file__).parent / "runs" / f"{day}-maskable-ppo"
    out.mkdir(parents=True, exist_ok=True)
    (out / "command.txt").write_text(" ".join(sys.argv) + "\n")

    # Training seeds start at a.seed; evaluation uses seeds from 1_000_000 on, never trained on.
    venv = make_vec_env(lambda: KisEnv(a.scenario), n_envs=a.envs, seed=a.seed)
    model = MaskablePPO("MlpPolicy", venv, seed=a.seed, verbose=0)
    t = time.perf_counter()
    model.learn(total_timesteps=a.timesteps)
    train_s = time.perf_counter() - t
    model.save(out / "model.zip")

    seeds = range(1_000_000, 1_000_000 + a.eval_episodes)
    ppo = evaluate(
        lambda o, m: model.predict(o, action_masks=m, deterministic=True)[0], a.scenario, seeds
    )
    hold = evaluate(lambda o, m: HOLD, a.scenario, seeds)
    with open(out / "evaluation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "seed", "return", "slo_miss"])
        for name, rows in (("maskable-ppo", ppo), ("hold", hold)):
            for r in rows:
                w.writerow([name, r["seed"], r["return"], r["slo_miss"]])
    summary = {
        "scenario": a.scenario,
        "timesteps": a.timesteps,
        "envs": a.envs,
        "train_seconds": train_s,
        "train_steps_per_s": a.timesteps / train_s,
        "obs_spec": KisEnv(a.scenario).obs_spec_id,
        "eval_seeds": [seeds.start, seeds.stop],
        **{
            f"{name}_{k}": float(np.mean([r[k] for r in rows]))
            for name, rows in (("ppo", ppo), ("hold", hold))
            for k in ("return", "slo_miss")
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
