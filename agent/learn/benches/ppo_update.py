"""The PyTorch twin of kis-learn's update bench (benches/update.rs): one PPO update as kis-learn's
``Trainer::update`` does it, written as a PyTorch user would (CleanRL's loop), on the same torch
2.13.0 build (agent/bench/setup.sh's venv), 1 thread.

Same work: the paper-sized network (shared trunk 10-256-256-256 ReLU, one 256->13 policy layer
split into heads 5/5/3, a 256->1 value head: 137,998 parameters, orthogonal init), 2048 stored
transitions (8 environments x 256 steps of random observations, every action allowed), 4 epochs
over 32 shuffled minibatches of 64 (128 optimiser steps), per-dimension masked log-softmax, summed
log-probabilities and entropies, the clipped surrogate (0.2), the clipped value loss (x 0.5),
entropy bonus 0.01, per-minibatch advantage normalisation, approx-KL and clip fraction read out
each minibatch, the global gradient-norm clip 0.5, Adam (eps 1e-5, lr 2.5e-4); GAE (0.99, 0.95) and
the explained variance first, as ``Trainer::update`` computes them per update. Prints the median
of ``--reps`` updates after one warm-up, and the lines ``cpu_ms,<ms>`` (this thread's CPU time, the
median too) and ``median_ms,<ms>`` (wall clock).

Same algorithm, same numbers computed; the implementations differ where each side's idiom does.
This side is CleanRL's loop as a PyTorch user writes it: per-dimension log-softmax over split
logits, ``torch.optim.Adam`` with its defaults (on the CPU its per-parameter loop: foreach and
fused kernels are not its CPU default), ``nn.utils.clip_grad_norm_``, the statistics read with
``.item()`` every minibatch, GAE as a loop of tensor ops. kis-learn's ``Trainer::update`` computes
the same quantities with fewer ops: the dimensions padded to one ``[B, 3, 5]`` log-softmax, all
parameters in one flat buffer (one gradient, the norm clip and Adam as whole-buffer in-place ops),
the rollout shuffled once per epoch with minibatches as windows, the statistics the
``IterStats`` report (the last minibatch's losses, entropy and approx-KL; the clip fraction over
the update) read once per epoch, GAE in plain Rust.

    ~/.cache/kis/agent-bench-v1/venv/bin/python agent/learn/benches/ppo_update.py [--reps 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

DIMS = (5, 5, 3)
OBS, HIDDEN, BATCH, MINIBATCH, EPOCHS = 10, 256, 2048, 64, 4
MASK_LOGIT = -1e8  # kis_policy::MASK_LOGIT


def layer(fan_in: int, fan_out: int, gain: float) -> nn.Linear:
    lin = nn.Linear(fan_in, fan_out)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


class ActorCritic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = 2**0.5
        self.trunk = nn.Sequential(
            layer(OBS, HIDDEN, g), nn.ReLU(), layer(HIDDEN, HIDDEN, g), nn.ReLU(),
            layer(HIDDEN, HIDDEN, g), nn.ReLU(),
        )
        self.pi = layer(HIDDEN, sum(DIMS), 0.01)
        self.v = layer(HIDDEN, 1, 1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.pi(h), self.v(h).squeeze(1)


def masked_log_probs(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    masked = torch.where(mask, logits, torch.tensor(MASK_LOGIT))
    return torch.cat([p.log_softmax(1) for p in masked.split(DIMS, dim=1)], dim=1)


def log_prob(logp: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    parts = logp.split(DIMS, dim=1)
    return sum(p.gather(1, actions[:, k : k + 1]).squeeze(1) for k, p in enumerate(parts))


def gae(rewards, values, dones, last_values, gamma=0.99, lam=0.95):
    """CleanRL's loop over the rollout's time steps ([T, N] tensors): advantages and returns."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        nxt = last_values if t == rewards.shape[0] - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


