//! `kis-loadgen merge`: the shards of one run (`--shard K/N`) into the report one process
//! would have written.
//!
//! Percentiles are never averaged: each shard's HDR interval log is read back, its histograms
//! are added per interval (interval `i` of every shard: with a shared `--start-at` the shards'
//! windows start together) and over the run, and the percentiles are taken from the sums.
//! Counts and errors by kind are summed from the shards' JSON reports. The merged run goes
//! through [`crate::report::finish`], so the summary, JSON, Locust CSVs and plot are the ones a
//! single run writes; the merged interval log is written here. A per-shard table (intended vs
//! achieved rate, send lag) shows a slow shard, and a shard well below the others is warned about.
//!
//! Refused, with one line: reports of different runs (`--run-id`), seeds, shapes (the whole
//! load model) or shard counts, two reports of one segment, and (unless `allow_missing`)
//! missing segments, which are named.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
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
    windows: Vec<WindowRow>,
}

/// One shard's report, where it came from and its interval log.
struct Input {
    json: PathBuf,
    log: PathBuf,
    r: ShardReport,
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
    /// Histograms per interval, summed over the shards (interval index, histograms).
    pub intervals: Vec<(u64, Hists)>,
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
    let mut inputs = files
        .iter()
        .map(|f| read_input(f))
        .collect::<Result<Vec<_>>>()?;
    inputs.sort_by_key(|i| i.r.config.shard);
    let missing = check_inputs(&inputs)?;
    if !missing.is_empty() && !allow_missing {
        return Err(usage(format!(
            "missing shards {} of run {} (merge them all, or pass --allow-missing)",
            list(&missing),
            run_name(&inputs[0].r.config)
        )));
    }
    let mut intervals: BTreeMap<u64, Hists> = BTreeMap::new();
    let mut rows = Vec::new();
    for i in &inputs {
        let mine = read_log(i, &mut intervals)?;
        rows.push(shard_row(i, &mine));
    }
    let mut warnings = slow_shard_warnings(&rows);
    if !missing.is_empty() {
        warnings.push(format!("merged without shards {}", list(&missing)));
    }
    let intervals: Vec<(u64, Hists)> = intervals.into_iter().collect();
    if let Some(p) = &outputs.hdr_log {
        write_log(p, &inputs, &intervals)?;
    }
    let collected = collect(&inputs, &intervals, outputs, warnings)?;
    let quiet = collected.config.outputs.quiet;
    if !quiet {
        print!("{}", shard_table(&rows));
    }
    let report = report::finish(collected)?;
    Ok(Merged {
        report,
        shards: rows,
        intervals,
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

fn read_input(json: &Path) -> Result<Input> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| usage(format!("{}: cannot read ({e})", json.display())))?;
    let r: ShardReport = serde_json::from_str(&text).map_err(|e| {
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

/// Reads a shard's interval log into `into` (summed per interval); returns the shard's own
/// whole-run histograms. Checks the log names the same shard as the report.
fn read_log(i: &Input, into: &mut BTreeMap<u64, Hists>) -> Result<Hists> {
    let bad = |why: String| usage(format!("{}: {why}", i.log.display()));
    let bytes = std::fs::read(&i.log).map_err(|e| bad(format!("cannot read ({e})")))?;
    let want = log_identity(&i.r.config);
    let id_line = bytes
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(format!("#{LOG_ID}").as_bytes()))
        .map(|l| String::from_utf8_lossy(&l[1..]).trim().to_string());
    if id_line.as_deref() != Some(want.as_str()) {
        return Err(bad(format!(
            "names {:?}, its report {} says {want:?}",
            id_line.unwrap_or_else(|| "no shard".into()),
            i.json.display()
        )));
    }
    let mut mine = Hists::default();
    for_each_interval(&bytes, |tag, start, hist| {
        // Windows are 1 s from the shard's time zero: the interval's start names it.
        let idx = start.as_secs_f64().round() as u64;
        let slot = into.entry(idx).or_default();
        let (sum, own) = match tag {
            "corrected" => (&mut slot.corrected, &mut mine.corrected),
            "service" => (&mut slot.service, &mut mine.service),
            "lag" => (&mut slot.lag, &mut mine.lag),
            _ => return Ok(()),
        };
        sum.add(&hist)
            .map_err(|e| format!("a histogram out of range ({e:?})"))?;
        own.add(&hist)
            .map_err(|e| format!("a histogram out of range ({e:?})"))
    })
    .map_err(bad)?;
    Ok(mine)
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
        let raw = base64_decode(h.encoded_histogram())
            .ok_or_else(|| "a histogram is not base64".to_string())?;
        let hist: Histogram<u64> = de
            .deserialize(&mut raw.as_slice())
            .map_err(|e| format!("a histogram does not decode ({e:?})"))?;
        f(
            h.tag().map_or("", |t| t.as_str()),
            h.start_timestamp(),
            hist,
        )?;
    }
    Ok(())
}

/// Standard base64 (the interval log's encoding) without a dependency of its own.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim().trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (k, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * k);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..=n]);
    }
    Some(out)
}

