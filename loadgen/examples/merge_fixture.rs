//! Synthetic shard results for timing `kis-loadgen merge` (issue 19: 100 shards' 10-minute logs
//! in under 2 s): `cargo run --release -p kis-loadgen --example merge_fixture -- DIR SHARDS
//! SECONDS RATE` writes SHARDS JSON reports and HDR interval logs (SECONDS 1 s intervals, each
//! shard RATE/SHARDS log-normal-ish latencies per second) into DIR; then
//! `/usr/bin/time -v target/release/kis-loadgen merge DIR --quiet --json DIR.merged.json`.
//! The files are what a run writes (same writer, identity comment), the values are made up.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use kis_loadgen::config::Target;
use kis_loadgen::record::{Counts, Hists};
use kis_loadgen::report::{Collected, Report, Request, WindowRow, Windows};
use kis_loadgen::shard::Shard;
use kis_traffic::{ArrivalKind, ShapeSpec};
use rand::{RngExt, SeedableRng};

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(a.first().map_or("merge-fixture", String::as_str)).to_path_buf();
    let shards: u32 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let secs: u64 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(600);
    let rate: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000.0);
    std::fs::create_dir_all(&dir)?;
    let per_s = (rate / f64::from(shards)).round() as u64;
    let start = SystemTime::now();
    for k in 0..shards {
        let mut cfg = kis_loadgen::Config::open_loop(
            Target::http("http://127.0.0.1:9/", "GET")?,
            ShapeSpec::Constant {
                rate,
                duration: secs as f64,
            },
            ArrivalKind::Poisson,
        )
        .with_shard(Shard::new(k, shards)?)
        .quiet();
        cfg.run_id = Some("fixture".into());
        cfg.outputs.hdr_log = Some(dir.join(format!("shard-{k}.hlog")));
        let mut rng = rand_pcg::Pcg64::seed_from_u64(u64::from(k));
        let mut file = BufWriter::new(std::fs::File::create(dir.join(format!("shard-{k}.hlog")))?);
        let mut ser = V2DeflateSerializer::new();
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(&kis_loadgen::merge::log_identity(&cfg))
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut file, &mut ser)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut rows = Vec::new();
        let mut total = Hists::default();
        for s in 0..secs {
            let mut h = Hists::default();
            for _ in 0..per_s {
                let us = (500.0 * (rng.random_range(0.0f64..3.0)).exp()) as u64;
                h.corrected.record(us)?;
                h.service.record(us * 9 / 10)?;
                h.lag.record(us / 20)?;
            }
            let at = Duration::from_secs(s);
            for (x, tag) in [
                (&h.corrected, "corrected"),
                (&h.service, "service"),
                (&h.lag, "lag"),
            ] {
                log.write_histogram(x, at, Duration::from_secs(1), Tag::new(tag))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            total.add(&h);
            rows.push(WindowRow {
                t_s: (s + 1) as f64,
                dt_s: 1.0,
                sent: per_s,
                completed: per_s,
                ok: per_s,
                scheduled: per_s,
                intended: per_s as f64,
                ..WindowRow::default()
            });
        }
        drop(log);
        file.flush()?;
        let n = per_s * secs;
        let counts = Counts {
            sent: n,
            completed: n,
            ok: n,
            ..Counts::default()
        };
        cfg.outputs.json = Some(dir.join(format!("shard-{k}.json")));
        let report = Report::from_collected(Collected {
            config: cfg.clone(),
            request: Request::default(),
            started_unix_s: 0.0,
            elapsed_s: secs as f64,
            last_send_s: secs as f64,
            duration_s: secs as f64,
            interrupted: false,
            hists: total,
            counts,
            scheduled: n,
            dropped: 0,
            cancelled: 0,
            intended_total: n as f64,
            windows: Windows::from(rows),
            cpu_seconds: 0.0,
            warnings: Vec::new(),
            failures_seen: Default::default(),
        });
        report.write_json(&dir.join(format!("shard-{k}.json")))?;
    }
    println!("{shards} shards x {secs} s in {}", dir.display());
    Ok(())
}
