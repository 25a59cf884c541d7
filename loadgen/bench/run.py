#!/usr/bin/env python3
"""Peer benchmark for kis-loadgen: requests per generator CPU-second, side by side in one run.

For each scenario of issue 3's Performance section it starts the server (nginx or the real Triton)
on loopback, pinned with taskset to other cores than the generator, runs every generator in turn
(wrk, oha, Locust FastHttpUser, perf_analyzer, kis-loadgen), and reports

    requests per generator CPU-second = server-counted requests / generator user+sys CPU seconds

(server count: nginx access-log lines, or the delta of Triton's /v2/models/M/stats success count;
CPU: /usr/bin/time over the generator's whole process tree), with the ratio kis-loadgen / peer.
Open-loop runs report the achieved rate and kis-loadgen's send lag from its JSON report.

Results go to loadgen/bench/runs/<date>-<host>[-quick]/: summary.md, raw.csv, commands.txt and
reqs_per_cpu.svg. Peers come from scripts/bench-setup.sh. See loadgen/bench/README.md.
"""
import argparse
import csv
import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from pairs import image_body

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KIS_CACHE = os.environ.get("KIS_CACHE") or os.path.expanduser("~/.cache/kis")
BENCH = os.path.join(KIS_CACHE, "bench-v1")
TRITON = os.path.join(KIS_CACHE, "triton-v1")
USERS = 64
IDENTITY_LEN = 16
STALL_SECONDS = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Pass criteria from issue 3 (kis-loadgen / peer, requests per generator CPU-second).
TARGETS = {
    ("nginx-get", "wrk"): 0.9,
    ("nginx-get", "locust"): 11.0,
    ("identity-json", "oha"): 1.0,
    ("identity-json", "perf_analyzer"): 2.0,
    ("image-binary", "wrk"): 1.0,
}


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    """Status and body of a GET, or (None, b"") when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:
        return None, b""


def group_cpu_seconds(pgid):
    """user+sys CPU seconds of every live process in a process group (the server's)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def stop_group(proc, bound=15.0):
    """SIGTERM the process group, wait (bounded), then SIGKILL it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Nginx:
    """Debian nginx serving one small static file; counts requests from its access log."""

    name = "nginx"
    settle = 1.5  # the access log is flushed every second

    def __init__(self, workdir, cpus, workers):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
        with open(os.path.join(self.dir, "www", "file"), "wb") as f:
            f.write(b"kis-bench " * 12 + b"\n")  # 121 bytes
        self.port = free_port()
        with open(os.path.join(HERE, "nginx.conf")) as f:
            conf = f.read()
        conf = conf.replace("@DIR@", self.dir).replace("@PORT@", str(self.port))
        conf = conf.replace("@WORKERS@", str(workers))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpus, "/usr/sbin/nginx", "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "stderr.log"), "w"),
        )
        deadline = time.monotonic() + 10
        while http_get(self.url + "/file")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start; see {self.dir}/stderr.log and nginx-error.log")
            time.sleep(0.05)

    def count(self, _model=None):
        with open(os.path.join(self.dir, "access.log"), "rb") as f:
            return f.read().count(b"200\n")

    def stop(self):
        stop_group(self.proc)


class Triton:
    """The real tritonserver installed by scripts/setup.d/20-triton.sh, on free loopback ports."""

    name = "triton"
    settle = 0.2

    def __init__(self, workdir, cpus):
        launcher = os.path.join(TRITON, "bin", "tritonserver")
        if not os.path.exists(os.path.join(TRITON, "stamp")):
            raise RuntimeError(f"Triton is not installed in {TRITON}: run scripts/setup.sh")
        self.port, grpc, metrics = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(workdir, "tritonserver.log")
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpus, launcher, "--http-address=127.0.0.1", f"--http-port={self.port}",
             "--grpc-address=127.0.0.1", f"--grpc-port={grpc}", "--metrics-address=127.0.0.1",
             f"--metrics-port={metrics}", "--exit-timeout-secs=5"],
            start_new_session=True,
            stdout=open(self.log, "w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        for path in ["/v2/health/ready"] + [f"/v2/models/{m}/ready" for m in ("identity", "image", "faulty")]:
            while http_get(self.url + path)[0] != 200:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tritonserver not ready ({path}); log {self.log}")
                time.sleep(0.1)

    def count(self, model):
        status, body = http_get(f"{self.url}/v2/models/{model}/stats", timeout=10)
        if status != 200:
            raise RuntimeError(f"GET /v2/models/{model}/stats gave {status}")
        return json.loads(body)["model_stats"][0]["inference_stats"]["success"]["count"]

    def stop(self):
        stop_group(self.proc)


def find(obj, *keys):
    """The first value under any of `keys` anywhere in a JSON tree (defensive report reading)."""
    if isinstance(obj, dict):
        for k in keys:
            if k in obj and not isinstance(obj[k], (dict, list)):
                return obj[k]
        for v in obj.values():
            r = find(v, *keys)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find(v, *keys)
            if r is not None:
                return r
    return None


def loadgen_report(path):
    """achieved/intended rate and send-lag p99 (ms) from kis-loadgen's --json, or None each."""
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return {}

    def dig(*path):
        node = rep
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        return node if isinstance(node, (int, float)) else None

    # The known layout first (rates.*, latency.send_lag.p99_ms); a search outside the per-window
    # series as a fallback, in case the report's layout moves.
    top = {k: v for k, v in rep.items() if k != "windows"} if isinstance(rep, dict) else rep
    out = {
        "achieved_rps": dig("rates", "achieved_rps") or find(top, "achieved_rps"),
        "intended_rps": dig("rates", "intended_rps") or find(top, "intended_rps"),
    }
    lag = dig("latency", "send_lag", "p99_ms")
    stack = [top]
    while stack and lag is None:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if "lag" in k and isinstance(v, dict):
                    lag = v.get("p99_ms")
                    if lag is None and v.get("p99_us") is not None:
                        lag = v["p99_us"] / 1000.0
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    out["send_lag_p99_ms"] = lag
    # Only sends made by the schedule's end count as achieved; a catch-up after it is an overrun
    # (sends and seconds past the end), reported beside the ratio rather than hidden in it.
    out["overrun_sends"] = dig("rates", "overrun_sends")
    out["overrun_s"] = dig("rates", "overrun_s")
    # --busy-poll's own stalls (stretches of >= 1 ms the dispatcher did not run), summed.
    gaps = dig("totals", "dispatcher_gaps", "total_us")
    if gaps is not None and find(rep.get("config"), "busy_poll") is True:
        out["gen_gap_ms"] = gaps / 1000.0
    return out


class Runner:
    def __init__(self, args, logdir, raw_writer, raw_file, commands):
        self.args = args
        self.logdir = logdir
        self.raw = raw_writer
        self.raw_file = raw_file
        self.commands = commands
        self.rows = []
        self.seq = 0
        self.soak = None
        self.stalls = None
        self.out_dir = None

    def run(self, scenario, tool, argv, server, model=None, env=None, extra=None):
        """Runs one generator under taskset + /usr/bin/time and records one raw row."""
        self.seq += 1
        tag = f"{self.seq:02d}-{scenario}-{tool}"
        timefile = os.path.join(self.logdir, tag + ".time")
        out = os.path.join(self.logdir, tag + ".log")
        cmd = ["taskset", "-c", self.args.gen_cpus, "/usr/bin/time", "-f", "%e %U %S %M", "-o", timefile] + argv
        self.commands.write(f"{tag}: {' '.join(argv)}\n")
        self.commands.flush()
        full_env = dict(os.environ)
        full_env.update(env or {})
        before = server.count(model)
        cpu0 = group_cpu_seconds(server.proc.pid)
        t0 = time.monotonic()
        log(f"{tag}: {' '.join(argv[:1] + argv[1:8])} ...")
        with open(out, "w") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
            try:
                rc = p.wait(timeout=self.args.duration + 90)
            except subprocess.TimeoutExpired:
                log(f"{tag}: over its time bound, killed")
                stop_group(p, bound=5)
                rc = "timeout"
        wall = time.monotonic() - t0
        server_cpu = group_cpu_seconds(server.proc.pid) - cpu0
        time.sleep(server.settle)
        requests = server.count(model) - before
        try:
            with open(timefile) as f:
                elapsed, user, sys_, rss = f.read().strip().splitlines()[-1].split()
            user, sys_, rss_mb = float(user), float(sys_), int(rss) / 1024.0
        except (OSError, ValueError):
            user = sys_ = rss_mb = float("nan")
        cpu = user + sys_
        row = {
            "scenario": scenario,
            "tool": tool,
            "exit": rc,
            "duration_s": self.args.duration,
            "wall_s": round(wall, 3),
            "server_requests": requests,
            "gen_user_s": round(user, 3),
            "gen_sys_s": round(sys_, 3),
            "req_per_cpu_s": round(requests / cpu, 1) if cpu > 0 else float("nan"),
            "server_rps": round(requests / self.args.duration, 1),
            "server_cpu_pct": round(100.0 * server_cpu / wall, 1),
            "gen_max_rss_mb": round(rss_mb, 1),
            "intended_rps": "",
            "achieved_rps": "",
            "send_lag_p99_ms": "",
            "ceiling_rps": "",
            "log": out,
        }
        row.update(extra or {})
        if rc not in (0,):
            log(f"{tag}: exit {rc}; last lines of {out}:")
            with open(out, errors="replace") as f:
                for line in f.read().splitlines()[-5:]:
                    log("    " + line)
        log(f"{tag}: {requests} requests, {cpu:.2f} CPU-s -> {row['req_per_cpu_s']} req/CPU-s")
        self.raw.writerow(row)
        self.raw_file.flush()
        self.rows.append(row)
        return row


HALTPOLL = "/sys/module/haltpoll/parameters"


class HaltPoll:
    """Guest halt polling for the run (the haltpoll cpuidle driver of a KVM guest), restored after.

    An idle vCPU that halts must be woken by the hypervisor, which costs the server a wake-up per
    request in an open loop (nginx spent 29-35 us per request then against 17-18 us in a closed
    loop, measured); polling up to N us before halting keeps it awake between close arrivals.
    """

    def __init__(self, us):
        self.us = us
        self.saved = {}

    def __enter__(self):
        if not self.us:
            return self
        try:
            for name in ("guest_halt_poll_ns", "guest_halt_poll_allow_shrink"):
                with open(os.path.join(HALTPOLL, name)) as f:
                    self.saved[name] = f.read().strip()
            # No shrinking: the poll window stays N us instead of adapting down between bursts.
            self._write("guest_halt_poll_allow_shrink", "N")
            self._write("guest_halt_poll_ns", str(self.us * 1000))
        except OSError as e:
            # Whatever was already changed goes back before the run is refused.
            self.__exit__()
            raise RuntimeError(f"--halt-poll-us: cannot set {HALTPOLL}: {e}") from e
        log(f"guest halt polling {self.us} us (was {self.saved['guest_halt_poll_ns']} ns); restored at the end")
        return self

    def _write(self, name, value):
        with open(os.path.join(HALTPOLL, name), "w") as f:
            f.write(value)

    def __exit__(self, *_):
        for name in ("guest_halt_poll_ns", "guest_halt_poll_allow_shrink"):
            if name in self.saved:
                try:
                    self._write(name, self.saved[name])
                except OSError as e:
                    log(f"could not restore {HALTPOLL}/{name} to {self.saved[name]}: {e}")
        return False


def halt_poll_problem():
    """Why --halt-poll-us cannot be used here, or None."""
    path = os.path.join(HALTPOLL, "guest_halt_poll_ns")
    if not os.path.exists(path):
        return f"--halt-poll-us needs the haltpoll cpuidle driver of a KVM guest ({path} is missing)"
    if not os.access(path, os.W_OK):
        return f"--halt-poll-us needs write access to {path} (run as root)"
    return None


# A spinning loop that reads the clock and sums the gaps between reads: a gap is time the CPU did
# not run the loop (a guest task or interrupt, or the hypervisor running something else). The
# guest's steal counter stays 0 on this project's VMs, so this is how host noise is seen.
STALL_PROBE = r"""
import json, sys, time
end = time.perf_counter_ns() + int(float(sys.argv[1]) * 1e9)
last = time.perf_counter_ns()
n02 = n1 = 0
s02 = s1 = mx = 0
while last < end:
    t = time.perf_counter_ns()
    d = t - last
    last = t
    if d >= 200_000:
        n02 += 1; s02 += d
        if d >= 1_000_000:
            n1 += 1; s1 += d
        mx = max(mx, d)
print(json.dumps({"gaps_0.2ms": n02, "lost_0.2ms_ms": s02 / 1e6, "gaps_1ms": n1, "lost_1ms_ms": s1 / 1e6,
                  "max_ms": mx / 1e6, "seconds": float(sys.argv[1])}))
"""


def stall_probe(args, seconds):
    """Runs the stall probe on one server CPU and the generator CPU at once (both busy, as in a run)."""
    cpus = {"server": args.server_cpus.split(",")[0].split("-")[0], "generator": args.gen_cpus}
    procs = {k: subprocess.Popen(["taskset", "-c", c, sys.executable, "-c", STALL_PROBE, str(seconds)],
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
             for k, c in cpus.items()}
    out = {}
    for k, p in procs.items():
        try:
            text, _ = p.communicate(timeout=seconds + 30)
            out[k] = {"cpu": cpus[k], **json.loads(text)}
        except (subprocess.TimeoutExpired, ValueError):
            stop_group(p, bound=2)
    for k, v in out.items():
        log(f"stall probe, {k} CPU {v['cpu']}: {v['gaps_1ms']} gaps >= 1 ms ({v['lost_1ms_ms']:.1f} ms), "
            f"{v['gaps_0.2ms']} >= 0.2 ms ({v['lost_0.2ms_ms']:.1f} ms), longest {v['max_ms']:.1f} ms in {seconds} s")
    return out


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def soak(args, r, server, url, rate):
    """kis-loadgen at a constant rate for --soak seconds; RSS sampled every 5 s from /proc."""
    seconds = args.soak
    out = os.path.join(r.logdir, "kl-soak.json")
    argv = [args.loadgen, "--url", url, "--method", "GET", "--pattern", "constant", "--rate", str(rate),
            "--connections", str(args.open_connections), "--busy-poll",
            "--duration", f"{seconds}s", "--quiet", "--json", out]
    r.commands.write(f"soak: {' '.join(argv)}\n")
    log(f"soak: {seconds} s at {rate} req/s, RSS every 5 s")
    samples = []
    with open(os.path.join(r.logdir, "soak.log"), "w") as f:
        # taskset execs the generator, so the pid is kis-loadgen's own.
        p = subprocess.Popen(["taskset", "-c", args.gen_cpus] + argv, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        t0 = time.monotonic()
        try:
            while p.poll() is None and time.monotonic() - t0 < seconds + 60:
                v = rss_mb(p.pid)
                if v is not None:
                    samples.append((round(time.monotonic() - t0, 1), round(v, 2)))
                time.sleep(5)
        finally:
            stop_group(p, bound=10)
    with open(os.path.join(r.out_dir, "soak_rss.csv"), "w") as f:
        f.write("t_s,rss_mb\n" + "".join(f"{t},{v}\n" for t, v in samples))
    # Growth is judged after a 10 s warm-up (buffers, histograms and connections settle).
    steady = [v for t, v in samples if t >= 10]
    rep = loadgen_report(out)
    r.soak = {
        "rate": rate, "seconds": seconds, "samples": len(samples), "connections": args.open_connections,
        "rss_first_mb": steady[0] if steady else None, "rss_last_mb": steady[-1] if steady else None,
        "rss_max_mb": max(steady) if steady else None,
        "growth_pct": 100.0 * (steady[-1] - steady[0]) / steady[0] if len(steady) > 1 else None,
        "achieved_rps": rep.get("achieved_rps"), "send_lag_p99_ms": rep.get("send_lag_p99_ms"),
    }


def scenarios(args, r, workdir, loadgen):
    """Every scenario of issue 3's Performance section; peers first, kis-loadgen last."""
    D = args.duration
    oha = os.path.join(BENCH, "bin", "oha")
    locust = os.path.join(BENCH, "bin", "locust")
    perf = os.path.join(BENCH, "bin", "perf_analyzer")
    lua = os.path.join(HERE, "post.lua")
    kl_common = ["--duration", f"{D}s", "--quiet"]

    def want(name):
        return not args.only or name in args.only

    def kl(scenario, argv, server, model=None, extra=None, tool="kis-loadgen"):
        if not loadgen:
            log(f"{scenario}: kis-loadgen skipped ({args.loadgen} not found; build it with cargo build --release -p kis-loadgen)")
            return None
        out = os.path.join(r.logdir, f"kl-{scenario}-{r.seq + 1}.json")
        row = r.run(scenario, tool, [args.loadgen] + argv + kl_common + ["--json", out], server, model, extra=extra)
        rep = loadgen_report(out)
        for k in ("intended_rps", "achieved_rps", "send_lag_p99_ms", "gen_gap_ms", "overrun_sends", "overrun_s"):
            if rep.get(k) is not None:
                row[k] = rep[k]
        return row

    closed = ["--method", "GET", "--users", str(USERS), "--wait", "0s"]

    def ceiling_run(ng, url):
        """kis-loadgen's closed-loop rate against nginx now (64 users, no wait): the open loop's 100 %."""
        row = kl("ceiling", ["--url", url] + closed, ng)
        return row["server_rps"] if row and ok(row["server_rps"]) and row["server_rps"] > 0 else None

    ceiling = None
    if want("nginx-get") or want("open-loop") or args.soak:
        ng = Nginx(workdir, args.server_cpus, args.server_workers)
        try:
            url = ng.url + "/file"
            if want("nginx-get"):
                for _ in range(args.repeat):
                    r.run("nginx-get", "wrk", ["wrk", "-t1", f"-c{USERS}", f"-d{D}s", url], ng)
                    r.run("nginx-get", "oha", [oha, "-z", f"{D}s", "-c", str(USERS), "--no-tui", url], ng)
                    r.run("nginx-get", "locust", [locust, "-f", os.path.join(HERE, "locustfile.py"), "--headless",
                          "-u", str(USERS), "-r", str(USERS), "-t", f"{D}s", "-H", ng.url, "--only-summary",
                          "--loglevel", "WARNING"], ng, env={"BENCH_PATH": "/file", "BENCH_METHOD": "GET"})
                    row = kl("nginx-get", ["--url", url] + closed + ["--metrics-addr", f"127.0.0.1:{free_port()}"], ng)
                    if row and ok(row["server_rps"]):
                        ceiling = row["server_rps"]
            if want("open-loop"):
                r.stalls = stall_probe(args, STALL_SECONDS)
                oc = str(args.open_connections)

                def open_runs(rate, extra):
                    row = r.run("open-loop", "oha", [oha, "-q", str(rate), "-z", f"{D}s", "-c", oc, "--no-tui",
                                                     "--latency-correction", url], ng, extra=dict(extra))
                    row["achieved_rps"] = row["server_rps"]
                    ol = ["--url", url, "--method", "GET", "--pattern", "constant", "--rate", str(rate),
                          "--connections", oc]
                    kl("open-loop", ol, ng, extra=dict(extra))
                    kl("open-loop", ol + ["--busy-poll"], ng, extra=dict(extra), tool="kis-loadgen --busy-poll")

                for _ in range(args.repeat):
                    open_runs(2000.0, {"intended_rps": 2000.0})
                if loadgen:
                    # The server's speed drifts with the host's other tenants (nginx's cost per request
                    # rose by 30 % within minutes here), so each 80 % run takes its 100 % from a
                    # closed-loop run just before it rather than from one measured minutes earlier.
                    for _ in range(args.repeat):
                        c = ceiling_run(ng, url)
                        if c:
                            ceiling = c
                            open_runs(round(0.8 * c), {"intended_rps": round(0.8 * c), "ceiling_rps": c})
                else:
                    log("open-loop: no kis-loadgen, so no closed-loop ceiling; only 2000 req/s")
            if args.soak and loadgen:
                if not ceiling:
                    ceiling = ceiling_run(ng, url)
                soak(args, r, ng, url, round(0.8 * ceiling) if ceiling else 2000)
        finally:
            ng.stop()

    if want("identity-json") or want("image-binary"):
        tr = Triton(workdir, args.server_cpus)
        try:
            if want("identity-json"):
                data = [round(0.5 * i, 1) for i in range(IDENTITY_LEN)]
                body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, IDENTITY_LEN], "datatype": "FP32",
                                               "data": data}]}).encode()
                bf = os.path.join(workdir, "identity.json")
                with open(bf, "wb") as f:
                    f.write(body)
                url = tr.url + "/v2/models/identity/infer"
                for _ in range(args.repeat):
                    r.run("identity-json", "wrk", ["wrk", "-t1", f"-c{USERS}", f"-d{D}s", "-s", lua, url], tr,
                          "identity", env={"BODY_FILE": bf, "CONTENT_TYPE": "application/json"})
                    r.run("identity-json", "oha", [oha, "-z", f"{D}s", "-c", str(USERS), "--no-tui", "-m", "POST",
                          "-D", bf, "-T", "application/json", url], tr, "identity")
                    # perf_analyzer stops on its own windows, not a duration: 3 windows of D/3 each.
                    r.run("identity-json", "perf_analyzer", [perf, "-m", "identity", "-u", f"127.0.0.1:{tr.port}",
                          "-i", "http", "--concurrency-range", str(USERS), "--shape", f"INPUT0:{IDENTITY_LEN}",
                          "--input-tensor-format", "json", "-p", str(int(D * 1000 / 3)), "--max-trials", "3",
                          "--stability-percentage", "100"], tr, "identity")
                    kl("identity-json", ["--url", tr.url, "--model", "identity", "--json-body", "--shape",
                                         f"INPUT0:1,{IDENTITY_LEN}", "--users", str(USERS), "--wait", "0s"],
                       tr, "identity")
            if want("image-binary"):
                bf, hl = image_body(workdir)
                hl = str(hl)
                url = tr.url + "/v2/models/image/infer"
                for _ in range(args.repeat):
                    r.run("image-binary", "wrk", ["wrk", "-t1", f"-c{USERS}", f"-d{D}s", "-s", lua, url], tr, "image",
                          env={"BODY_FILE": bf, "CONTENT_TYPE": "application/octet-stream", "HEADER_LEN": hl})
                    r.run("image-binary", "oha", [oha, "-z", f"{D}s", "-c", str(USERS), "--no-tui", "-m", "POST",
                          "-D", bf, "-T", "application/octet-stream", "-H", f"Inference-Header-Content-Length: {hl}",
                          url], tr, "image")
                    kl("image-binary", ["--url", tr.url, "--model", "image", "--users", str(USERS), "--wait", "0s"],
                       tr, "image")
        finally:
            tr.stop()