fn shard_row(i: &Input, mine: &Hists) -> ShardRow {
    let lag = Percentiles::of(&mine.lag);
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
    }
}

/// The merged run as a [`Collected`], for [`report::finish`].
fn collect(
    inputs: &[Input],
    intervals: &[(u64, Hists)],
    outputs: Outputs,
    mut warnings: Vec<String>,
) -> Result<Collected> {
    let r0 = &inputs[0].r;
    let mut config = r0.config.clone();
    config.outputs = outputs;
    let n = r0.config.shard.count;
    config.shard = Shard::WHOLE;
    let mut counts = Counts::default();
    let mut hists = Hists::default();
    for (_, h) in intervals {
        hists.add(h);
    }
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
        started_unix_s: inputs
            .iter()
            .map(|i| i.r.started_unix_s)
            .fold(f64::INFINITY, f64::min),
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
        windows: merged_windows(inputs, intervals),
        cpu_seconds: sum(&|r| r.generator.cpu_seconds),
        warnings,
        failures_seen: BTreeMap::new(),
    })
}

/// Window rows summed over the shards (row `i` of each), percentiles from the summed interval
/// histograms; server statistics (one server, seen by every shard) from the first shard.
fn merged_windows(inputs: &[Input], intervals: &[(u64, Hists)]) -> Windows {
    let mut out = Windows::new();
    let rows = inputs.iter().map(|i| i.r.windows.len()).max().unwrap_or(0);
    let mut total = Hists::default();
    let mut cum = (0u64, 0u64, 0u64);
    let empty = Hists::default();
    for k in 0..rows {
        let mut acc: Option<WindowRow> = None;
        for i in inputs {
            let Some(w) = i.r.windows.get(k) else {
                continue;
            };
            acc = Some(match acc {
                None => w.clone(),
                Some(a) => add_row(a, w),
            });
        }
        let Some(mut row) = acc else { continue };
        let h = intervals
            .iter()
            .find(|(idx, _)| *idx == k as u64)
            .map_or(&empty, |(_, h)| h);
        total.add(h);
        row.corrected = Percentiles::of(&h.corrected);
        row.service = Percentiles::of(&h.service);
        row.send_lag = Percentiles::of(&h.lag);
        cum = (cum.0 + row.completed, cum.1 + row.errors, cum.2);
        let history = History {
            locust: if h.corrected.is_empty() {
                Vec::new()
            } else {
                report::finish::locust_percentiles(&h.corrected)
            },
            total: Percentiles::of(&total.corrected),
            total_counts: cum,
        };
        out.push(&row, &history);
    }
    out
}

fn add_row(mut a: WindowRow, w: &WindowRow) -> WindowRow {
    a.t_s = a.t_s.max(w.t_s);
    a.dt_s = a.dt_s.max(w.dt_s);
    a.unix_s = a.unix_s.max(w.unix_s);
    a.intended += w.intended;
    a.scheduled += w.scheduled;
    a.sent += w.sent;
    a.completed += w.completed;
    a.ok += w.ok;
    a.errors += w.errors;
    a.dropped += w.dropped;
    a.late_sends += w.late_sends;
    a.dispatcher_gaps.add(&w.dispatcher_gaps);
    a.intended_rps += w.intended_rps;
    a.achieved_rps += w.achieved_rps;
    a.in_flight += w.in_flight;
    a.users = match (a.users, w.users) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    a.backlog += w.backlog;
    a.cpu_ratio = match (a.cpu_ratio, w.cpu_ratio) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    };
    a
}

/// Writes the summed intervals as an HDR interval log like a run's.
fn write_log(path: &Path, inputs: &[Input], intervals: &[(u64, Hists)]) -> Result<()> {
    let err = |e: String| Error::Output {
        what: "HDR log",
        reason: format!("{}: {e}", path.display()),
    };
    let start = inputs
        .iter()
        .map(|i| i.r.started_unix_s)
        .fold(f64::INFINITY, f64::min);
    let start = UNIX_EPOCH + Duration::from_secs_f64(start.max(0.0));
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let mut f = BufWriter::new(file);
    let mut ser = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(
                "kis-loadgen merged interval log; values in microseconds; tags corrected, service, lag",
            )
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut f, &mut ser)
            .map_err(|e| err(e.to_string()))?;
        let one = Duration::from_secs(1);
        for (idx, h) in intervals {
            let at = Duration::from_secs(*idx);
            for (hist, tag) in [
                (&h.corrected, "corrected"),
                (&h.service, "service"),
                (&h.lag, "lag"),
            ] {
                log.write_histogram(hist, at, one, Tag::new(tag))
                    .map_err(|e| err(format!("{e:?}")))?;
            }
        }
    }
    f.flush().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_what_the_log_writes() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a$==").is_none());
    }

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
