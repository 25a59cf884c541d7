"""Writes summary.md of an agent bench run folder (agent/bench/run.sh): each figure, its peer from
the same run, the ratio and the goal of issues 13 and 14. Reads only the raw outputs in the folder,
so it can be re-run on an old folder:

    python agent/bench/summarize.py agent/bench/runs/YYYY-MM-DD-HHMM [--profile release] [--quick 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import re
import sys


def read(path: pathlib.Path) -> str | None:
    return path.read_text() if path.is_file() else None


def median_ms(text: str | None, key: str = "median_ms") -> float | None:
    m = re.search(rf"^{key},([0-9.]+)$", text or "", re.M)
    return float(m.group(1)) if m else None


def kis_train(folder: pathlib.Path) -> tuple[int, float] | None:
    """(steps, steps per second over the iterations' own time) from kis-agent train's log.csv."""
    rows = list(csv.DictReader(open(folder / "log.csv"))) if (folder / "log.csv").is_file() else []
    if not rows:
        return None
    prev, secs = 0, 0.0
    for r in rows:
        steps = int(r["steps"])
        secs += (steps - prev) / float(r["sps"])
        prev = steps
    return prev, prev / secs


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def steps_rows(path: pathlib.Path) -> list[dict]:
    """steps.py's rows, each with `us` (microseconds per env step) and, for the Python sides,
    `extra_us` (what the binding adds per env step: its time minus Rust's, same run)."""
    rows = list(csv.DictReader(open(path))) if path.is_file() else []
    rust = {r["envs"]: 1e6 / float(r["per_thread"]) for r in rows if r["side"] == "rust"}
    for r in rows:
        r["us"] = 1e6 / float(r["per_thread"])
        r["extra_us"] = None if r["side"] == "rust" else r["us"] - rust[r["envs"]]
    return rows


def steps_table(rows: list[dict], goal: bool) -> list[str]:
    out = [
        "| envs | side | env steps/s | per thread | us / env step | binding us / env step "
        "| Rust / this |" + (" goal |" if goal else ""),
        "|---:|---|---:|---:|---:|---:|---:|" + ("---|" if goal else ""),
    ]
    for r in rows:
        ratio = float(r["rust_over_python"])
        extra = "" if r["extra_us"] is None else f"{r['extra_us']:.1f}"
        line = (f"| {r['envs']} | {r['side']} | {r['env_steps_per_s']} | {r['per_thread']} | "
                f"{r['us']:.1f} | {extra} | {ratio:.2f} |")
        if goal:
            line += f" {'' if r['side'] == 'rust' else verdict(ratio >= 10)} |"
        out.append(line)
    return out


def steps_section(run: pathlib.Path) -> list[str]:
    rows = steps_rows(run / "steps.csv")
    if not rows:
        return []
    out = [
        "## Issue 13: environment control steps per second, Rust vs Python",
        "",
        "Named scenario `default`, 1 thread on both sides (pinned to one CPU: per core), the same",
        "seeds, step count and random masked actions; the reward sums agree (same trajectories).",
        "`python-env` is one `KisEnv` (a `gymnasium.Env`), `python-vec` the binding's `KisVecEnv`.",
        "`binding us / env step` is the Python side's time per env step minus Rust's in the same run.",
        "Goal: Rust >= 10x Python per core.",
        "",
        *steps_table(rows, goal=True),
        "",
    ]
    near = steps_rows(run / "steps-near-empty.csv")
    if not near:
        return out
    out += [
        "The same runs on the scenario at 1e-6 of its rate ([scenario-near-empty.json]"
        "(scenario-near-empty.json)): a step then simulates almost no request, so what remains is",
        "the step's fixed work (scrapes, controllers, observation) and the binding's own cost:",
        "",
        *steps_table(near, goal=False),
        "",
        "The arithmetic: Rust / Python = (E + B) / E for an env step of E us and a binding cost of",
        "B us per env step, so 10x needs B >= 9 E. Here, per side:",
        "",
    ]
    full = {(r["envs"], r["side"]): r for r in rows}
    for r in near:
        f = full.get((r["envs"], r["side"]))
        if r["extra_us"] is None or f is None:
            continue
        e = full[(r["envs"], "rust")]["us"]
        b = max(r["extra_us"], 0.0)
        need = (f"10x would need E <= B / 9 = {b / 9:.2f} us, {e / (b / 9):.0f}x cheaper steps"
                if b > 0 else "no step cost E gives 10x with a binding this cheap")
        out.append(
            f"- {r['side']}, {r['envs']} env(s): E = {e:.1f} us (Rust, default scenario), B = {b:.1f} "
            f"us (near-empty run): (E + B) / E = {(e + b) / e:.2f}; {need}."
        )
    return out + [""]


def update_section(run: pathlib.Path) -> list[str]:
    tch_txt, torch_txt = read(run / "update-tch.txt"), read(run / "update-pytorch.txt")
    tch, torch = median_ms(tch_txt), median_ms(torch_txt)
    if tch is None and torch is None:
        return []
    ratio = tch / torch if tch and torch else None
    # Thread CPU time per update (older runs lack it): near the wall time on a quiet machine; a
    # wall time well above it says the run was disturbed.
    tch_cpu, torch_cpu = median_ms(tch_txt, "cpu_ms"), median_ms(torch_txt, "cpu_ms")
    nan = float("nan")
    cpu_ratio = tch_cpu / torch_cpu if tch_cpu and torch_cpu else nan
    return [
        "## Issue 14: one PPO update, kis-learn (tch) vs PyTorch",
        "",
        "2048 transitions, 4 epochs, minibatch 64 (128 optimiser steps), the paper-sized",
        "137,998-parameter network, 1 thread, the same torch 2.13.0 CPU library on both sides;",
        "median of the timed updates after one warm-up (wall clock; the thread's CPU time beside",
        "it). Goal: tch <= 0.6x PyTorch's time. The same algorithm and statistics on both sides;",
        "how each is implemented: agent/learn/benches/ppo_update.py's docstring.",
        "",
        "| kis-learn (tch) ms | PyTorch ms | tch / PyTorch | goal | CPU ms tch / PyTorch | CPU ratio |",
        "|---:|---:|---:|---|---:|---:|",
        f"| {tch or nan:.1f} | {torch or nan:.1f} | "
        f"{ratio if ratio is not None else nan:.2f} | "
        f"{verdict(None if ratio is None else ratio <= 0.6)} | "
        f"{tch_cpu or nan:.1f} / {torch_cpu or nan:.1f} | {cpu_ratio:.2f} |",
        "",
    ]


def train_section(run: pathlib.Path, timing: dict[str, dict]) -> list[str]:
    kis1 = kis_train(run / "train-kis-1core")
    kis_all = kis_train(run / "train-kis-all-cores")
    sb3_path = run / "train-sb3-1core" / "summary.json"
    sb3 = json.loads(sb3_path.read_text()) if sb3_path.is_file() else None
    if not (kis1 or kis_all or sb3):
        return []
    out = [
        "## Issue 14: training end to end (environment + update), kis-agent train vs MaskablePPO",
        "",
        "Scenario agent/learn/scenarios/gpu16-randomized.json on both; the same PPO settings",
        "(kis-agent train's defaults: 8 envs x 128 steps, 4 epochs x 4 minibatches, 64-64 tanh",
        "actor and critic, observation normalisation), 1 torch thread, no validation. Per core: both",
        "pinned to one CPU. kis-agent's rate is over its iterations (log.csv), MaskablePPO's over",
        "`learn()`; both leave out start-up. PyTorch reports `+cu130`: the PyPI wheel's CPU",
        "library, the one kis-learn links; no GPU is used. Goal: kis-agent >= 5x MaskablePPO.",
        "",
        "| run | steps | steps/s | process wall s |",
        "|---|---:|---:|---:|",
    ]
    if kis1:
        out.append(f"| kis-agent train, 1 core | {kis1[0]} | {kis1[1]:.0f} | "
                   f"{timing.get('train-kis-1core', {}).get('seconds', '')} |")
    if sb3:
        out.append(f"| sb3-contrib MaskablePPO ({sb3['torch']}), 1 core | {sb3['timesteps']} | "
                   f"{sb3['train_steps_per_s']:.0f} | {timing.get('train-sb3-1core', {}).get('seconds', '')} |")
    if kis_all:
        out.append(f"| kis-agent train, all cores | {kis_all[0]} | {kis_all[1]:.0f} | "
                   f"{timing.get('train-kis-all-cores', {}).get('seconds', '')} |")
    out.append("")
    if kis1 and sb3:
        ratio = kis1[1] / sb3["train_steps_per_s"]
        out.append(f"- kis-agent / MaskablePPO, per core: **{ratio:.1f}x** (goal >= 5x: {verdict(ratio >= 5)}).")
    if kis_all:
        minutes = 1e6 / kis_all[1] / 60
        out.append(f"- 1M environment steps on all cores: **{minutes:.1f} minutes**, an estimate from "
                   f"the {kis_all[0]}-step run's rate, not a 1M-step run (goal <= 10 min: "
                   f"{verdict(minutes <= 10)}).")
    return out + [""]


def decide_section(run: pathlib.Path) -> list[str]:
    text = read(run / "decide.txt")
    rows = [line.split(",") for line in (text or "").splitlines() if line.startswith("decide,")]
    if not rows:
        return []
    out = [
        "## Issue 14: policy decision without libtorch (kis-policy)",
        "",
        "`Policy::act`: normalise, forward, masked argmax; each call timed alone, pinned to one CPU.",
        "`shipped` is agent/policies/default.kpol, `paper` the paper-sized network (random weights).",
        "Goal: p99 <= 50 us.",
        "",
        "| policy | parameters | calls | p50 us | p90 us | p99 us | p99.9 us | max us | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, name, params, n, p50, p90, p99, p999, mx in rows:
        out.append(f"| {name} | {params} | {n} | {p50} | {p90} | {p99} | {p999} | {mx} | "
                   f"{verdict(float(p99) <= 50)} |")
    return out + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=pathlib.Path)
    p.add_argument("--profile", default="release")
    p.add_argument("--quick", default="0")
    a = p.parse_args()
    if not a.run.is_dir():
        sys.exit(f"summarize: {a.run} is not a run folder")
    timing = {r["name"]: r for r in csv.DictReader(open(a.run / "timing.csv"))} \
        if (a.run / "timing.csv").is_file() else {}
    lines = [f"# Agent benches: {a.run.name}", ""]
    if a.quick == "1" or a.profile != "release":
        lines += [
            f"**Check run** (quick={a.quick}, profile={a.profile}): the parts were shrunk or the Rust",
            "side unoptimised, so the figures below only show that the bench runs. Not measurements.",
            "",
        ]
    lines += ["Machine, before and after (load average included): [machine.txt](machine.txt).",
              "Commands: [commands.txt](commands.txt); raw outputs: one `NAME.txt` per command;",
              "wall time and load per command: [timing.csv](timing.csv).", ""]
    machine = read(a.run / "machine.txt") or ""
    lines += ["```", machine.strip(), "```", ""]
    for section in (steps_section(a.run), update_section(a.run),
                    train_section(a.run, timing), decide_section(a.run)):
        lines += section
    if timing:
        total = sum(float(r["seconds"]) for r in timing.values())
        lines += [f"Parts' wall time: {total:.0f} s (builds and set-up not counted).", ""]
    (a.run / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
