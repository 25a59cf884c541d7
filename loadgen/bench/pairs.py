"""Shared pieces of the side-by-side bench scripts (image.py, lowrate.py, merge.sh's summary,
shards.py): the dated run folder, a record of the machine, and the raw rows."""
import csv
import datetime
import os
import platform
import subprocess

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
