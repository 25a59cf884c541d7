#!/usr/bin/env python3
"""Issue 18 item 9: the cost of a low open-loop rate, kis-loadgen next to oha in one run.

Both send 2,000 GET/s (open loop, `--connections`/`-c` 1024 by default, as in the peer bench) to
the same nginx for 15 s, 3 runs each, interleaved (the order alternates each round). Reported:
generator CPU seconds (user + sys, /usr/bin/time) per run, the server-counted requests, the
ratio kis-loadgen / oha of CPU seconds (< 1: kis-loadgen is cheaper), and kis-loadgen's own
send-lag p50/p99 and achieved rate from its JSON report, so a saving bought with timing
accuracy would show. nginx and the generator are pinned to disjoint CPUs.

    python3 loadgen/bench/lowrate.py --loadgen target/release/kis-loadgen                 # ~2 min
    python3 loadgen/bench/lowrate.py --loadgen ... --runs 1 --seconds 2 --skip-oha         # a check

Writes loadgen/bench/runs/<UTC date>-lowrate[-N]/: summary.md, raw.csv, commands.txt,
machine.txt, the logs and kis-loadgen's reports. Needs oha and nginx (scripts/bench-setup.sh).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BENCH, Nginx, log  # noqa: E402  (the peer benchmark's pieces)
from pairs import common_args, runner, start, write_raw  # noqa: E402

FIELDS = ["round", "tool", "exit", "duration_s", "wall_s", "server_requests", "gen_user_s", "gen_sys_s",
          "gen_cpu_s", "server_rps", "server_cpu_pct", "gen_max_rss_mb", "achieved_rps", "send_lag_p50_ms",
          "send_lag_p99_ms", "log"]


def lag_of(report):
    try:
        with open(report) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return {}
    lag = rep.get("latency", {}).get("send_lag", {})
    return {"send_lag_p50_ms": lag.get("p50_ms"), "send_lag_p99_ms": lag.get("p99_ms"),
            "achieved_rps": rep.get("rates", {}).get("achieved_rps")}


def summarise(rows, a, out):
    by = {}
    for r in rows:
        if r["exit"] == 0:
            by.setdefault(r["tool"], []).append(r)
    lines = [f"# Open loop at {a.rate:.0f} req/s: kis-loadgen vs oha ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", f"{a.seconds} s per run, {a.runs} runs per tool interleaved, {a.connections} connections, nginx.",
             f"Generator CPUs `{a.gen_cpus}`, nginx CPUs `{a.server_cpus}`. Machine: see machine.txt.", "",
             "| tool | runs | CPU-s per run (median) | min..max | server-counted req/s (median) | send lag p50 / p99 ms (median) |",
             "|---|---|---|---|---|---|"]
    med = {}
    for t, v in by.items():
        c = [x["gen_cpu_s"] for x in v]
        med[t] = statistics.median(c)
        p50 = [x["send_lag_p50_ms"] for x in v if x.get("send_lag_p50_ms") not in (None, "")]
        p99 = [x["send_lag_p99_ms"] for x in v if x.get("send_lag_p99_ms") not in (None, "")]
        def med_or_na(xs):
            return f"{statistics.median(xs):.3f}" if xs else "n/a"
        lag = f"{med_or_na(p50)} / {med_or_na(p99)}"
        lines.append(f"| {t} | {len(v)} | {med[t]:.2f} | {min(c):.2f}..{max(c):.2f} | "
                     f"{statistics.median(x['server_rps'] for x in v):.1f} | {lag} |")
    if "oha" in med and "kis-loadgen" in med and med["oha"] > 0:
        ratio = med["kis-loadgen"] / med["oha"]
        lines += ["", f"kis-loadgen / oha CPU-seconds: {ratio:.2f}x (issue 18 measured 1.9x before this change)."]
        per = []
        for rnd in sorted({r["round"] for r in rows}):
            k = [r for r in by["kis-loadgen"] if r["round"] == rnd]
            o = [r for r in by["oha"] if r["round"] == rnd]
            if k and o and o[0]["gen_cpu_s"] > 0:
                per.append(k[0]["gen_cpu_s"] / o[0]["gen_cpu_s"])
        lines.append("Per round: " + ", ".join(f"{p:.2f}" for p in per))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oha", default=shutil.which("oha") or os.path.join(BENCH, "bin", "oha"))
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=1024)
    ap.add_argument("--skip-oha", action="store_true", help="kis-loadgen only (to check the script without oha)")
    common_args(ap)
    a = ap.parse_args()
    if not a.skip_oha and not os.access(a.oha, os.X_OK):
        sys.exit(f"lowrate.py: oha not found at {a.oha} (scripts/bench-setup.sh builds it), or pass --skip-oha")
    out = start("lowrate.py", "lowrate", a)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as work, open(os.path.join(out, "commands.txt"), "w") as commands:
        r = runner(out, a.gen_cpus, a.seconds, commands, FIELDS)
        ng = Nginx(work, a.server_cpus, 1)
        try:
            url = ng.url + "/file"
            for rnd in range(a.runs):
                tools = ["oha", "kis-loadgen"] if rnd % 2 == 0 else ["kis-loadgen", "oha"]
                for t in tools:
                    if t == "oha":
                        if a.skip_oha:
                            continue
                        argv = [a.oha, "-q", str(a.rate), "-z", f"{a.seconds}s", "-c", str(a.connections),
                                "--no-tui", "--latency-correction", url]
                        row = r.run("open-loop", "oha", argv, ng, extra={"round": rnd + 1})
                    else:
                        rep = os.path.join(out, f"kl-{rnd + 1}.json")
                        argv = [a.loadgen, "--url", url, "--method", "GET", "--pattern", "constant", "--rate",
                                str(a.rate), "--duration", f"{a.seconds}s", "--connections", str(a.connections),
                                "--quiet", "--json", rep]
                        row = r.run("open-loop", "kis-loadgen", argv, ng, extra={"round": rnd + 1})
                        row.update(lag_of(rep))
                    row["gen_cpu_s"] = round(row["gen_user_s"] + row["gen_sys_s"], 3)
        finally:
            ng.stop()
        write_raw(out, r.rows, FIELDS)
    summarise(r.rows, a, out)
    log(f"lowrate.py: {time.monotonic() - t_start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
