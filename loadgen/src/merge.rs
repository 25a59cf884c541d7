//! `kis-loadgen merge`: the shards of one run (`--shard K/N`) into the report one process
//! would have written.
//!
//! Percentiles are never averaged: each shard's HDR interval log is read back, its histograms
//! are added per interval (interval `i` of every shard: with a shared `--start-at` the shards'
//! windows start together) and over the run, and the percentiles are taken from the sums.
//! The logs and the reports' window rows are streamed side by side (`merge/stream.rs`; each is in
//! time order): an interval is summed, written and folded into its window row as soon as every
//! shard has moved past it, so memory holds a few intervals at a time however long the run
//! ([`Merged::intervals`] counts them); the reports themselves are read without their rows
//! (`merge/json.rs`) and the log entries are added as plain counts (`merge/hdr.rs`).
//! Counts and errors by kind are summed from the shards' JSON reports. The merged run goes
//! through [`crate::report::finish`], so the summary, JSON, Locust CSVs and plot are the ones a
//! single run writes; the merged interval log is written here. A per-shard table (intended vs
//! achieved rate, send lag) shows a slow shard, and a shard well below the others is warned about.
//!
//! Refused, with one line: reports of different runs (`--run-id`), seeds, shapes (the whole
//! load model) or shard counts, two reports of one segment, and (unless `allow_missing`)
//! missing segments, which are named.

pub mod fixture;
mod hdr;
mod json;
mod stream;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogHistogram, IntervalLogIterator, IntervalLogWriter, IntervalLogWriterBuilder,
    LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use serde::Deserialize;

use crate::config::{Config, Outputs, Target};
use crate::error::{Error, Result};
use crate::record::{Counts, ErrorKind, Hists, Percentiles};
use crate::report::{
    self, Collected, Generator, History, Rates, Report, Request, Totals, WindowRow, Windows,
};
use crate::shard::Shard;

/// First word of the HDR log comment that names a shard (written by a run, checked here).
pub const LOG_ID: &str = "kis-loadgen-shard";

/// The comment line a run's interval log carries: shard, run id, seed.
pub fn log_identity(cfg: &Config) -> String {
    format!(
        "{LOG_ID} {} run={} seed={}",
        cfg.shard,
        cfg.run_id.as_deref().unwrap_or("-"),
        cfg.seed
    )
}

/// What merge reads of a shard's JSON report.
#[derive(Debug, Deserialize)]
struct ShardReport {
    config: Config,
    started_unix_s: f64,
    elapsed_s: f64,
    interrupted: bool,
    totals: Totals,
    rates: Rates,
    generator: Generator,
    request_bytes: u64,
    target: String,
    /// Read past here ([`json::read_without`]) and streamed later ([`stream`]): a row per
    /// second of the run would make memory grow with its length.
    #[serde(rename = "windows")]
    _windows: serde::de::IgnoredAny,
}

/// One shard's report, where it came from and its interval log.
struct Input {
    json: PathBuf,
    log: PathBuf,
    r: ShardReport,
    /// Byte offset of the report's `windows` array.
    windows_at: Option<u64>,
}

/// One row of the per-shard table.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardRow {
    /// The shard.
    pub shard: Shard,
    /// Intended rate, req/s.
    pub intended_rps: f64,
    /// Achieved (on-time) send rate, req/s.
    pub achieved_rps: f64,
    /// Send lag p50 and p99, ms.
    pub lag_p50_ms: f64,
    /// Send lag p99, ms.
    pub lag_p99_ms: f64,
    /// Requests sent.
    pub sent: u64,
    /// Errors.
    pub errors: u64,
}

/// What a merge produced.
pub struct Merged {
    /// The merged report (outputs already written).
    pub report: Report,
    /// One row per shard, in shard order.
    pub shards: Vec<ShardRow>,
    /// Intervals merged (each summed over the shards, written and dropped in turn).
    pub intervals: u64,
    /// Histograms over the whole run, summed over the shards.
    pub total: Hists,
    /// Missing segments (only with `allow_missing`).
    pub missing: Vec<Shard>,
}

