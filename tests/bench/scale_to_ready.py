#!/usr/bin/env python3
"""Time from a published target to Ready pods serving behind the load balancer, on the testbed.

For each of STEPS scale steps (default 20) it publishes a new target for triton-cpu through
kis-adapter's publish API (the real HPA, deploy/v1.20/hpa-cpu.yaml, then scales the Deployment
from deploy/serving/) and measures until: exactly N Pods Ready, exactly N backends for the model
in nginx's configuration, and one inference answered through the load balancer. Then, with the
largest replica count running, the host CPU cost per emulated replica: CPU seconds of every
Triton process group (Pod containerID kis-process://PID, Triton plus its Python stub) per wall
second, idle and under a constant load from kis-loadgen, next to the whole host's (/proc/stat).

Writes a dated run folder (default tests/bench/runs/scale-to-ready-UTCSTAMP/): commands.txt,
steps.csv, cpu.csv, summary.md, and the testbed's serve log. Bounded: every wait has a timeout
and the whole run stops taking steps after --budget seconds (default 420, so it ends within 8
minutes including start and tear-down); the testbed is taken down by PID on any exit.

Usage: python3 tests/bench/scale_to_ready.py [--steps 20] [--max-replicas 4] [--out DIR]
Needs `cargo build -p kis-e2e -p kis-adapter -p kis-loadgen` and scripts/setup.sh done.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "debug")
KUBECTL = os.path.expanduser(os.environ.get("KIS_CACHE", "~/.cache/kis")) + "/debian-kubectl/usr/bin/kubectl"
NS, APP, MODEL = "kis-serving", "triton-cpu", "emulated-cpu"
HZ = os.sysconf("SC_CLK_TCK")
LOG = []


def run(cmd, timeout=60, check=True):
    LOG.append(" ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return p.stdout


def kubectl(state, *args, timeout=30):
    return run([KUBECTL, "--kubeconfig", state["kubeconfig"], "--request-timeout=20s", *args], timeout=timeout)


def ready_pods(state):
    pods = json.loads(kubectl(state, "-n", NS, "get", "pods", "-l", f"app={APP}", "-o", "json"))["items"]
    out = []
    for p in pods:
        conds = p.get("status", {}).get("conditions", [])
        if not p["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conds):
            out.append(p)
    return out


def backends(state):
    """Servers nginx is configured with for MODEL (its configuration file in the run dir)."""
    try:
        conf = open(os.path.join(state["run_dir"], "nginx", "nginx.conf")).read()
    except OSError:
        return 0
    m = re.search(r"location = /v2/models/%s \{ proxy_pass http://(model_\d+); \}" % re.escape(MODEL), conf)
    if not m:
        return 0
    up = re.search(r"upstream %s \{(.*?)\}" % m.group(1), conf, re.S)
    return len(re.findall(r"^\s*server ", up.group(1), re.M)) if up else 0


def infer_ok(state):
    body = '{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "-X", "POST", "-d", body,
                        f"{state['balancer']}/v2/models/{MODEL}/infer"], capture_output=True, text=True)
    return p.returncode == 0 and '"outputs"' in p.stdout


def publish(state, n):
    body = json.dumps({"labels": {"target": APP}, "value": n, "ttlSeconds": 3600})
    reply = run(["curl", "-sSk", "--max-time", "10", "-X", "PUT", "-w", "\n%{http_code}",
                 "-H", f"Authorization: Bearer {state['adapter_token']}",
                 "-H", "Content-Type: application/json", "-d", body,
                 f"{state['adapter']}/targets/v1/namespaces/{NS}/kis-replicas"])
    text, _, code = reply.rpartition("\n")
    if code.strip() != "200":
        raise RuntimeError(f"publishing {n}: HTTP {code.strip()}: {text.strip()[:300]}")


def wait_for(state, n, bound):
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < bound:
        ready, behind = len(ready_pods(state)), backends(state)
        last = f"{ready} Ready, {behind} behind nginx"
        if ready == n and behind == n and infer_ok(state):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(f"{n} replicas not serving within {bound} s ({last})")


def group_sum(pgids, fields):
    """Sum of /proc/PID/stat fields (indexes counted after "pid (comm)") over every process in the
    given process groups."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(f[2]) in pgids:  # field 5 (pgrp)
            total += sum(int(f[i]) for i in fields)
    return total


def group_cpu(pgids):
    """CPU seconds (user + system) of every process in the given process groups."""
    return group_sum(pgids, (11, 12)) / HZ  # utime, stime


def host_cpu():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f) - f[3] - f[4]) / HZ  # all but idle and iowait


