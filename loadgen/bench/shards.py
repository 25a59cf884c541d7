#!/usr/bin/env python3
"""Issue 19's scaling check: does a second shard add load? One kis-loadgen shard, then two
(`--shard 0/2`, `--shard 1/2`, one shared `--start-at`), each pinned to its own CPU, drive nginx
at a rate above what one generator can send; the server-counted request rates are compared
(target: two shards >= 1.8x one). nginx gets its own CPUs and workers so that it is not the
bottleneck; the script refuses to run with fewer than 4 CPUs (2 for nginx, 1 per shard). Each
shard's report (achieved vs intended rate, warnings on which side limits) is kept, so a run
where nginx saturated shows it.

    python3 loadgen/bench/shards.py --loadgen target/release/kis-loadgen [--seconds 10] [--rate 400000]

Writes shards-RESULT.json and every shard's report and merged report into --out (default a run
folder under loadgen/bench/runs/).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Nginx, log  # noqa: E402  (the peer benchmark's nginx, counted from its access log)


def run_shards(loadgen, url, n, cpus, rate, seconds, out):
    start_at = time.time() + 3.0
    stamp = datetime.datetime.fromtimestamp(start_at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    procs = []
    for k in range(n):
        args = ["taskset", "-c", str(cpus[k]), loadgen, "--url", url + "/file", "--method", "GET",
                "--pattern", "constant", "--rate", str(rate), "--duration", f"{seconds}s",
                "--connections", "64", "--seed", "1", "--run-id", f"scale-{n}", "--start-at", stamp,
                "--shard", f"{k}/{n}", "--json", os.path.join(out, f"n{n}-shard-{k}.json"),
                "--hdr-log", os.path.join(out, f"n{n}-shard-{k}.hlog"), "--quiet", "--grace", "2s"]
        procs.append(subprocess.Popen(args))
    for p in procs:
        p.wait(timeout=seconds + 60)
    subprocess.run([loadgen, "merge", "--quiet", "--json", os.path.join(out, f"n{n}-merged.json")]
                   + [os.path.join(out, f"n{n}-shard-{k}.json") for k in range(n)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=float, default=400000.0, help="total intended rate, above one shard's reach")
    ap.add_argument("--out")
    a = ap.parse_args()
    ncpu = os.cpu_count() or 1
    if ncpu < 4:
        sys.exit(f"shards.py: needs at least 4 CPUs (2 for nginx, 1 per shard), this machine has {ncpu}")
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs",
                                datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-shards"))
    os.makedirs(out, exist_ok=True)
    gen_cpus = [ncpu - 1, ncpu - 2]
    ng_cpus = f"0-{ncpu - 3}"
    with tempfile.TemporaryDirectory() as work:
        ng = Nginx(work, ng_cpus, ncpu - 2)
        try:
            rates = {}
            for n in (1, 2):
                before = ng.count()
                t = time.monotonic()
                run_shards(a.loadgen, ng.url, n, gen_cpus, a.rate, a.seconds, out)
                time.sleep(ng.settle)
                served = ng.count() - before
                rates[n] = served / a.seconds
                log(f"{n} shard(s): {served} requests served ({rates[n]:.0f}/s), {time.monotonic() - t:.1f} s")
        finally:
            ng.stop()
    result = {"cpus": ncpu, "nginx_cpus": ng_cpus, "generator_cpus": gen_cpus, "seconds": a.seconds,
              "rate": a.rate, "served_rps": rates, "ratio": rates[2] / max(rates[1], 1e-9), "target": 1.8}
    with open(os.path.join(out, "shards-RESULT.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
