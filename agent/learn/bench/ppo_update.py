#!/usr/bin/env python3
"""PyTorch peer of `cargo bench -p kis-learn --bench update`: one PPO update of the same shape
(2048 transitions, 4 epochs, minibatch 64, shared 10-256-256-256 ReLU trunk, 13 logits split 5/5/3,
value head; 137,998 parameters), the same losses (clipped ratio 0.2, clipped value loss, entropy
0.01 over valid actions, value 0.5, per-minibatch advantage normalisation, global grad-norm clip 0.5,
Adam lr 2.5e-4 eps 1e-5), on random data, torch.set_num_threads(1). Prints the median of the timed
updates after one warm-up.

Needs an importable torch 2.13.0: the full install (`pip install torch==2.13.0`), not the slim CPU
subset of scripts/setup.d/60-torch.sh (`import torch` fails there: libtorch_cuda's dependencies are
left out). Usage: python3 ppo_update.py [--quick]
"""
import statistics
import sys
import time

import torch
from torch import nn

DIMS = (5, 5, 3)
MASK_LOGIT = -1e8


def build():
    def layer(i, o, gain):
        lin = nn.Linear(i, o)
        nn.init.orthogonal_(lin.weight, gain)
        nn.init.zeros_(lin.bias)
        return lin

    g = 2 ** 0.5
    trunk = nn.Sequential(layer(10, 256, g), nn.ReLU(), layer(256, 256, g), nn.ReLU(),
                          layer(256, 256, g), nn.ReLU())
    return trunk, layer(256, sum(DIMS), 0.01), layer(256, 1, 1.0)


def heads(logits, mask):
    masked = torch.where(mask, logits, torch.full_like(logits, MASK_LOGIT))
    return torch.cat([c.log_softmax(1) for c in masked.split(DIMS, 1)], 1)


def log_prob(logp, actions):
    parts = logp.split(DIMS, 1)
    return sum(p.gather(1, actions[:, k:k + 1]).squeeze(1) for k, p in enumerate(parts))


def update(mods, opt, b):
    trunk, pi, v = mods
    n = b["obs"].shape[0]
    for _ in range(4):
        order = torch.randperm(n)
        for s in range(0, n, 64):
            i = order[s:s + 64]
            h = trunk(b["obs"][i])
            logp = heads(pi(h), b["mask"][i])
            new_v = v(h).squeeze(1)
            ratio = (log_prob(logp, b["act"][i]) - b["logp"][i]).exp()
            adv = b["adv"][i]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
            old, ret = b["val"][i], b["ret"][i]
            clipped = old + (new_v - old).clamp(-0.2, 0.2)
            vl = 0.5 * torch.max((new_v - ret) ** 2, (clipped - ret) ** 2).mean()
            ent = -torch.where(b["mask"][i], logp.exp() * logp, torch.zeros_like(logp)).sum(1).mean()
            loss = pg - 0.01 * ent + 0.5 * vl
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_([p for m in mods for p in m.parameters()], 0.5)
            opt.step()


def main():
    quick = "--quick" in sys.argv
    torch.set_num_threads(1)
    torch.manual_seed(1)
    mods = build()
    params = [p for m in mods for p in m.parameters()]
    assert sum(p.numel() for p in params) == 137_998
    opt = torch.optim.Adam(params, lr=2.5e-4, eps=1e-5)
    n = 2048
    batch = {
        "obs": torch.rand(n, 10), "mask": torch.ones(n, sum(DIMS), dtype=torch.bool),
        "act": torch.stack([torch.randint(0, d, (n,)) for d in DIMS], 1),
        "logp": torch.full((n,), -3.6), "adv": torch.randn(n), "ret": torch.randn(n),
        "val": torch.randn(n),
    }
    times = []
    for _ in range(2 if quick else 6):
        t = time.perf_counter()
        update(mods, opt, batch)
        times.append((time.perf_counter() - t) * 1e3)
    timed = times[1:]
    print(f"pytorch ppo update (2048 x 4 epochs, minibatch 64, 137,998 parameters, 1 thread): "
          f"median {statistics.median(timed):.0f} ms of {[round(x) for x in timed]}")


if __name__ == "__main__":
    main()