/// The JSON reports among `inputs`: the `*.json` files of a directory, or the files named.
pub fn report_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| usage(format!("{}: {e}", p.display())))?;
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            v.sort();
            files.extend(v);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(usage(format!("{}: no such file or directory", p.display())));
        }
    }
    if files.is_empty() {
        return Err(usage("no shard reports (*.json) to merge".to_string()));
    }
    Ok(files)
}

/// Merges the shard reports `files` (each with its `--hdr-log` beside it or at its recorded
/// path) and writes `outputs`.
pub fn merge(files: &[PathBuf], outputs: Outputs, allow_missing: bool) -> Result<Merged> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    merge_with(files, outputs, allow_missing, threads)
}

/// [`merge`] with at most `threads` threads decoding the shards' logs (1: all on this one).
pub fn merge_with(
    files: &[PathBuf],
    outputs: Outputs,
    allow_missing: bool,
    threads: usize,
) -> Result<Merged> {
    // Phase times for `RUST_LOG=kis_loadgen=debug` (where a merge's time goes).
    let t0 = std::time::Instant::now();
    let mut inputs = read_inputs(files, threads)?;
    tracing::debug!("merge: {} reports read in {:?}", inputs.len(), t0.elapsed());
    inputs.sort_by_key(|i| i.r.config.shard);
    let missing = check_inputs(&inputs)?;
    if !missing.is_empty() && !allow_missing {
        return Err(usage(format!(
            "missing shards {} of run {} (merge them all, or pass --allow-missing)",
            list(&missing),
            run_name(&inputs[0].r.config)
        )));
    }
    let t1 = std::time::Instant::now();
    let streamed = stream(&inputs, outputs.hdr_log.as_deref(), threads)?;
    tracing::debug!(
        "merge: {} intervals streamed in {:?}",
        streamed.intervals,
        t1.elapsed()
    );
    let rows: Vec<ShardRow> = inputs
        .iter()
        .zip(&streamed.own)
        .map(|(i, mine)| shard_row(i, mine))
        .collect();
    let mut warnings = slow_shard_warnings(&rows);
    if !missing.is_empty() {
        warnings.push(format!("merged without shards {}", list(&missing)));
    }
    let total = streamed.rows.total.clone();
    let collected = collect(&inputs, streamed.rows, outputs, warnings)?;
    let quiet = collected.config.outputs.quiet;
    if !quiet {
        print!("{}", shard_table(&rows));
    }
    let t2 = std::time::Instant::now();
    let report = report::finish(collected)?;
    tracing::debug!("merge: outputs written in {:?}", t2.elapsed());
    Ok(Merged {
        report,
        shards: rows,
        intervals: streamed.intervals,
        total,
        missing,
    })
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

fn list(shards: &[Shard]) -> String {
    shards
        .iter()
        .map(Shard::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_name(c: &Config) -> String {
    c.run_id.clone().unwrap_or_else(|| "(no --run-id)".into())
}

/// Reads the reports `files` (without their window rows), on up to `threads` threads.
fn read_inputs(files: &[PathBuf], threads: usize) -> Result<Vec<Input>> {
    let workers = threads.clamp(1, 8).min(files.len().max(1));
    if workers == 1 {
        return files.iter().map(|f| read_input(f)).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    let (from, to) = (w * files.len() / workers, (w + 1) * files.len() / workers);
                    files[from..to]
                        .iter()
                        .map(|f| read_input(f))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| usage("a merge thread panicked reading reports"))?;
            for i in part {
                out.push(i?);
            }
        }
        Ok(out)
    })
}

fn read_input(json: &Path) -> Result<Input> {
    let (r, windows_at): (ShardReport, _) = json::read_without(json, "windows").map_err(|e| {
        usage(format!(
            "{}: not a kis-loadgen JSON report ({e})",
            json.display()
        ))
    })?;
    let Some(recorded) = &r.config.outputs.hdr_log else {
        return Err(usage(format!(
            "{} (shard {}): no --hdr-log was written; merge needs each shard's interval log",
            json.display(),
            r.config.shard
        )));
    };
    // Beside the report first (results copied off the pods), then where the run wrote it.
    let beside = recorded
        .file_name()
        .map(|n| json.parent().unwrap_or(Path::new(".")).join(n));
    let log = match beside {
        Some(b) if b.is_file() => b,
        _ if recorded.is_file() => recorded.clone(),
        _ => {
            return Err(usage(format!(
                "{} (shard {}): its interval log {} is neither beside it nor at its path",
                json.display(),
                r.config.shard,
                recorded.display()
            )));
        }
    };
    Ok(Input {
        json: json.to_path_buf(),
        log,
        r,
        windows_at,
    })
}

