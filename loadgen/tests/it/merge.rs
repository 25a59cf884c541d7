//! Shards as separate processes against one server, merged: the counts of one process, the
//! percentiles of the union of the shards' histograms, and one-line refusals.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::common::{Behavior, bin, constant_get, start, tempdir};

const SHARDS: u32 = 3;

/// The flags every shard (and the single process) runs with.
fn flags(url: &str) -> Vec<String> {
    let mut v = constant_get(url, "150", "2s");
    v.extend(
        [
            "--seed",
            "3",
            "--run-id",
            "it-merge",
            "--arrivals",
            "poisson",
            "--quiet",
        ]
        .map(String::from),
    );
    v
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Polls (bounded) until the server has counted `n` requests.
fn wait_count(server: &crate::common::Server, n: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let got = server.requests.load(Ordering::SeqCst);
        if got >= n || Instant::now() > until {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the three shards at once; returns the directory of their reports and logs.
fn run_shards(url: &str, name: &str) -> PathBuf {
    let dir = tempdir(name);
    let children: Vec<_> = (0..SHARDS)
        .map(|k| {
            bin()
                .args(flags(url))
                .args(["--shard", &format!("{k}/{SHARDS}")])
                .arg("--json")
                .arg(dir.join(format!("shard-{k}.json")))
                .arg("--hdr-log")
                .arg(dir.join(format!("shard-{k}.hlog")))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    dir
}

/// Sums the interval histograms of `tag` over the given logs.
fn union(logs: &[PathBuf], tag: &str) -> Histogram<u64> {
    let mut sum = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for p in logs {
        let bytes = std::fs::read(p).unwrap();
        kis_loadgen::merge::for_each_interval(&bytes, |t, _, h| {
            if t == tag {
                sum.add(&h).unwrap();
            }
            Ok(())
        })
        .unwrap();
    }
    sum
}

fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

#[test]
fn shard_processes_merge_into_one_run() {
    let server = start(Behavior::Fast);
    let url = server.url();
    // One process: the reference count.
    let single_dir = tempdir("merge-single");
    let single_json = single_dir.join("single.json");
    let st = bin()
        .args(flags(&url))
        .arg("--json")
        .arg(&single_json)
        .status()
        .unwrap();
    assert!(st.success());
    let single = read(&single_json);
    let single_sent = single["totals"]["requests"].as_u64().unwrap();
    let single_scheduled = single["totals"]["scheduled"].as_u64().unwrap();
    assert_eq!(wait_count(&server, single_sent), single_sent);
    // Three shard processes at once.
    let dir = run_shards(&url, "merge-shards");
    let merged_json = single_dir.join("merged.json");
    let merged_log = single_dir.join("merged.hlog");
    let out = bin()
        .args(["merge", dir.to_str().unwrap(), "--quiet", "--json"])
        .arg(&merged_json)
        .arg("--hdr-log")
        .arg(&merged_log)
        .arg("--csv")
        .arg(single_dir.join("merged"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = read(&merged_json);
    // The same seeded schedule: exactly the single process's arrivals, all sent.
    assert_eq!(
        merged["totals"]["scheduled"].as_u64(),
        Some(single_scheduled)
    );
    assert_eq!(merged["totals"]["requests"].as_u64(), Some(single_sent));
    assert_eq!(merged["totals"]["errors"].as_u64(), Some(0));
    // The server saw both runs in full.
    assert_eq!(wait_count(&server, 2 * single_sent), 2 * single_sent);
    // Percentiles of the union of the shards' histograms, exactly.
    let logs: Vec<PathBuf> = (0..SHARDS)
        .map(|k| dir.join(format!("shard-{k}.hlog")))
        .collect();
    let u = union(&logs, "corrected");
    assert_eq!(u.len(), single_sent);
    let lat = &merged["latency"]["corrected"];
    for (q, key) in [(0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms")] {
        assert_eq!(lat[key].as_f64(), Some(ms(u.value_at_quantile(q))), "{key}");
    }
    // The merged log holds the same union.
    let m = union(std::slice::from_ref(&merged_log), "corrected");
    assert_eq!(m, u);
    assert!(single_dir.join("merged_stats.csv").is_file());
    // Windows: summed sends equal the total.
    let sent: u64 = merged["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, single_sent);
}

/// Runs merge on `inputs`; returns (exit code, stderr).
fn merge_fails(inputs: &[&Path]) -> (i32, String) {
    let out = bin()
        .arg("merge")
        .args(inputs)
        .arg("--quiet")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(inputs: &[&Path], needle: &str) {
    let (code, err) = merge_fails(inputs);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(needle), "{err:?} should say {needle:?}");
}

/// A named change to a shard report and what the refusal must say.
type Edit = (&'static str, fn(&mut Value), &'static str);

#[test]
fn merge_refuses_what_is_not_one_run() {
    let server = start(Behavior::Fast);
    let dir = run_shards(&server.url(), "merge-refuse");
    let shard = |k: u32| dir.join(format!("shard-{k}.json"));
    // Missing shards are named.
    assert_refused(&[&shard(0), &shard(2)], "missing shards 1/3");
    // The same segment twice.
    assert_refused(&[&shard(0), &shard(0), &shard(1), &shard(2)], "overlapping");
    // Changed copies of shard 1 beside its log: another seed, run, shape, shard count.
    let edits: [Edit; 4] = [
        ("seed", |v| v["config"]["seed"] = 99.into(), "seed"),
        (
            "run",
            |v| v["config"]["run_id"] = "other".into(),
            "run it-merge vs other",
        ),
        (
            "shape",
            |v| v["config"]["load"]["shape"]["rate"] = 151.0.into(),
            "load/shape",
        ),
        (
            "count",
            |v| v["config"]["shard"]["count"] = 4.into(),
            "shard count",
        ),
    ];
    for (name, edit, needle) in edits {
        let mut v = read(&shard(1));
        edit(&mut v);
        let p = dir.join(format!("edited-{name}.json.x"));
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        assert_refused(&[&shard(0), &p, &shard(2)], needle);
    }
    // A report without its log.
    let lonely = tempdir("merge-lonely");
    std::fs::copy(shard(0), lonely.join("shard-0.json")).unwrap();
    std::fs::remove_file(dir.join("shard-0.hlog")).unwrap();
    assert_refused(&[&lonely.join("shard-0.json")], "interval log");
    // Allowed missing: merged, with the gap said.
    let out = bin()
        .args(["merge", "--allow-missing", "--quiet", "--json"])
        .arg(dir.join("partial.out"))
        .arg(shard(1))
        .arg(shard(2))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = read(&dir.join("partial.out"));
    let w = p["generator"]["warnings"].to_string();
    assert!(w.contains("without shards 0/3"), "{w}");
}

/// The merge done the plain way, all in memory: every shard's interval log decoded whole by
/// hdrhistogram and summed per interval, every report's rows summed row by row in shard order.
struct Plain {
    /// Interval index -> summed (corrected, service, lag).
    intervals: std::collections::BTreeMap<u64, [Histogram<u64>; 3]>,
    /// Each shard's own send-lag histogram.
    own_lag: Vec<Histogram<u64>>,
    /// Each shard's window rows.
    rows: Vec<Vec<Value>>,
}

fn plain_merge(dir: &Path, shards: u32) -> Plain {
    let new = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    let mut p = Plain {
        intervals: Default::default(),
        own_lag: Vec::new(),
        rows: Vec::new(),
    };
    for k in 0..shards {
        let bytes = std::fs::read(dir.join(format!("shard-{k}.hlog"))).unwrap();
        let mut own = new();
        kis_loadgen::merge::for_each_interval(&bytes, |tag, start, h| {
            let idx = start.as_secs_f64().round() as u64;
            let sums = p
                .intervals
                .entry(idx)
                .or_insert_with(|| [new(), new(), new()]);
            let at = ["corrected", "service", "lag"]
                .iter()
                .position(|t| *t == tag);
            sums[at.unwrap()].add(&h).unwrap();
            if tag == "lag" {
                own.add(&h).unwrap();
            }
            Ok(())
        })
        .unwrap();
        p.own_lag.push(own);
        let report = read(&dir.join(format!("shard-{k}.json")));
        p.rows.push(report["windows"].as_array().unwrap().clone());
    }
    p
}

/// `v` written to JSON and read back, as serde_json does it in this build (its default float
/// parsing may land one unit in the last place off: `float_roundtrip` is not on for kis-loadgen).
fn json_trip(v: f64) -> f64 {
    serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap()
}

/// `v` as the merged JSON report holds it, read back: written to JSON `trips` times (the rows
/// twice: through the row spool, then into the report), each time read back as in
/// [`json_trip`].
fn json<T: serde::Serialize>(v: T, trips: usize) -> Value {
    let mut v = serde_json::to_value(v).unwrap();
    for _ in 0..trips {
        v = serde_json::from_str(&v.to_string()).unwrap();
    }
    v
}

/// Streaming and on worker threads (1, 2 and 3 of them), merge gives what the plain merge
/// gives: the same histogram per interval and over the run, the same per-shard send lag, and
/// the same window rows (counts, rates summed in shard order, percentiles of their interval).
/// One shard's report is cut short (fewer rows than intervals) and another's log (fewer
/// intervals than rows).
#[test]
fn streamed_merge_equals_the_plain_merge() {
    let dir = tempdir("merge-plain");
    let shards = 4;
    kis_loadgen::merge::fixture::write_shards(&dir, shards, 12, 2000.0).unwrap();
    let short = dir.join("shard-1.json");
    let mut r = read(&short);
    let rows = r["windows"].as_array_mut().unwrap();
    rows.truncate(rows.len() - 3);
    std::fs::write(&short, serde_json::to_string_pretty(&r).unwrap()).unwrap();
    let cut = dir.join("shard-2.hlog");
    let text = std::fs::read_to_string(&cut).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 6].join("\n") + "\n").unwrap();
    let plain = plain_merge(&dir, shards);
    let files = kis_loadgen::merge::report_files(std::slice::from_ref(&dir)).unwrap();
    let mut hlogs = Vec::new();
    for threads in [1, 2, 3] {
        let out = dir.with_extension(format!("out{threads}"));
        std::fs::create_dir_all(&out).unwrap();
        let outputs = kis_loadgen::config::Outputs {
            json: Some(out.join("merged.json")),
            hdr_log: Some(out.join("merged.hlog")),
            quiet: true,
            ..Default::default()
        };
        let m = kis_loadgen::merge::merge_with(&files, outputs, false, threads).unwrap();
        assert_eq!(m.intervals, plain.intervals.len() as u64, "{threads}");
        // Per interval, read back from the merged log.
        let bytes = std::fs::read(out.join("merged.hlog")).unwrap();
        let mut seen = 0;
        kis_loadgen::merge::for_each_interval(&bytes, |tag, start, h| {
            let idx = start.as_secs_f64().round() as u64;
            let at = ["corrected", "service", "lag"]
                .iter()
                .position(|t| *t == tag);
            assert!(
                h == plain.intervals[&idx][at.unwrap()],
                "{threads}: {tag} at {idx}"
            );
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 3 * plain.intervals.len());
        hlogs.push(bytes);
        // Over the run, and each shard's own send lag.
        let mut total = [0, 1, 2].map(|_| m.total.corrected.clone());
        total.iter_mut().for_each(|h| h.reset());
        for sums in plain.intervals.values() {
            for (t, h) in total.iter_mut().zip(sums) {
                t.add(h).unwrap();
            }
        }
        assert!(m.total.corrected == total[0] && m.total.service == total[1]);
        assert!(m.total.lag == total[2]);
        let merged = read(&out.join("merged.json"));
        let pct = kis_loadgen::record::Percentiles::of;
        assert_eq!(merged["latency"]["corrected"], json(pct(&total[0]), 1));
        assert_eq!(merged["latency"]["send_lag"], json(pct(&total[2]), 1));
        for (row, own) in m.shards.iter().zip(&plain.own_lag) {
            assert_eq!(row.lag_p99_ms, pct(own).p99_ms, "{threads}");
            assert_eq!(row.lag_p50_ms, pct(own).p50_ms, "{threads}");
        }
        // Window rows.
        let got = merged["windows"].as_array().unwrap();
        assert_eq!(got.len(), 12, "the longest shard's rows");
        for (k, row) in got.iter().enumerate() {
            let of: Vec<&Value> = plain.rows.iter().filter_map(|r| r.get(k)).collect();
            let sum_u = |f: &str| of.iter().map(|r| r[f].as_u64().unwrap()).sum::<u64>();
            let sum_f = |f: &str| {
                of.iter().fold(None, |a: Option<f64>, r| {
                    Some(a.map_or(r[f].as_f64().unwrap(), |a| a + r[f].as_f64().unwrap()))
                })
            };
            for f in ["sent", "completed", "ok", "scheduled"] {
                assert_eq!(row[f].as_u64(), Some(sum_u(f)), "{threads}: row {k} {f}");
            }
            for f in ["intended_rps", "achieved_rps", "intended"] {
                // The merged rows pass through the report's row spool (JSON) on the way out.
                let want = sum_f(f).map(|v| json_trip(json_trip(v)));
                assert_eq!(row[f].as_f64(), want, "{threads}: row {k} {f}");
            }
            let sums = &plain.intervals[&(k as u64)];
            assert_eq!(
                row["corrected"],
                json(pct(&sums[0]), 2),
                "{threads}: row {k}"
            );
            assert_eq!(row["service"], json(pct(&sums[1]), 2), "{threads}: row {k}");
            assert_eq!(
                row["send_lag"],
                json(pct(&sums[2]), 2),
                "{threads}: row {k}"
            );
        }
    }
    assert!(
        hlogs.windows(2).all(|w| w[0] == w[1]),
        "merged logs differ by threads"
    );
}