def cpu_window(state, seconds, label, load=None):
    pgids = set()
    for p in ready_pods(state):
        cid = p["status"]["containerStatuses"][0].get("containerID", "")
        if cid.startswith("kis-process://"):
            pgids.add(int(cid.split("//")[1]))
    gen = None
    if load:
        cmd = [os.path.join(BIN, "kis-loadgen"), "--url", state["balancer"], "--model", MODEL, "--json-body",
               "--shape", "INPUT0:1,3", "--pattern", "constant", "--rate", str(load),
               "--duration", f"{seconds + 3}s", "--quiet"]
        LOG.append(" ".join(cmd))
        gen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
    g0, h0, t0 = group_cpu(pgids), host_cpu(), time.monotonic()
    time.sleep(seconds)
    g1, h1, t1 = group_cpu(pgids), host_cpu(), time.monotonic()
    if gen:
        try:
            gen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gen.kill()
    wall = t1 - t0
    n = max(len(pgids), 1)
    return {"window": label, "replicas": len(pgids), "load_rps": load or 0, "wall_s": round(wall, 2),
            "triton_cpu_s": round(g1 - g0, 3), "cores_per_replica": round((g1 - g0) / wall / n, 4),
            "host_cores": round((h1 - h0) / wall, 3)}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-replicas", type=int, default=4)
    ap.add_argument("--budget", type=float, default=420.0, help="stop taking steps after this many seconds")
    ap.add_argument("--cpu-window", type=float, default=15.0)
    ap.add_argument("--load", type=float, default=20.0, help="requests/s for the loaded CPU window")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.steps < 1 or a.max_replicas < 2:
        sys.exit("scale_to_ready.py: --steps must be >= 1 and --max-replicas >= 2")
    for b in ["kis-e2e", "kis-adapter", "kis-loadgen"]:
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"scale_to_ready.py: {BIN}/{b} missing: cargo build -p kis-e2e -p kis-adapter -p kis-loadgen")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out = a.out or os.path.join(ROOT, "tests", "bench", "runs", f"scale-to-ready-{stamp}")
    os.makedirs(out, exist_ok=True)
    # Targets: 1 -> 2 -> ... -> max -> 1 -> ..., so steps go up by one and down by several.
    cycle = list(range(2, a.max_replicas + 1)) + [1]
    targets = [cycle[i % len(cycle)] for i in range(a.steps)]
    work = tempfile.mkdtemp(prefix="kis-bench-")
    tb_dir = os.path.join(work, "tb")
    t_start = time.monotonic()
    steps, cpu = [], []
    try:
        run([os.path.join(BIN, "kis-e2e"), "testbed", "up", "--dir", tb_dir, "--timeout", "300",
             "--node", f"kis-node-1:cpu=64,memory=256Gi,gpu=1,pods=110"], timeout=330)
        state = json.load(open(os.path.join(tb_dir, "state.json")))
        kubectl(state, "apply", "-f", state["manifests"])
        kubectl(state, "-n", NS, "scale", "deployment", "triton-gpu", "--replicas=0")
        kubectl(state, "apply", "-f", os.path.join(ROOT, "deploy", "v1.20", "hpa-cpu.yaml"))
        publish(state, 1)
        wait_for(state, 1, 240)
        for i, n in enumerate(targets):
            if time.monotonic() - t_start > a.budget:
                print(f"budget of {a.budget:.0f} s spent after {i} steps", file=sys.stderr)
                break
            prev = targets[i - 1] if i else 1
            t0 = time.monotonic()
            publish(state, n)
            wait_for(state, n, 180)
            total = time.monotonic() - t0
            steps.append({"step": i + 1, "from": prev, "to": n, "seconds": round(total, 3)})
            print(f"step {i + 1}/{len(targets)}: {prev} -> {n} serving in {total:.2f} s", file=sys.stderr)
        # CPU cost at the largest replica count.
        publish(state, a.max_replicas)
        wait_for(state, a.max_replicas, 180)
        cpu.append(cpu_window(state, a.cpu_window, "idle"))
        cpu.append(cpu_window(state, a.cpu_window, "loaded", load=a.load))
    finally:
        LOG.append(f"{BIN}/kis-e2e testbed down --dir {tb_dir}")
        subprocess.run([os.path.join(BIN, "kis-e2e"), "testbed", "down", "--dir", tb_dir],
                       capture_output=True, timeout=120)
        for f in ["serve.log"]:
            if os.path.exists(os.path.join(tb_dir, f)):
                shutil.copy(os.path.join(tb_dir, f), out)
        shutil.rmtree(work, ignore_errors=True)
        write(out, a, steps, cpu, time.monotonic() - t_start)
    return 0 if steps else 1


def write(out, a, steps, cpu, wall):
    with open(os.path.join(out, "commands.txt"), "w") as f:
        f.write("python3 tests/bench/scale_to_ready.py " + " ".join(sys.argv[1:]) + "\n\n" + "\n".join(LOG) + "\n")
    with open(os.path.join(out, "steps.csv"), "w") as f:
        f.write("step,from,to,seconds\n")
        for s in steps:
            f.write(f"{s['step']},{s['from']},{s['to']},{s['seconds']}\n")
    with open(os.path.join(out, "cpu.csv"), "w") as f:
        keys = ["window", "replicas", "load_rps", "wall_s", "triton_cpu_s", "cores_per_replica", "host_cores"]
        f.write(",".join(keys) + "\n")
        for c in cpu:
            f.write(",".join(str(c[k]) for k in keys) + "\n")
    lines = [f"# Published target to Ready pods serving behind the load balancer\n",
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, host {os.uname().nodename}, "
             f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; run took {wall:.0f} s.\n",
             "Command: `python3 tests/bench/scale_to_ready.py " + " ".join(sys.argv[1:]) + "` (commands.txt).\n"]
    for label, sel in [("all steps", steps), ("up steps", [s for s in steps if s["to"] > s["from"]]),
                       ("down steps", [s for s in steps if s["to"] < s["from"]])]:
        xs = [s["seconds"] for s in sel]
        if xs:
            lines.append(f"- {label}: n={len(xs)}, p50 {statistics.median(xs):.2f} s, p95 {pct(xs, 0.95):.2f} s, "
                         f"max {max(xs):.2f} s")
    if len(steps) < a.steps:
        lines.append(f"- only {len(steps)} of {a.steps} steps done (budget or failure; see the output)")
    for c in cpu:
        lines.append(f"- CPU, {c['window']} ({c['replicas']} replicas, {c['load_rps']} req/s): "
                     f"{c['cores_per_replica']} cores per emulated replica; whole host {c['host_cores']} cores")
    lines.append("\nA step ends when exactly N Pods are Ready, nginx lists exactly N backends for the model, "
                 "and an inference through nginx is answered (steps.csv). CPU: user+system time of each "
                 "Triton Pod's process group over the window (cpu.csv).")
    open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