/// Refuses shards of different runs, seeds, shapes or shard counts and overlapping segments;
/// returns the missing segments.
fn check_inputs(inputs: &[Input]) -> Result<Vec<Shard>> {
    let first = &inputs[0];
    let c0 = &first.r.config;
    let load0 = serde_json::to_value(&c0.load).unwrap_or_default();
    for i in &inputs[1..] {
        let c = &i.r.config;
        let differ = |what: &str, a: String, b: String| {
            usage(format!(
                "{} and {} are not shards of one run: {what} {a} vs {b}",
                first.json.display(),
                i.json.display()
            ))
        };
        if c.run_id != c0.run_id {
            return Err(differ("run", run_name(c0), run_name(c)));
        }
        if c.seed != c0.seed {
            return Err(differ("seed", c0.seed.to_string(), c.seed.to_string()));
        }
        let load = serde_json::to_value(&c.load).unwrap_or_default();
        if load != load0 {
            return Err(differ("load/shape", load0.to_string(), load.to_string()));
        }
        if c.shard.count != c0.shard.count {
            return Err(differ(
                "shard count",
                c0.shard.count.to_string(),
                c.shard.count.to_string(),
            ));
        }
    }
    for w in inputs.windows(2) {
        if w[0].r.config.shard == w[1].r.config.shard {
            return Err(usage(format!(
                "{} and {} are both segment {}: overlapping shards",
                w[0].json.display(),
                w[1].json.display(),
                w[0].r.config.shard
            )));
        }
    }
    let n = c0.shard.count;
    let have: Vec<u32> = inputs.iter().map(|i| i.r.config.shard.index).collect();
    Ok((0..n)
        .filter(|k| !have.contains(k))
        .map(|k| Shard { index: k, count: n })
        .collect())
}

/// What streaming the shards produced.
struct Streamed {
    /// Each shard's own whole-run send-lag histogram (for its row), in input order.
    own: Vec<Histogram<u64>>,
    /// The merged window rows and whole-run histograms.
    rows: RowMerger,
    /// Intervals merged.
    intervals: u64,
}

/// Streams the shards' logs and window rows side by side ([`stream::for_each_step`], on up to
/// `threads` threads): each interval is summed over the shards, written to the merged log at
/// `log` (if any) and folded into its window row with the shards' rows, then its sum is reused
/// for the next one. Memory: a few steps' sums and rows, whatever the number of intervals.
fn stream(inputs: &[Input], log: Option<&Path>, threads: usize) -> Result<Streamed> {
    let files: Vec<stream::ShardFiles> = inputs
        .iter()
        .map(|i| stream::ShardFiles {
            log: &i.log,
            json: &i.json,
            windows_at: i.windows_at,
            id_word: LOG_ID,
            identity: log_identity(&i.r.config),
            name: i.json.display().to_string(),
        })
        .collect();
    let mut rows = RowMerger::new();
    let mut hists = Hists::default();
    let mut intervals = 0u64;
    let mut drive = |mut w: Option<&mut LogWriter<'_, '_>>| {
        stream::for_each_step(&files, threads, |step| {
            let h = match step.sum {
                Some(sum) => {
                    sum.to_hists(&mut hists)
                        .map_err(|e| usage(format!("merged interval {} s: {e}", step.k)))?;
                    if let (Some(w), Some(path)) = (w.as_deref_mut(), log) {
                        write_interval(w, step.k, &hists).map_err(|e| log_error(path, e))?;
                    }
                    intervals += 1;
                    Some(&hists)
                }
                None => None,
            };
            rows.add(h, step.rows);
            Ok(())
        })
    };
    let owns = match log {
        None => drive(None)?,
        Some(path) => {
            let mut owns = Vec::new();
            with_log_writer(path, started(inputs), |w| {
                owns = drive(Some(w))?;
                Ok(())
            })?;
            owns
        }
    };
    let mut own = Vec::with_capacity(owns.len());
    for (i, s) in inputs.iter().zip(owns) {
        let mut h = crate::record::new_hist();
        s.to_hist(&mut h).map_err(|e| i.bad(e))?;
        own.push(h);
    }
    Ok(Streamed {
        own,
        rows,
        intervals,
    })
}