def update(model, opt, data, gen: torch.Generator) -> dict:
    obs, mask, actions, old_logp, values, rewards, dones, last_values = data
    # As kis-learn's update: GAE and the explained variance first, then the epochs.
    adv, ret = gae(rewards, values, dones, last_values)
    adv, ret, old_v = adv.reshape(-1), ret.reshape(-1), values.reshape(-1)
    var_y = ret.var()
    stats = {"explained_var": (1 - (ret - old_v).var() / var_y).item()}
    clip, clipped, count = 0.2, 0.0, 0
    for _ in range(EPOCHS):
        order = torch.randperm(BATCH, generator=gen)
        for ind in order.split(MINIBATCH):
            logits, new_v = model(obs[ind])
            m = mask[ind]
            lp_all = masked_log_probs(logits, m)
            new_logp = log_prob(lp_all, actions[ind])
            ent = -(lp_all.exp() * lp_all).where(m, 0.0).sum(1).mean()
            logratio = new_logp - old_logp[ind]
            ratio = logratio.exp()
            with torch.no_grad():
                kl = ((ratio - 1) - logratio).mean().item()
                clipped += ((ratio - 1).abs() > clip).float().mean().item()
            a = adv[ind]
            a = (a - a.mean()) / (a.std() + 1e-8)
            pg = torch.max(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip)).mean()
            v_clipped = old_v[ind] + (new_v - old_v[ind]).clamp(-clip, clip)
            vl = 0.5 * torch.max((new_v - ret[ind]) ** 2, (v_clipped - ret[ind]) ** 2).mean()
            loss = pg - 0.01 * ent + 0.5 * vl
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            stats.update(pg=pg.item(), v=vl.item(), ent=ent.item(), kl=kl)
            count += 1
    stats["clip_frac"] = clipped / count
    return stats


def rollout(model: ActorCritic, gen: torch.Generator) -> tuple:
    """Stored transitions as the Rust bench's first iteration leaves them (random observations)."""
    obs = torch.rand(BATCH, OBS, generator=gen) * 2 - 1
    mask = torch.ones(BATCH, sum(DIMS), dtype=torch.bool)
    with torch.no_grad():
        logits, v = model(obs)
        lp = masked_log_probs(logits, mask)
        actions = torch.stack(
            [torch.multinomial(p.exp(), 1, generator=gen).squeeze(1) for p in lp.split(DIMS, 1)], 1
        )
        old_logp = log_prob(lp, actions)
    steps, envs = 256, 8  # time-major, as the Rust bench's rollout (8 environments x 256 steps)
    rewards = torch.rand(steps, envs, generator=gen)
    dones = (torch.rand(steps, envs, generator=gen) < 0.05).float()
    last_values = torch.randn(envs, generator=gen)
    return obs, mask, actions, old_logp, v.reshape(steps, envs), rewards, dones, last_values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=6, help="updates, the first a warm-up (default 6)")
    a = p.parse_args()
    if a.reps < 2:
        sys.exit("ppo_update: --reps must be at least 2 (one warm-up, one timed)")
    torch.set_num_threads(1)
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(1)
    model = ActorCritic()
    n_params = sum(t.numel() for t in model.parameters())
    assert n_params == 137_998, n_params
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4, eps=1e-5)
    data = rollout(model, gen)
    ms, cpu = [], []
    for _ in range(a.reps):
        t, c = time.perf_counter(), time.thread_time()
        update(model, opt, data, gen)
        ms.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.thread_time() - c) * 1e3)
    timed = ms[1:]
    print(
        f"pytorch {torch.__version__} ppo update (2048 x 4 epochs, minibatch 64, {n_params:,} "
        f"parameters, {torch.get_num_threads()} thread): median {statistics.median(timed):.0f} ms "
        f"of {[round(m) for m in timed]}"
    )
    print(f"cpu_ms,{statistics.median(cpu[1:]):.3f}")
    print(f"median_ms,{statistics.median(timed):.3f}")


if __name__ == "__main__":
    main()
