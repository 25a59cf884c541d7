"""Shared pieces of the side-by-side bench scripts (image.py, lowrate.py, merge.sh's summary,
shards.py): the common flags, the dated run folder, a record of the machine, a generator runner
and the raw rows; and the 602 KB image request body (run.py's image scenario too)."""
import array
import csv
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def run_dir(name):
    """loadgen/bench/runs/<UTC date>-<name>, with -2, -3, ... if taken."""
    base = os.path.join(HERE, "runs", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-") + name)
    out, n = base, 1
    while os.path.exists(out):
        n += 1
        out = f"{base}-{n}"
    return out


def machine_info(out, loadgen=None):
    """machine.txt: when, where (kernel, CPUs, model), how busy, and which kis-loadgen."""
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "n/a"
    model = next((line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines()
                  if line.startswith("Model name")), "n/a")
    lines = [
        f"date_utc: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"host: {platform.node()}",
        f"kernel: {platform.release()}",
        f"cpus: {os.cpu_count()}",
        f"cpu_model: {model}",
        f"loadavg: {open('/proc/loadavg').read().strip()}",
        f"git: {sh('git', '-C', HERE, 'rev-parse', '--short', 'HEAD')}",
    ]
    if loadgen:
        lines.append(f"kis-loadgen: {loadgen} ({sh(loadgen, '--version')})")
    with open(os.path.join(out, "machine.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_raw(out, rows, fields):
    with open(os.path.join(out, "raw.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)


def common_args(ap):
    """--loadgen, --gen-cpus (default the last CPU), --server-cpus (the others), --out."""
    ncpu = os.cpu_count() or 1
    ap.add_argument("--loadgen", default=os.environ.get("KIS_LOADGEN", "target/release/kis-loadgen"))
    ap.add_argument("--gen-cpus", default=str(ncpu - 1))
    ap.add_argument("--server-cpus", default=f"0-{max(ncpu - 2, 0)}")
    ap.add_argument("--out")


def start(script, name, a):
    """Checks the kis-loadgen binary, makes the run folder (a.out or a dated one) with
    machine.txt; returns it."""
    if not os.access(a.loadgen, os.X_OK):
        sys.exit(f"{script}: {a.loadgen} is not an executable (cargo build --release -p kis-loadgen)")
    out = a.out or run_dir(name)
    os.makedirs(out, exist_ok=True)
    machine_info(out, a.loadgen)
    return out


def runner(out, gen_cpus, duration, commands, fields):
    """run.py's Runner (taskset + /usr/bin/time per generator, server-counted requests); its rows
    are written by write_raw once complete."""
    from run import Runner
    progress = io.StringIO()
    writer = csv.DictWriter(progress, fieldnames=fields, extrasaction="ignore")
    return Runner(types.SimpleNamespace(gen_cpus=gen_cpus, duration=duration), out, writer, progress, commands)


def image_body(workdir):
    """The 602,112-byte FP32 image tensor request body (KServe v2 binary extension: JSON header,
    then the tensor) written to workdir/image.bin, and the header's length."""
    header = json.dumps({"inputs": [{"name": "images", "shape": [1, 3, 224, 224], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 602112}}],
                         "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    bf = os.path.join(workdir, "image.bin")
    with open(bf, "wb") as f:
        f.write(header + array.array("f", ((i % 251) / 251.0 for i in range(3 * 224 * 224))).tobytes())
    return bf, len(header)
