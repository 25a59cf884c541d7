#!/usr/bin/env python3
"""Issue 18 item 5: the 602 KB binary-tensor path, kis-loadgen next to wrk in one run.

Both send the same 602,112-byte FP32 tensor (KServe v2 binary extension) to the same real Triton
`image` model, 64 connections, closed loop, no think time; runs are interleaved (wrk, then each
kis-loadgen variant, --runs times, the order rotated each round so no tool always goes first).
kis-loadgen runs with `--send-path auto` (the start-up calibration picks write, sendfile or
splice; its report says which and what each cost) and, unless --paths says otherwise, with each
fixed way too. Reported per run and as medians:

    generator CPU seconds per request = (user + sys CPU of the generator) / server-counted requests

(server count: the delta of Triton's /v2/models/image/stats success count; CPU: /usr/bin/time),
and the ratio wrk / kis-loadgen of that cost (> 1: kis-loadgen is cheaper per request). Triton and
the generator are pinned to disjoint CPUs (default: the generator on the last CPU).

    python3 loadgen/bench/image.py --loadgen target/release/kis-loadgen            # ~4.5 min
    python3 loadgen/bench/image.py --loadgen ... --runs 1 --duration 2 --paths auto  # a check

Writes loadgen/bench/runs/<UTC date>-image[-N]/: summary.md, raw.csv, commands.txt, the machine
(machine.txt) and every generator's log and kis-loadgen's JSON reports. Needs wrk
(scripts/bench-setup.sh) and Triton (scripts/setup.sh triton).
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
from run import HERE, Triton, log  # noqa: E402  (the peer benchmark's pieces)
from pairs import common_args, image_body, runner, start, write_raw  # noqa: E402

USERS = 64
FIELDS = ["round", "scenario", "tool", "exit", "duration_s", "wall_s", "server_requests", "gen_user_s",
          "gen_sys_s", "req_per_cpu_s", "server_rps", "server_cpu_pct", "gen_max_rss_mb", "intended_rps",
          "achieved_rps", "send_lag_p99_ms", "ceiling_rps", "log", "cpu_us_per_req", "send_path",
          "send_path_how", "calibration"]


def send_path_of(report):
    try:
        with open(report) as f:
            sp = json.load(f).get("send_path") or {}
    except (OSError, ValueError):
        return {}
    return {"send_path": sp.get("path", ""), "send_path_how": sp.get("how", ""),
            "calibration": json.dumps(sp.get("cpu_us", {}))}


def summarise(rows, a, out):
    by = {}
    for r in rows:
        if r["exit"] == 0 and r["server_requests"] > 0:
            by.setdefault(r["tool"], []).append(r)
    med = {t: statistics.median(x["cpu_us_per_req"] for x in v) for t, v in by.items()}
    lines = [f"# 602 KB binary tensors: kis-loadgen vs wrk ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             "Generator CPU per server-counted request (user + sys, /usr/bin/time), Triton `image` model,",
             f"{USERS} connections closed loop, {a.duration} s per run, {a.runs} runs per tool interleaved.",
             f"Generator CPUs `{a.gen_cpus}`, Triton CPUs `{a.server_cpus}`. Machine: see machine.txt.", "",
             "| tool | runs | CPU µs / request (median) | min..max | req / CPU-s (median) | wrk / tool (cost ratio) |",
             "|---|---|---|---|---|---|"]
    wrk = med.get("wrk")
    for t, v in by.items():
        c = [x["cpu_us_per_req"] for x in v]
        ratio = f"{wrk / med[t]:.2f}x" if wrk and t != "wrk" else ""
        lines.append(f"| {t} | {len(v)} | {med[t]:.1f} | {min(c):.1f}..{max(c):.1f} | "
                     f"{statistics.median(x['req_per_cpu_s'] for x in v):.0f} | {ratio} |")
    # Per round: kis-loadgen (auto) against the wrk run next to it.
    pairs = []
    for rnd in sorted({r["round"] for r in rows}):
        w = [r for r in by.get("wrk", []) if r["round"] == rnd]
        k = [r for r in by.get("kis-loadgen auto", []) if r["round"] == rnd]
        if w and k:
            pairs.append(w[0]["cpu_us_per_req"] / k[0]["cpu_us_per_req"])
    lines += ["", "Per round, wrk's cost / kis-loadgen auto's: " + (", ".join(f"{p:.2f}" for p in pairs) or "n/a")]
    if pairs:
        lines.append(f"Median {statistics.median(pairs):.2f}x (target >= 1.0x: "
                     f"{'met' if statistics.median(pairs) >= 1.0 else 'missed'}).")
    auto = by.get("kis-loadgen auto", [])
    if auto:
        lines += ["", "What `--send-path auto` chose (calibration: CPU µs per request of each way, on loopback):", ""]
        for r in auto:
            lines.append(f"- round {r['round']}: {r['send_path']} ({r['send_path_how']}) {r['calibration']}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8, help="seconds per run")
    ap.add_argument("--paths", default="auto,write,sendfile,splice",
                    help="kis-loadgen --send-path values to run (auto first)")
    common_args(ap)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("image.py: wrk not found (scripts/bench-setup.sh installs it)")
    out = start("image.py", "image", a)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory() as work, open(os.path.join(out, "commands.txt"), "w") as commands:
        r = runner(out, a.gen_cpus, a.duration, commands, FIELDS)
        tr = Triton(work, a.server_cpus)
        try:
            bf, hl = image_body(work)
            url = tr.url + "/v2/models/image/infer"
            lua = os.path.join(HERE, "post.lua")
            wrk = ("wrk", ["wrk", "-t1", f"-c{USERS}", f"-d{a.duration}s", "-s", lua, url],
                   {"BODY_FILE": bf, "CONTENT_TYPE": "application/octet-stream", "HEADER_LEN": str(hl)})
            tools = [wrk] + [(f"kis-loadgen {p}", p, None) for p in a.paths.split(",") if p]
            for rnd in range(a.runs):
                k = rnd % len(tools)
                for name, what, env in tools[k:] + tools[:k]:
                    extra = {"round": rnd + 1}
                    if name == "wrk":
                        row = r.run("image-binary", name, what, tr, "image", env=env, extra=extra)
                    else:
                        rep = os.path.join(out, f"kl-{rnd + 1}-{what}.json")
                        argv = [a.loadgen, "--url", tr.url, "--model", "image", "--users", str(USERS), "--wait",
                                "0s", "--duration", f"{a.duration}s", "--send-path", what, "--quiet", "--json", rep]
                        row = r.run("image-binary", name, argv, tr, "image", extra=extra)
                        row.update(send_path_of(rep))
                    cpu = row["gen_user_s"] + row["gen_sys_s"]
                    row["cpu_us_per_req"] = round(1e6 * cpu / row["server_requests"], 2) if row["server_requests"] else float("nan")
        finally:
            tr.stop()
        write_raw(out, r.rows, FIELDS)
    summarise(r.rows, a, out)
    log(f"image.py: {time.monotonic() - t_start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
