//! Synthetic shard results, for timing `kis-loadgen merge` (`examples/merge_fixture.rs`,
//! `bench/merge.sh`) and for the test that its memory does not grow with the run's length.
//!
//! The files are what a run writes (the same writer and identity comment, a JSON report through
//! [`Report::from_collected`]); the latencies are made up (log-uniform, 0.5-10 ms), and so are
//! the window rows' rates (within 10 % of the shard's rate).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use kis_traffic::{ArrivalKind, ShapeSpec};
use rand::{RngExt, SeedableRng};

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::record::{Counts, Hists};
use crate::report::{Collected, Report, Request, WindowRow, Windows};
use crate::shard::Shard;

fn fail(e: impl std::fmt::Debug) -> Error {
    Error::Output {
        what: "merge fixture",
        reason: format!("{e:?}"),
    }
}

/// Writes `shards` shard reports (`shard-K.json`) and interval logs (`shard-K.hlog`) of one run
/// into `dir`: `secs` 1 s intervals, each shard `rate / shards` latencies per second.
pub fn write_shards(dir: &Path, shards: u32, secs: u64, rate: f64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(fail)?;
    let per_s = (rate / f64::from(shards)).round() as u64;
    let start = SystemTime::now();
    for k in 0..shards {
        let mut cfg = Config::open_loop(
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
        let log = dir.join(format!("shard-{k}.hlog"));
        cfg.outputs.hdr_log = Some(log.clone());
        let (rows, total) = write_log(&log, &cfg, start, k, secs, per_s)?;
        let n = per_s * secs;
        let json = dir.join(format!("shard-{k}.json"));
        cfg.outputs.json = Some(json.clone());
        let report = Report::from_collected(Collected {
            config: cfg,
            request: Request::default(),
            started_unix_s: 0.0,
            elapsed_s: secs as f64,
            last_send_s: secs as f64,
            duration_s: secs as f64,
            interrupted: false,
            hists: total,
            counts: Counts {
                sent: n,
                completed: n,
                ok: n,
                ..Counts::default()
            },
            scheduled: n,
            dropped: 0,
            cancelled: 0,
            intended_total: n as f64,
            windows: Windows::from(rows),
            cpu_seconds: 0.0,
            warnings: Vec::new(),
            failures_seen: Default::default(),
        });
        report.write_json(&json)?;
    }
    Ok(())
}

/// One shard's interval log; its window rows and whole-run histograms.
fn write_log(
    path: &Path,
    cfg: &Config,
    start: SystemTime,
    k: u32,
    secs: u64,
    per_s: u64,
) -> Result<(Vec<WindowRow>, Hists)> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(u64::from(k));
    // Rates not round, so that the order window rows are summed in shows in their sums.
    let mut rates = rand_pcg::Pcg64::seed_from_u64(1000 + u64::from(k));
    let mut file = BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    let mut ser = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&super::log_identity(cfg))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut file, &mut ser)
        .map_err(fail)?;
    let mut rows = Vec::new();
    let mut total = Hists::default();
    let mut h = Hists::default();
    for s in 0..secs {
        h.reset();
        for _ in 0..per_s {
            let us = (500.0 * (rng.random_range(0.0f64..3.0)).exp()) as u64;
            h.corrected.record(us).map_err(fail)?;
            h.service.record(us * 9 / 10).map_err(fail)?;
            h.lag.record(us / 20).map_err(fail)?;
        }
        let at = Duration::from_secs(s);
        for (x, tag) in [
            (&h.corrected, "corrected"),
            (&h.service, "service"),
            (&h.lag, "lag"),
        ] {
            log.write_histogram(x, at, Duration::from_secs(1), Tag::new(tag))
                .map_err(fail)?;
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
            intended_rps: per_s as f64 * rates.random_range(0.9..1.1),
            achieved_rps: per_s as f64 * rates.random_range(0.9..1.1),
            ..WindowRow::default()
        });
    }
    drop(log);
    file.flush().map_err(fail)?;
    Ok((rows, total))
}