def ok(x):
    """A usable number (not None, not NaN)."""
    return isinstance(x, (int, float)) and x == x


def fmt(x, nd=1):
    if x is None or x == "" or (isinstance(x, float) and x != x):
        return "n/a"
    if isinstance(x, (int, float)):
        return f"{x:,.{nd}f}"
    return str(x)


def version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or "version unknown"


def server_us(row):
    """The server's CPU time per request it counted, in µs (what an open loop costs the server)."""
    try:
        cpu = float(row["server_cpu_pct"]) * float(row["wall_s"]) / 100.0
        return 1e6 * cpu / int(row["server_requests"]) if int(row["server_requests"]) > 0 else None
    except (TypeError, ValueError):
        return None


def summarise(rows, args, loadgen, out_dir, soak_result=None, stalls=None):
    """summary.md: per scenario, the median req/CPU-s of each tool and the ratio kis-loadgen/peer."""
    lines = [f"# kis-loadgen peer benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             "",
             f"Host `{socket.gethostname()}`, {os.cpu_count()} CPUs; server on CPUs {args.server_cpus}, generator on "
             f"CPUs {args.gen_cpus}; {args.duration} s per run, {args.repeat} run(s) per tool (median shown); "
             f"{USERS} connections/users closed loop, {args.open_connections} connections open loop. "
             f"Command: `{' '.join(sys.argv)}`.",
             ("Guest halt polling: " + (f"{args.halt_poll_us} µs during the run (`--halt-poll-us`; the host's "
              "setting was restored after)." if args.halt_poll_us else "left as the host has it.")),
             "kis-loadgen: " + (f"{args.loadgen} ({version(args.loadgen)})" if loadgen
                                else f"SKIPPED ({args.loadgen} not found)"),
             "",
             "req/CPU-s = server-counted requests / generator user+sys CPU seconds (whole process tree).",
             ""]
    medians = {}
    for sc in ["nginx-get", "identity-json", "image-binary"]:
        tools = [t for t in dict.fromkeys(r["tool"] for r in rows if r["scenario"] == sc)]
        if not tools:
            continue
        lines += [f"## {sc}", "", "| tool | req/CPU-s median (min–max) | server req/s | gen CPU-s | server CPU % | gen max RSS MB | kis-loadgen / tool | target |",
                  "|---|---|---|---|---|---|---|---|"]
        for t in tools:
            rs = [r for r in rows if r["scenario"] == sc and r["tool"] == t]
            good = [r["req_per_cpu_s"] for r in rs if ok(r["req_per_cpu_s"])]
            med = statistics.median(good) if good else float("nan")
            medians[(sc, t)] = (med, rs, good)
        kl_med = medians.get((sc, "kis-loadgen"), (None,))[0]
        for t in tools:
            med, rs, good = medians[(sc, t)]
            ratio = kl_med / med if ok(kl_med) and ok(med) and med > 0 and t != "kis-loadgen" else None
            target = TARGETS.get((sc, t))
            verdict = ""
            if target:
                verdict = f"≥ {target:g}×" + (f" {'PASS' if ratio >= target else 'FAIL'}" if ratio else "")
            exits = sorted({str(r["exit"]) for r in rs if r["exit"] != 0})
            name = t + (f" (exit {', '.join(exits)})" if exits else "")
            shown = fmt(ratio, 2) + "×" if ratio else ("–" if t == "kis-loadgen" else "n/a")
            spread = f" ({fmt(min(good), 0)}–{fmt(max(good), 0)})" if len(good) > 1 else ""
            lines.append(
                f"| {name} | {fmt(med)}{spread} | {fmt(statistics.median(r['server_rps'] for r in rs))} | "
                f"{fmt(statistics.median(r['gen_user_s'] + r['gen_sys_s'] for r in rs), 2)} | "
                f"{fmt(statistics.median(r['server_cpu_pct'] for r in rs))} | "
                f"{fmt(max(r['gen_max_rss_mb'] for r in rs))} | {shown} | {verdict} |")
        lines.append("")
    ol = [r for r in rows if r["scenario"] == "open-loop"]

    def overrun(r):
        """kis-loadgen's sends after the schedule's end and how long they went on ("none", "n/a")."""
        n = r.get("overrun_sends")
        if n in ("", None):
            return "n/a"
        if int(float(n)) == 0:
            return "none"
        return f"{int(float(n))} sends, {fmt(r.get('overrun_s'), 2)} s"

    if ol:
        lines += ["## open-loop (nginx GET)", "",
                  "| tool | intended req/s | ceiling req/s | achieved req/s | achieved / intended | overrun | "
                  "send lag p99 ms | generator gaps ms | req/CPU-s | gen max RSS MB | server CPU % | server CPU µs/req |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in ol:
            ach = r.get("achieved_rps")
            ach = ach if ach not in ("", None) else None
            ratio = (float(ach) / float(r["intended_rps"])) if ach and r["intended_rps"] else None
            name = r["tool"] + (f" (exit {r['exit']})" if r["exit"] != 0 else "")
            lines.append(f"| {name} | {fmt(r['intended_rps'], 0)} | {fmt(r.get('ceiling_rps') or None, 0)} | {fmt(ach)} | "
                         f"{fmt(100 * ratio, 3) + ' %' if ratio else 'n/a'} | {overrun(r)} | "
                         f"{fmt(r['send_lag_p99_ms'], 3)} | "
                         f"{fmt(r.get('gen_gap_ms'), 1)} | "
                         f"{fmt(r['req_per_cpu_s'])} | {fmt(r['gen_max_rss_mb'])} | {fmt(r['server_cpu_pct'])} | "
                         f"{fmt(server_us(r))} |")
        lines += ["", "| tool | intended req/s | runs | send lag p99 ms median (min–max) | worst achieved / intended |",
                  "|---|---|---|---|---|"]
        def level(r):
            return "80 % of ceiling" if r.get("ceiling_rps") else fmt(r["intended_rps"], 0)

        for key in dict.fromkeys((r["tool"], level(r)) for r in ol):
            rs = [r for r in ol if (r["tool"], level(r)) == key]
            lags = [float(r["send_lag_p99_ms"]) for r in rs if r.get("send_lag_p99_ms") not in ("", None)]
            ratios = [float(r["achieved_rps"]) / float(r["intended_rps"]) for r in rs
                      if r.get("achieved_rps") not in ("", None) and r["intended_rps"]]
            lag = (f"{fmt(statistics.median(lags), 3)} ({fmt(min(lags), 3)}–{fmt(max(lags), 3)})"
                   if lags else "n/a")
            worst = f"{fmt(100 * min(ratios), 3)} %" if ratios else "n/a"
            lines.append(f"| {key[0]} | {key[1]} | {len(rs)} | {lag} | {worst} |")
        lines += ["", "Targets (kis-loadgen): achieved (sends by the schedule's end) within 0.1 % of intended, no overrun, send lag p99 ≤ 0.2 ms, RSS ≤ 64 MB. "
                  "oha's achieved rate is server-counted requests / duration. Each 80 % run's ceiling is a "
                  "kis-loadgen closed-loop run (64 users, no wait) just before it; in those runs the server "
                  "spent " + (", ".join(f"{fmt(server_us(r))}" for r in rows if r["scenario"] == "ceiling") or "n/a")
                  + " µs of CPU per request (the open-loop rows' last column is the same measure). Generator "
                  "gaps (--busy-poll runs): milliseconds in all that kis-loadgen's dispatcher went unrun in "
                  "stretches of 1 ms or more; sends due in them lag whatever the server does.", ""]
    if stalls:
        lines += ["## host stalls (before the open loop)", "",
                  f"A spinning clock-reading loop on each CPU at once for {STALL_SECONDS} s; a gap between two "
                  "reads is time the loop did not run (another task or an interrupt of the guest, or the "
                  "hypervisor running something else: the guest's steal counter stays 0 here). Arrivals due "
                  "in such gaps are sent late by any generator on that CPU: where the gaps of 0.2 ms or more "
                  "add up to over 1 % of the time, no send-lag p99 of 0.2 ms is possible.", "",
                  "| CPU | gaps ≥ 1 ms | time in them ms | gaps ≥ 0.2 ms | time in them ms | longest ms |",
                  "|---|---|---|---|---|---|"]
        for k, v in stalls.items():
            lines.append(f"| {k} ({v['cpu']}) | {v['gaps_1ms']} | {fmt(v['lost_1ms_ms'])} | {v['gaps_0.2ms']} | "
                         f"{fmt(v['lost_0.2ms_ms'])} | {fmt(v['max_ms'], 2)} |")
        lines.append("")
    if soak_result:
        sr = soak_result
        lines += ["## memory soak (kis-loadgen, nginx GET, open loop)", "",
                  f"{sr['seconds']} s at {sr['rate']} req/s (`--busy-poll`, {sr['connections']} connections), RSS sampled every 5 s (soak_rss.csv): after 10 s "
                  f"{fmt(sr['rss_first_mb'])} MB, at the end {fmt(sr['rss_last_mb'])} MB, max {fmt(sr['rss_max_mb'])} MB, "
                  f"growth {fmt(sr['growth_pct'], 2)} %; achieved {fmt(sr['achieved_rps'])} req/s, send lag p99 "
                  f"{fmt(sr['send_lag_p99_ms'], 3)} ms. Target: ≤ 64 MB and flat within ±5 %.", ""]
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(medians, os.path.join(out_dir, "reqs_per_cpu.svg"))
    return "\n".join(lines)


def plot(medians, path):
    """A plain SVG bar chart of median req/CPU-s per scenario and tool (log-free, one row per bar)."""
    items = [(f"{sc} / {t}", v[0]) for (sc, t), v in medians.items() if v[0] == v[0]]
    if not items:
        return
    top = max(v for _, v in items) or 1
    h = 24 * len(items) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{h}" font-family="sans-serif" font-size="12">',
           '<text x="10" y="18" font-weight="bold">requests per generator CPU-second (median)</text>']
    for i, (label, v) in enumerate(items):
        y = 30 + 24 * i
        w = 400 * v / top
        colour = "#d9534f" if label.endswith("kis-loadgen") else "#5b8def"
        out.append(f'<text x="10" y="{y + 14}">{label}</text>')
        out.append(f'<rect x="230" y="{y}" width="{w:.1f}" height="18" fill="{colour}"/>')
        out.append(f'<text x="{235 + w:.1f}" y="{y + 14}">{v:,.0f}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    cpus = sorted(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (3 s each) to check that every peer works")
    ap.add_argument("--duration", type=int, help="seconds per generator run (default 10, or 3 with --quick)")
    ap.add_argument("--repeat", type=int, help="runs per tool, median reported (default 3, or 1 with --quick)")
    ap.add_argument("--only", action="append", choices=["nginx-get", "identity-json", "image-binary", "open-loop"],
                    help="run only this scenario (repeatable)")
    ap.add_argument("--loadgen", default=os.environ.get("KIS_LOADGEN", os.path.join(ROOT, "target/release/kis-loadgen")),
                    help="kis-loadgen binary ($KIS_LOADGEN, default target/release/kis-loadgen)")
    ap.add_argument("--server-cpus", default=",".join(map(str, cpus[:-1])) if len(cpus) > 1 else str(cpus[0]))
    ap.add_argument("--gen-cpus", default=str(cpus[-1]))
    ap.add_argument("--server-workers", type=int, default=max(1, len(cpus) - 1), help="nginx worker processes")
    ap.add_argument("--soak", type=int, default=0, metavar="SECONDS",
                    help="also run kis-loadgen open loop at 80%% of its ceiling this long, sampling RSS (issue 3: 600)")
    ap.add_argument("--open-connections", type=int, default=1024, metavar="N",
                    help="connections of the open-loop and soak runs, oha's and kis-loadgen's (default 1024: a "
                         "server pause of N / rate seconds, 25 ms at 40k req/s, fills them)")
    ap.add_argument("--halt-poll-us", type=int, default=0, metavar="US",
                    help="guest halt polling for the run (KVM guests with the haltpoll cpuidle driver; root): idle "
                         "vCPUs poll this long before halting, restored at the end (default 0: leave it)")
    ap.add_argument("--out", help="result directory (default loadgen/bench/runs/<date>-<host>[-quick])")
    args = ap.parse_args()
    args.duration = args.duration or (3 if args.quick else 10)
    args.repeat = args.repeat or (1 if args.quick else 3)
    if args.duration <= 0 or args.duration > 600 or args.repeat < 1 or args.repeat > 10:
        ap.error("--duration must be in (0, 600] s and --repeat in [1, 10]")
    if args.soak < 0 or args.soak > 3600:
        ap.error("--soak must be in [0, 3600] s")
    if args.open_connections < 1 or args.open_connections > 4000:
        ap.error("--open-connections must be in [1, 4000] (the bench nginx takes 4096)")
    if args.halt_poll_us < 0 or args.halt_poll_us > 10000:
        ap.error("--halt-poll-us must be in [0, 10000]")
    if args.halt_poll_us and halt_poll_problem():
        ap.error(halt_poll_problem())
    if len(cpus) < 2:
        log("only one CPU: server and generator share it, so the figures are not comparable across hosts")

    missing = [p for p in [os.path.join(BENCH, "bin", x) for x in ("oha", "locust", "perf_analyzer")]
               + ["/usr/bin/wrk", "/usr/sbin/nginx", "/usr/bin/time"] if not os.path.exists(p)]
    if missing:
        print(f"run.py: peers missing ({', '.join(missing)}): run scripts/bench-setup.sh", file=sys.stderr)
        return 1
    loadgen = os.path.exists(args.loadgen)
    if not loadgen:
        log(f"kis-loadgen not found at {args.loadgen}: running the peers only (kis-loadgen skipped)")

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out_dir = args.out or os.path.join(HERE, "runs", f"{date}-{socket.gethostname()}" + ("-quick" if args.quick else ""))
    os.makedirs(out_dir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="kis-bench-")
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir)
    log(f"results in {out_dir}; logs and server files in {workdir}")

    # SIGTERM behaves like Ctrl-C: servers are stopped and finished rows are kept.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    fields = ["scenario", "tool", "exit", "duration_s", "wall_s", "server_requests", "gen_user_s", "gen_sys_s",
              "req_per_cpu_s", "server_rps", "server_cpu_pct", "gen_max_rss_mb", "intended_rps", "achieved_rps",
              "send_lag_p99_ms", "gen_gap_ms", "overrun_sends", "overrun_s", "ceiling_rps", "log"]
    with open(os.path.join(out_dir, "raw.csv"), "w", newline="") as raw_file, \
            open(os.path.join(out_dir, "commands.txt"), "w") as commands:
        writer = csv.DictWriter(raw_file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        r = Runner(args, logdir, writer, raw_file, commands)
        r.out_dir = out_dir
        interrupted = False
        try:
            with HaltPoll(args.halt_poll_us):
                scenarios(args, r, workdir, loadgen)
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: writing what finished")
        except RuntimeError as e:
            print(f"run.py: {e}", file=sys.stderr)
            interrupted = True
    # raw.csv is written row by row as runs finish; rewrite it with kis-loadgen's JSON fields filled in.
    with open(os.path.join(out_dir, "raw.csv"), "w", newline="") as raw_file:
        writer = csv.DictWriter(raw_file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in r.rows:
            writer.writerow({**row, "log": os.path.basename(row["log"])})
    print(summarise(r.rows, args, loadgen, out_dir, r.soak, r.stalls))
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
