#!/usr/bin/env python3
"""Issue 19's scaling check: does a second shard add load? One kis-loadgen shard, then two
(`--shard 0/2`, `--shard 1/2`, one shared `--start-at`), drive nginx at a rate above what one
shard can send; the server-counted request rates are compared (target: two shards >= 1.8x one).

How the server is kept from being the bottleneck on a small machine (2 CPUs here):

- nginx (one worker) has a CPU of its own (`--server-cpus`, default CPU 0); nothing else runs
  there. Its CPU use in each phase is measured and reported: well under 100 % means it had room.
- Each shard gets a fixed share of the generator CPU (default CPU 1): its own CPU cgroup with a
  quota (`--quota 20` = 20 % of one CPU, 2 ms per 10 ms period; cgroup v1 `cpu.cfs_quota_us` or
  v2 `cpu.max`). Two shards at 20 % each use 40 % of that CPU, so they never compete with each
  other and each shard is limited by its own quota: one shard's reach is what a 20 % CPU share
  sends, two shards have two such shares. That is the situation sharding is for (each pod with
  its own CPU limit), scaled down to one machine. Each shard's CPU seconds (/usr/bin/time) and
  the cgroup's throttling counts are reported, so the share each side had is on record.
- The intended rate (`--rate`, total) is far above one shard's reach, so both phases are
  generator-limited (each shard's report says "generator saturated").

With 4 or more CPUs, `--quota 0` gives each shard a whole CPU of its own instead (no cgroup).

    python3 loadgen/bench/shards.py --loadgen target/release/kis-loadgen        # ~2.5 min
    python3 loadgen/bench/shards.py --loadgen ... --seconds 2 --repeat 1        # a check

Writes loadgen/bench/runs/<UTC date>-shards[-N]/: summary.md, raw.csv, commands.txt,
machine.txt, every shard's report and interval log and the merged reports. Needs root (cgroups),
nginx and taskset.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Nginx, group_cpu_seconds, log  # noqa: E402  (the peer benchmark's nginx)
from pairs import machine_info, run_dir, write_raw  # noqa: E402

PERIOD_US = 10_000


class CpuGroup:
    """A CPU cgroup with a quota of `pct` % of one CPU (v1 cpu controller, else v2 cpu.max)."""

    def __init__(self, name, pct):
        v1 = "/sys/fs/cgroup/cpu"
        quota = int(PERIOD_US * pct / 100)
        if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
            self.path = os.path.join(v1, name)
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.cfs_period_us", str(PERIOD_US))
            self._write("cpu.cfs_quota_us", str(quota))
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            self.path = os.path.join("/sys/fs/cgroup", name)
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.max", f"{quota} {PERIOD_US}")
        else:
            raise RuntimeError("no CPU cgroup controller to write (cgroup v1 cpu or v2 cpu.max)")

    def _write(self, f, v):
        with open(os.path.join(self.path, f), "w") as fh:
            fh.write(v)

    def procs(self):
        return os.path.join(self.path, "cgroup.procs")

    def stat(self):
        try:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                return dict(line.split() for line in f if line.strip())
        except OSError:
            return {}

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def run_shards(a, url, n, groups, cpus, out, rnd, commands):
    """n shards at once; their CPU seconds and the cgroups' throttling."""
    start_at = time.time() + 3.0
    stamp = datetime.datetime.fromtimestamp(start_at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    procs, timefiles = [], []
    before = [g.stat() if g else {} for g in groups[:n]]
    for k in range(n):
        tag = f"r{rnd}-n{n}-shard-{k}"
        timefile = os.path.join(out, tag + ".time")
        timefiles.append(timefile)
        argv = [a.loadgen, "--url", url, "--method", "GET", "--pattern", "constant", "--rate", str(a.rate),
                "--duration", f"{a.seconds}s", "--connections", "64", "--seed", "1", "--run-id",
                f"scale-r{rnd}-n{n}", "--start-at", stamp, "--shard", f"{k}/{n}", "--json",
                os.path.join(out, tag + ".json"), "--hdr-log", os.path.join(out, tag + ".hlog"), "--quiet",
                "--grace", "2s"]
        cmd = ["taskset", "-c", cpus[k], "/usr/bin/time", "-f", "%e %U %S", "-o", timefile] + argv
        commands.write(("cgroup " + groups[k].path + ": " if groups[k] else "") + " ".join(cmd) + "\n")
        procs_file = groups[k].procs() if groups[k] else None

        def enter(p=procs_file):
            if p:
                with open(p, "w") as f:
                    f.write(str(os.getpid()))
        procs.append(subprocess.Popen(cmd, preexec_fn=enter, stderr=open(os.path.join(out, tag + ".log"), "w")))
    for p in procs:
        p.wait(timeout=a.seconds + 60)
    cpu = []
    for tf in timefiles:
        try:
            with open(tf) as f:
                _, u, s = f.read().split()[-3:]
            cpu.append(float(u) + float(s))
        except (OSError, ValueError):
            cpu.append(float("nan"))
    throttled = []
    for g, b in zip(groups[:n], before):
        if g:
            s = g.stat()
            throttled.append(int(s.get("nr_throttled", 0)) - int(b.get("nr_throttled", 0)))
    files = [os.path.join(out, f"r{rnd}-n{n}-shard-{k}.json") for k in range(n)]
    merged = os.path.join(out, f"r{rnd}-n{n}-merged.json")
    subprocess.run([a.loadgen, "merge", "--quiet", "--json", merged] + files, check=True)
    return cpu, throttled


def summarise(rows, a, out, ng_cpus, gen_cpus):
    ratios = []
    for rnd in sorted({r["round"] for r in rows}):
        one = [r for r in rows if r["round"] == rnd and r["shards"] == 1]
        two = [r for r in rows if r["round"] == rnd and r["shards"] == 2]
        if one and two and one[0]["served_rps"] > 0:
            ratios.append(two[0]["served_rps"] / one[0]["served_rps"])
    med = statistics.median(ratios) if ratios else float("nan")
    share = (f"each shard in its own CPU cgroup with a quota of {a.quota:g} % of one CPU, pinned to CPU "
             f"{gen_cpus[0]}" if a.quota > 0 else f"each shard on a CPU of its own ({', '.join(gen_cpus)})")
    lines = [f"# Two shards vs one against nginx ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"nginx (1 worker) alone on CPU {ng_cpus}; {share}. Intended {a.rate:.0f} req/s in all (far above",
             f"one shard's reach), {a.seconds} s per phase, {a.repeat} rounds (1 shard, then 2). Machine: machine.txt.",
             "", "| round | shards | server-counted req/s | nginx CPU % | shard CPU-s (share of wall) | throttled periods |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        shares = ", ".join(f"{c:.2f} ({100 * c / a.seconds:.0f} %)" for c in r["shard_cpu_s"])
        lines.append(f"| {r['round']} | {r['shards']} | {r['served_rps']:.0f} | {r['nginx_cpu_pct']:.0f} | "
                     f"{shares} | {', '.join(str(t) for t in r['throttled']) or 'n/a'} |")
    lines += ["", "Ratio two shards / one, per round: " + (", ".join(f"{x:.2f}" for x in ratios) or "n/a"),
              f"Median {med:.2f}x (target >= 1.8x: {'met' if med >= 1.8 else 'missed'}).",
              "nginx had room if its CPU % stayed well below 100 in the two-shard phases; each shard's CPU",
              "share (CPU-s / phase length, which includes its start-up) shows the quota held."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", default=os.environ.get("KIS_LOADGEN", "target/release/kis-loadgen"))
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=float, default=400000.0, help="total intended rate, above one shard's reach")
    ap.add_argument("--quota", type=float, default=20.0, help="each shard's CPU share, %% of one CPU (0: a CPU each)")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--gen-cpus", default=None, help="the shards' CPU (with --quota), or two CPUs a,b (--quota 0)")
    ap.add_argument("--out")
    a = ap.parse_args()
    ncpu = os.cpu_count() or 1
    if a.quota <= 0 and ncpu < 4:
        sys.exit(f"shards.py: --quota 0 needs 4 CPUs (nginx, its headroom, one per shard); this machine has {ncpu}")
    if not os.access(a.loadgen, os.X_OK):
        sys.exit(f"shards.py: {a.loadgen} is not an executable (cargo build --release -p kis-loadgen)")
    gen_cpus = (a.gen_cpus or (str(ncpu - 1) if a.quota > 0 else f"{ncpu - 1},{ncpu - 2}")).split(",")
    cpus = [gen_cpus[0], gen_cpus[0]] if a.quota > 0 else gen_cpus[:2]
    out = a.out or run_dir("shards")
    os.makedirs(out, exist_ok=True)
    machine_info(out, a.loadgen)
    groups = [None, None]
    if a.quota > 0:
        try:
            groups = [CpuGroup(f"kis-loadgen-shard-{os.getpid()}-{k}", a.quota) for k in range(2)]
        except (OSError, RuntimeError) as e:
            sys.exit(f"shards.py: cannot make CPU cgroups for the shards' quota ({e}); run as root, or --quota 0 on 4+ CPUs")
    rows = []
    t_start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as work, open(os.path.join(out, "commands.txt"), "w") as commands:
            ng = Nginx(work, a.server_cpus, 1)
            try:
                for rnd in range(1, a.repeat + 1):
                    for n in (1, 2):
                        before, cpu0, t = ng.count(), group_cpu_seconds(ng.proc.pid), time.monotonic()
                        shard_cpu, throttled = run_shards(a, ng.url + "/file", n, groups, cpus, out, rnd, commands)
                        wall = time.monotonic() - t
                        ng_cpu = group_cpu_seconds(ng.proc.pid) - cpu0
                        time.sleep(ng.settle)
                        served = ng.count() - before
                        rows.append({"round": rnd, "shards": n, "served": served, "served_rps": served / a.seconds,
                                     "nginx_cpu_pct": 100.0 * ng_cpu / a.seconds, "wall_s": round(wall, 2),
                                     "shard_cpu_s": shard_cpu, "throttled": throttled})
                        log(f"round {rnd}, {n} shard(s): {served} served ({served / a.seconds:.0f}/s), "
                            f"nginx {100.0 * ng_cpu / a.seconds:.0f} % CPU, shards {shard_cpu} CPU-s")
            finally:
                ng.stop()
    finally:
        for g in groups:
            if g:
                g.remove()
    write_raw(out, [dict(r, shard_cpu_s=json.dumps(r["shard_cpu_s"]), throttled=json.dumps(r["throttled"]))
                    for r in rows], ["round", "shards", "served", "served_rps", "nginx_cpu_pct", "wall_s",
                                     "shard_cpu_s", "throttled"])
    summarise(rows, a, out, a.server_cpus, gen_cpus)
    log(f"shards.py: {time.monotonic() - t_start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