type LogWriter<'a, 'b> = IntervalLogWriter<'a, 'b, BufWriter<std::fs::File>, V2DeflateSerializer>;

impl Input {
    fn bad(&self, why: String) -> Error {
        usage(format!("{}: {why}", self.log.display()))
    }
}

/// Calls `f` with each interval histogram of the HDR interval log `bytes`: its tag (empty when
/// untagged), its start (from the log's base time) and the histogram. Stops at the first error.
pub fn for_each_interval(
    bytes: &[u8],
    mut f: impl FnMut(&str, Duration, Histogram<u64>) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| format!("not an HDR interval log ({e:?})"))?;
        let LogEntry::Interval(h) = entry else {
            continue;
        };
        let (tag, start, hist) = decode(&h, &mut de)?;
        f(&tag, start, hist)?;
    }
    Ok(())
}

/// An interval entry's tag (empty when untagged), start and histogram.
fn decode(
    h: &IntervalLogHistogram<'_>,
    de: &mut Deserializer,
) -> std::result::Result<(String, Duration, Histogram<u64>), String> {
    let mut raw = Vec::new();
    if !hdr::base64_decode(h.encoded_histogram().as_bytes(), &mut raw) {
        return Err("a histogram is not base64".to_string());
    }
    let hist: Histogram<u64> = de
        .deserialize(&mut raw.as_slice())
        .map_err(|e| format!("a histogram does not decode ({e:?})"))?;
    Ok((
        h.tag().map_or(String::new(), |t| t.as_str().to_string()),
        h.start_timestamp(),
        hist,
    ))
}

fn shard_row(i: &Input, lag: &Histogram<u64>) -> ShardRow {
    let lag = Percentiles::of(lag);
    ShardRow {
        shard: i.r.config.shard,
        intended_rps: i.r.rates.intended_rps,
        achieved_rps: i.r.rates.achieved_rps,
        lag_p50_ms: lag.p50_ms,
        lag_p99_ms: lag.p99_ms,
        sent: i.r.totals.requests,
        errors: i.r.totals.errors,
    }
}

