#!/usr/bin/env python3
"""How many emulated-accelerator replicas this machine carries before the host limits them.

The emulated accelerator (tests/README.md) gives each Triton replica its own capacity: its compute
is a sleep drawn from a service profile, so N replicas should serve N times one replica's load at
one replica's latency, until the host (the Triton HTTP front ends, their Python stubs, nginx,
kis-loadgen, the control plane, all on these cores and this memory) runs out. For each replica
count N (default 1, 2, 4, 8, 12, 16) this scales `triton-cpu` from deploy/serving/ to N with
kubectl, waits until N Pods are Ready behind nginx, then sends N x --per-replica requests/s
(default 9, about 70 % of one emulated-cpu replica's ~13/s) through nginx with kis-loadgen for
--duration seconds, and records the achieved rate, errors, corrected p50/p95/p99, the host's busy
cores (/proc/stat) and the Tritons' resident memory (Pod process groups).

The host limit: the first N whose p95 exceeds --p95-factor (default 1.5) times the p95 at one
replica, or whose achieved rate falls below 95 % of the offered, or that has errors; the
machine carries the largest N before it. Memory per replica bounds N independently: reported too.

Writes a dated run folder (default tests/bench/runs/replica-capacity-UTCSTAMP/): commands.txt,
levels.csv, summary.md and the testbed's serve log. Bounded: every wait has a timeout, no new level
starts after --budget seconds (default 600), and the testbed is taken down by PID on any exit.

Usage: python3 tests/bench/replica_capacity.py [--replicas 1,2,4,8,12,16] [--out DIR]
Needs `cargo build -p kis-e2e -p kis-adapter -p kis-loadgen` and scripts/setup.sh done; meant for
a quiet machine (anything else running lowers the limit).
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale_to_ready as s2r  # noqa: E402  (the testbed helpers: kubectl, readiness, nginx backends)

NS, APP, MODEL = s2r.NS, s2r.APP, s2r.MODEL
PAGE = os.sysconf("SC_PAGE_SIZE")


def group_rss(pgids):
    """Resident memory (bytes) of every process in the given process groups."""
    return s2r.group_sum(pgids, (21,)) * PAGE  # rss, in pages


def pod_groups(state):
    out = set()
    for p in s2r.ready_pods(state):
        cid = p["status"]["containerStatuses"][0].get("containerID", "")
        if cid.startswith("kis-process://"):
            out.add(int(cid.split("//")[1]))
    return out


def level(state, n, a, work):
    """Scale to n, wait, load it; one row of levels.csv."""
    t0 = time.monotonic()
    s2r.kubectl(state, "-n", NS, "scale", "deployment", APP, f"--replicas={n}")
    s2r.wait_for(state, n, a.ready_timeout)
    scaled = time.monotonic() - t0
    rate = n * a.per_replica
    report = os.path.join(work, f"report-{n}.json")
    cmd = [os.path.join(s2r.BIN, "kis-loadgen"), "--url", state["balancer"], "--model", MODEL,
           "--json-body", "--shape", "INPUT0:1,3", "--pattern", "constant", "--rate", str(rate),
           "--duration", f"{a.duration}s", "--timeout", "30", "--quiet", "--json", report]
    s2r.LOG.append(" ".join(cmd))
    h0, w0 = s2r.host_cpu(), time.monotonic()
    s2r.run(cmd, timeout=a.duration + 90)
    busy = (s2r.host_cpu() - h0) / (time.monotonic() - w0)
    rss = group_rss(pod_groups(state))
    r = json.load(open(report))
    t, lat = r["totals"], r["latency"]["corrected"]
    return {"replicas": n, "scaled_s": round(scaled, 1), "offered_rps": rate,
            "achieved_rps": round(r["rates"]["achieved_rps"], 2), "ok": t["ok"], "errors": t["errors"],
            "p50_ms": round(lat["p50_ms"], 1), "p95_ms": round(lat["p95_ms"], 1),
            "p99_ms": round(lat["p99_ms"], 1), "host_busy_cores": round(busy, 2),
            "triton_rss_mib": round(rss / 2**20), "rss_per_replica_mib": round(rss / 2**20 / n)}


def verdicts(rows, a):
    """Marks each row ok / limited against the one-replica p95; the largest N carried."""
    base = rows[0]["p95_ms"] if rows else 0
    carried = 0
    for r in rows:
        why = []
        if r["errors"]:
            why.append(f"{r['errors']} errors")
        if r["achieved_rps"] < 0.95 * r["offered_rps"]:
            why.append("rate below 95 % of offered")
        if base and r["p95_ms"] > a.p95_factor * base:
            why.append(f"p95 over {a.p95_factor}x one replica's")
        r["verdict"] = "; ".join(why) or "ok"
        if why:
            break
        carried = r["replicas"]
    return carried


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", default="1,2,4,8,12,16")
    ap.add_argument("--per-replica", type=float, default=9.0, help="requests/s offered per replica")
    ap.add_argument("--duration", type=int, default=20, help="seconds of load per level")
    ap.add_argument("--p95-factor", type=float, default=1.5)
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--budget", type=float, default=600.0, help="start no new level after this many seconds")
    ap.add_argument("--out")
    a = ap.parse_args()
    try:
        counts = [int(x) for x in a.replicas.split(",")]
    except ValueError:
        sys.exit(f"replica_capacity.py: --replicas must be comma-separated integers, got '{a.replicas}'")
    if not counts or counts[0] != 1 or any(b <= x for x, b in zip(counts, counts[1:])):
        sys.exit("replica_capacity.py: --replicas must start at 1 and increase")
    for b in ["kis-e2e", "kis-adapter", "kis-loadgen"]:
        if not os.access(os.path.join(s2r.BIN, b), os.X_OK):
            sys.exit(f"replica_capacity.py: {s2r.BIN}/{b} missing: cargo build -p kis-e2e -p kis-adapter -p kis-loadgen")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out = a.out or os.path.join(s2r.ROOT, "tests", "bench", "runs", f"replica-capacity-{stamp}")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kis-capacity-")
    tb_dir = os.path.join(work, "tb")
    t_start, rows, failure = time.monotonic(), [], None
    load0 = os.getloadavg()[0]
    try:
        pods = max(counts) + 10
        s2r.run([os.path.join(s2r.BIN, "kis-e2e"), "testbed", "up", "--dir", tb_dir, "--timeout", "300",
                 "--node", f"kis-node-1:cpu=256,memory=1024Gi,gpu=1,pods={pods}"], timeout=330)
        state = json.load(open(os.path.join(tb_dir, "state.json")))
        s2r.kubectl(state, "apply", "-f", state["manifests"])
        s2r.kubectl(state, "-n", NS, "scale", "deployment", "triton-gpu", "--replicas=0")
        for n in counts:
            if time.monotonic() - t_start > a.budget:
                failure = f"budget of {a.budget:.0f} s spent before {n} replicas"
                break
            rows.append(level(state, n, a, work))
            print(f"{n} replicas: {rows[-1]}", file=sys.stderr)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
        failure = str(e)
        print(f"replica_capacity.py: {e}", file=sys.stderr)
    finally:
        s2r.LOG.append(f"{s2r.BIN}/kis-e2e testbed down --dir {tb_dir}")
        subprocess.run([os.path.join(s2r.BIN, "kis-e2e"), "testbed", "down", "--dir", tb_dir],
                       capture_output=True, timeout=180)
        if os.path.exists(os.path.join(tb_dir, "serve.log")):
            shutil.copy(os.path.join(tb_dir, "serve.log"), out)
        shutil.rmtree(work, ignore_errors=True)
        write(out, a, rows, failure, time.monotonic() - t_start, load0)
    return 0 if rows and not failure else 1


def write(out, a, rows, failure, wall, load0):
    carried = verdicts(rows, a)
    with open(os.path.join(out, "commands.txt"), "w") as f:
        f.write("python3 tests/bench/replica_capacity.py " + " ".join(sys.argv[1:]) + "\n\n"
                + "\n".join(s2r.LOG) + "\n")
    keys = ["replicas", "scaled_s", "offered_rps", "achieved_rps", "ok", "errors", "p50_ms", "p95_ms",
            "p99_ms", "host_busy_cores", "triton_rss_mib", "rss_per_replica_mib", "verdict"]
    with open(os.path.join(out, "levels.csv"), "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
    table = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    table += ["| " + " | ".join(str(r.get(k, "not judged")) for k in keys) + " |" for r in rows]
    mem = os.sysconf("SC_PHYS_PAGES") * PAGE
    per = max((r["rss_per_replica_mib"] for r in rows), default=0)
    limited = next((r for r in rows if r.get("verdict", "ok") != "ok"), None)
    lines = ["# Emulated replicas this machine carries\n",
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, host {os.uname().nodename}, "
             f"{os.cpu_count()} CPUs, {mem / 2**30:.0f} GiB; load average {load0:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after; run took {wall:.0f} s.\n",
             "Command: `python3 tests/bench/replica_capacity.py " + " ".join(sys.argv[1:]) + "` (commands.txt).\n",
             *table, ""]
    if limited:
        lines.append(f"**Carried: {carried} replicas** at {a.per_replica:g} requests/s each; at "
                     f"{limited['replicas']} the host limits them ({limited['verdict']}).")
    elif rows:
        lines.append(f"**Carried: all {carried} replicas tried** at {a.per_replica:g} requests/s each; the limit "
                     "lies beyond (try larger --replicas).")
    if per:
        lines.append(f"Memory: about {per} MiB resident per replica (Triton and its Python stub), so "
                     f"{mem / 2**20 / per:.0f} replicas would fill this machine's memory on their own.")
    if failure:
        lines.append(f"\nStopped early: {failure}")
    lines.append(f"\nA level is limited when it has errors, achieves under 95 % of the offered rate, or its "
                 f"corrected p95 exceeds {a.p95_factor}x the one-replica p95. Offered load: "
                 f"{a.per_replica:g} requests/s per replica through nginx for {a.duration} s (kis-loadgen, "
                 "constant, open loop). Host busy cores: /proc/stat over the load window.")
    open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
