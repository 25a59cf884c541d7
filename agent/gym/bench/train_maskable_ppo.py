"""Trains sb3-contrib's MaskablePPO on the kis-sim environment through the binding for a fixed
number of steps, then (with ``--eval-episodes N``) evaluates it against holding still (all deltas 0)
on the same seeds: the peer our own PPO (``kis-agent train``) is compared with on the *same*
environment (issue 14: kis-agent train >= 5x its training steps per second).

The settings are ``kis-agent train``'s defaults, so both do the same work per step: 8 environments
(sb3's ``DummyVecEnv`` of ``KisEnv``, masks through ``action_masks()``) x 128 steps per rollout,
4 epochs of 4 minibatches (256), lr 2.5e-4 annealed linearly to 0, gamma 0.99, GAE 0.95, clip 0.2
(value loss clipped too), entropy 0.01, value 0.5, grad-norm 0.5, separate 64-64 tanh actor and
critic with orthogonal init, observations normalised by running statistics (``VecNormalize``,
clip 10, rewards not normalised), ``--threads`` torch threads (default 1).

Needs the bench venv (agent/bench/setup.sh: torch 2.13.0 CPU, stable-baselines3 and sb3-contrib
2.9.2, the kis_gym wheel), not the test venv:

    ~/.cache/kis/agent-bench-v1/venv/bin/python agent/gym/bench/train_maskable_ppo.py \\
        [--timesteps 200000] [--envs 8] [--scenario default] [--seed 0] [--eval-episodes 0] [--out DIR]

Writes a run folder (default agent/gym/bench/runs/<UTC date>-maskable-ppo/) with the command,
summary.json (training wall seconds and steps per second, and with an evaluation the mean return
and SLO-miss fraction of both policies and evaluation.csv) and the model (model.zip).
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
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
except ImportError as e:  # the test venv has neither: say which set-up is missing
    sys.exit(f"train_maskable_ppo: {e}; run agent/bench/setup.sh and use its venv")

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
    p.add_argument("--rollout", type=int, default=128, help="steps per environment per rollout")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--eval-episodes", type=int, default=0, help="0: no evaluation")
    p.add_argument("--out", type=pathlib.Path, default=None)
    a = p.parse_args()
    if min(a.timesteps, a.envs, a.rollout, a.threads) <= 0 or a.eval_episodes < 0:
        sys.exit("train_maskable_ppo: --timesteps, --envs, --rollout and --threads must be positive, "
                 "--eval-episodes not negative")
    torch.set_num_threads(a.threads)
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    out = a.out or pathlib.Path(__file__).parent / "runs" / f"{day}-maskable-ppo"
    out.mkdir(parents=True, exist_ok=True)
    (out / "command.txt").write_text(" ".join(sys.argv) + "\n")

    # Training seeds start at a.seed; evaluation uses seeds from 1_000_000 on, never trained on.
    venv = make_vec_env(lambda: KisEnv(a.scenario), n_envs=a.envs, seed=a.seed)
    venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=10.0)
    batch = a.envs * a.rollout
    model = MaskablePPO(
        "MlpPolicy", venv, seed=a.seed, verbose=0, device="cpu",
        n_steps=a.rollout, batch_size=batch // 4, n_epochs=4,
        learning_rate=lambda progress: 2.5e-4 * progress,  # progress runs 1 -> 0
        gamma=0.99, gae_lambda=0.95, clip_range=0.2, clip_range_vf=0.2, ent_coef=0.01,
        vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                       "activation_fn": torch.nn.Tanh, "ortho_init": True},
    )
    t = time.perf_counter()
    model.learn(total_timesteps=a.timesteps)
    train_s = time.perf_counter() - t
    steps = model.num_timesteps
    model.save(out / "model.zip")
    summary = {
        "scenario": a.scenario,
        "timesteps": steps,
        "envs": a.envs,
        "rollout": a.rollout,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_seconds": train_s,
        "train_steps_per_s": steps / train_s,
        "obs_spec": KisEnv(a.scenario).obs_spec_id,
    }
    if a.eval_episodes:
        summary.update(evaluate_both(model, venv, a.scenario, a.eval_episodes, out))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def evaluate_both(model, venv, scenario: str, episodes: int, out: pathlib.Path) -> dict:
    """The trained policy and holding still on ``episodes`` unseen seeds; writes evaluation.csv."""
    venv.training = False
    seeds = range(1_000_000, 1_000_000 + episodes)
    ppo = evaluate(
        lambda o, m: model.predict(venv.normalize_obs(o), action_masks=m, deterministic=True)[0],
        scenario,
        seeds,
    )
    hold = evaluate(lambda o, m: HOLD, scenario, seeds)
    with open(out / "evaluation.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "seed", "return", "slo_miss"])
        for name, rows in (("maskable-ppo", ppo), ("hold", hold)):
            for r in rows:
                w.writerow([name, r["seed"], r["return"], r["slo_miss"]])
    return {
        "eval_seeds": [seeds.start, seeds.stop],
        **{
            f"{name}_{k}": float(np.mean([r[k] for r in rows]))
            for name, rows in (("ppo", ppo), ("hold", hold))
            for k in ("return", "slo_miss")
        },
    }


if __name__ == "__main__":
    main()