/// A shard that achieved under 95 % of its intended rate while the median shard did not:
/// the generator side of that shard (its node) is slow, not the server.
fn slow_shard_warnings(rows: &[ShardRow]) -> Vec<String> {
    let ratio = |r: &ShardRow| {
        if r.intended_rps > 0.0 {
            r.achieved_rps / r.intended_rps
        } else {
            1.0
        }
    };
    let mut ratios: Vec<f64> = rows.iter().map(ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(1.0);
    rows.iter()
        .filter(|r| ratio(r) < 0.95 && median >= 0.95)
        .map(|r| {
            format!(
                "shard {} achieved {:.1} of its {:.1} req/s ({:.0} %), send lag p99 {:.2} ms, while the median shard kept up: that shard's generator is slow",
                r.shard,
                r.achieved_rps,
                r.intended_rps,
                100.0 * ratio(r),
                r.lag_p99_ms
            )
        })
        .collect()
}

/// The per-shard table printed before the summary.
pub fn shard_table(rows: &[ShardRow]) -> String {
    let mut s = String::from(
        "shard      intended/s   achieved/s   ratio   lag p50 ms   lag p99 ms        sent    errors\n",
    );
    for r in rows {
        let ratio = if r.intended_rps > 0.0 {
            r.achieved_rps / r.intended_rps
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "{:<8} {:>12.1} {:>12.1} {:>7.3} {:>12.3} {:>12.3} {:>11} {:>9}",
            r.shard.to_string(),
            r.intended_rps,
            r.achieved_rps,
            ratio,
            r.lag_p50_ms,
            r.lag_p99_ms,
            r.sent,
            r.errors
        );
    }
    s
}

/// Counts from a report's totals (what the JSON keeps of them).
fn counts_of(r: &ShardReport) -> Counts {
    let t = &r.totals;
    let by_kind = t
        .errors_by_kind
        .iter()
        .filter_map(|(k, v)| {
            serde_json::from_value::<ErrorKind>(serde_json::Value::String(k.clone()))
                .ok()
                .map(|k| (k, *v))
        })
        .collect();
    let by_status = t
        .by_status
        .iter()
        .filter_map(|(k, v)| k.parse::<u16>().ok().map(|k| (k, *v)))
        .collect();
    Counts {
        sent: t.requests,
        completed: t.completed,
        ok: t.ok,
        errors: t.errors,
        late_sends: t.late_sends,
        after_end: r.rates.overrun_sends,
        bytes_in: t.bytes_in,
        by_kind,
        by_status,
        dispatcher_gaps: t.dispatcher_gaps.clone(),
        ..Counts::default()
    }
}

/// What the Locust CSVs call the request: the method and path the shards drove.
fn request_of(cfg: &Config, bytes: u64, target: String) -> Request {
    let (method, name) = match &cfg.target {
        Target::Http {
            endpoint, method, ..
        } => (method.clone(), endpoint.path.clone()),
        Target::Kserve {
            endpoint,
            model,
            version,
            ..
        } => {
            let v = version
                .as_ref()
                .map(|v| format!("/versions/{v}"))
                .unwrap_or_default();
            (
                "POST".into(),
                format!("{}/v2/models/{model}{v}/infer", endpoint.base()),
            )
        }
    };
    Request {
        method,
        name,
        bytes,
        target,
        send: None,
    }
}

/// The merged run as a [`Collected`], for [`report::finish`].
fn collect(
    inputs: &[Input],
    rows: RowMerger,
    outputs: Outputs,
    mut warnings: Vec<String>,
) -> Result<Collected> {
    let r0 = &inputs[0].r;
    let mut config = r0.config.clone();
    config.outputs = outputs;
    let n = r0.config.shard.count;
    config.shard = Shard::WHOLE;
    let mut counts = Counts::default();
    let (windows, hists) = rows.finish();
    for i in inputs {
        counts.add(&counts_of(&i.r));
        for w in &i.r.generator.warnings {
            warnings.push(format!("shard {}: {w}", i.r.config.shard));
        }
    }
    let sum = |f: &dyn Fn(&ShardReport) -> f64| inputs.iter().map(|i| f(&i.r)).sum::<f64>();
    let max = |f: &dyn Fn(&ShardReport) -> f64| inputs.iter().map(|i| f(&i.r)).fold(0.0, f64::max);
    let target = r0
        .target
        .strip_prefix(&format!("shard {} of ", r0.config.shard))
        .unwrap_or(&r0.target)
        .to_string();
    Ok(Collected {
        request: request_of(
            &config,
            r0.request_bytes,
            format!("{} of {n} shards: {target}", inputs.len()),
        ),
        config,
        started_unix_s: started(inputs),
        elapsed_s: max(&|r| r.elapsed_s),
        last_send_s: max(&|r| r.rates.send_wall_s),
        duration_s: r0.rates.schedule_s,
        interrupted: inputs.iter().any(|i| i.r.interrupted),
        hists,
        counts,
        scheduled: inputs.iter().map(|i| i.r.totals.scheduled).sum(),
        dropped: inputs.iter().map(|i| i.r.totals.dropped).sum(),
        cancelled: inputs.iter().map(|i| i.r.totals.cancelled).sum(),
        intended_total: sum(&|r| r.rates.intended_total),
        windows,
        cpu_seconds: sum(&|r| r.generator.cpu_seconds),
        warnings,
        failures_seen: BTreeMap::new(),
    })
}

/// The earliest time zero of the shards, Unix seconds.
fn started(inputs: &[Input]) -> f64 {
    inputs
        .iter()
        .map(|i| i.r.started_unix_s)
        .fold(f64::INFINITY, f64::min)
}

/// Window rows summed over the shards (row `k` of each, in shard order), their percentiles from
/// interval `k`'s summed histograms, built as the steps stream past ([`RowMerger::add`]), and
/// the whole-run histograms. Server statistics (one server, seen by every shard) come from the
/// first shard.
struct RowMerger {
    out: Windows,
    /// Everything added so far: the whole run once all intervals went past.
    total: Hists,
    cum: (u64, u64, u64),
    empty: Hists,
}

impl RowMerger {
    fn new() -> RowMerger {
        RowMerger {
            out: Windows::new(),
            total: Hists::default(),
            cum: (0, 0, 0),
            empty: Hists::default(),
        }
    }

    /// One step: its interval's summed histograms (`None`: no shard had that interval) and the
    /// shards' rows of that step (none: no shard has so many rows).
    fn add(&mut self, h: Option<&Hists>, shard_rows: &[WindowRow]) {
        if let Some(h) = h {
            self.total.add(h);
        }
        let Some((first, rest)) = shard_rows.split_first() else {
            return;
        };
        let mut row = rest.iter().fold(first.clone(), add_row);
        let h = h.unwrap_or(&self.empty);
        row.corrected = Percentiles::of(&h.corrected);
        row.service = Percentiles::of(&h.service);
        row.send_lag = Percentiles::of(&h.lag);
        self.cum = (
            self.cum.0 + row.completed,
            self.cum.1 + row.errors,
            self.cum.2,
        );
        // The running total of the rows so far (interval k included).
        let history = History {
            locust: if h.corrected.is_empty() {
                Vec::new()
            } else {
                report::finish::locust_percentiles(&h.corrected)
            },
            total: Percentiles::of(&self.total.corrected),
            total_counts: self.cum,
        };
        self.out.push(&row, &history);
    }

    /// The merged rows and the whole-run histograms.
    fn finish(self) -> (Windows, Hists) {
        (self.out, self.total)
    }
}

fn add_row(mut a: WindowRow, w: &WindowRow) -> WindowRow {
    a.t_s = a.t_s.max(w.t_s);
    a.dt_s = a.dt_s.max(w.dt_s);
    a.unix_s = a.unix_s.max(w.unix_s);
    crate::record::add_fields!(a, w; intended, scheduled, sent, completed, ok, errors, dropped,
        late_sends, intended_rps, achieved_rps, in_flight, backlog);
    a.dispatcher_gaps.add(&w.dispatcher_gaps);
    a.users = match (a.users, w.users) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    a.cpu_ratio = match (a.cpu_ratio, w.cpu_ratio) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    a
}

fn log_error(path: &Path, e: String) -> Error {
    Error::Output {
        what: "HDR log",
        reason: format!("{}: {e}", path.display()),
    }
}

/// Opens the merged interval log at `path` (time zero `start_unix_s`) and lets `f` write to it.
fn with_log_writer(
    path: &Path,
    start_unix_s: f64,
    f: impl FnOnce(
        &mut IntervalLogWriter<'_, '_, BufWriter<std::fs::File>, V2DeflateSerializer>,
    ) -> Result<()>,
) -> Result<()> {
    let err = |e: String| log_error(path, e);
    let start = UNIX_EPOCH + Duration::from_secs_f64(start_unix_s.max(0.0));
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let mut out = BufWriter::new(file);
    let mut ser = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(
                "kis-loadgen merged interval log; values in microseconds; tags corrected, service, lag",
            )
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| err(e.to_string()))?;
        f(&mut log)?;
    }
    out.flush().map_err(|e| err(e.to_string()))
}

/// One summed interval into the merged log, like a run writes it.
fn write_interval(
    log: &mut LogWriter<'_, '_>,
    idx: u64,
    h: &Hists,
) -> std::result::Result<(), String> {
    let (at, one) = (Duration::from_secs(idx), Duration::from_secs(1));
    for (hist, tag) in [
        (&h.corrected, "corrected"),
        (&h.service, "service"),
        (&h.lag, "lag"),
    ] {
        log.write_histogram(hist, at, one, Tag::new(tag))
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_shard_is_named() {
        let row = |k, a| ShardRow {
            shard: Shard::new(k, 3).unwrap(),
            intended_rps: 100.0,
            achieved_rps: a,
            lag_p50_ms: 0.1,
            lag_p99_ms: 1.0,
            sent: 100,
            errors: 0,
        };
        let w = slow_shard_warnings(&[row(0, 100.0), row(1, 60.0), row(2, 99.0)]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("shard 1/3"), "{w:?}");
        // All slow together: the server, not one shard.
        assert!(slow_shard_warnings(&[row(0, 50.0), row(1, 60.0), row(2, 55.0)]).is_empty());
        assert!(shard_table(&[row(0, 100.0)]).contains("0/3"));
    }
}
