//! From what a run collected to its report and output files.
//!
//! [`Collected`] is everything the outputs need: whole-run histograms and counters, the window
//! rows, the generator's cost. A run hands one over at its end; a merge of several generators'
//! runs (sharded load) adds theirs up and calls the same [`finish`], so the report, the summary
//! and every file are written by one piece of code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    Failure, Generator, LOCUST_PERCENTILES, Latency, Rates, Report, Totals, Windows, csv, plot,
};
use crate::config::{Config, Outputs};
use crate::diag;
use crate::error::{Error, Result};
use crate::record::{Counts, Hists, Percentiles, ms};

/// What the request rows of the Locust CSVs are called, and what the summary says was driven.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// HTTP method (Locust's `Type`).
    pub method: String,
    /// Request path (Locust's `Name`).
    pub name: String,
    /// Body size, bytes.
    pub bytes: u64,
    /// Human description of load and target.
    pub target: String,
    /// How the requests were sent (`None`: not known, e.g. a merge).
    pub send: Option<crate::send::SendChoice>,
}

/// Everything a run (or a merge of runs) collected.
#[derive(Debug)]
pub struct Collected {
    /// The configuration run.
    pub config: Config,
    /// What was sent.
    pub request: Request,
    /// Unix seconds at the start of the schedule.
    pub started_unix_s: f64,
    /// Seconds from the start of the schedule to the end of the drain.
    pub elapsed_s: f64,
    /// Seconds from the start of the schedule to the last send (0: nothing sent).
    pub last_send_s: f64,
    /// Length of the schedule, seconds.
    pub duration_s: f64,
    /// Whether a signal stopped the run early.
    pub interrupted: bool,
    /// Whole-run latency histograms.
    pub hists: Hists,
    /// Whole-run counters.
    pub counts: Counts,
    /// Arrivals the schedule produced (sent, dropped or cancelled).
    pub scheduled: u64,
    /// Arrivals dropped by the overflow policy.
    pub dropped: u64,
    /// Due arrivals never sent.
    pub cancelled: u64,
    /// Expected arrivals over the time run (the integral of the rate).
    pub intended_total: f64,
    /// Per-window rows.
    pub windows: Windows,
    /// Generator CPU seconds.
    pub cpu_seconds: f64,
    /// Warnings given during the run.
    pub warnings: Vec<String>,
    /// Unix seconds of the first window start and last window end each failure label of
    /// [`Counts::failures`] was seen in.
    pub failures_seen: BTreeMap<String, (f64, f64)>,
}

impl Report {
    /// The report of `c` (adds the whole-run late-send warning).
    pub fn from_collected(c: Collected) -> Report {
        let mut warnings = c.warnings;
        if let Some(w) = diag::run_warning(
            c.counts.sent,
            c.counts.late_sends,
            &c.counts.dispatcher_gaps,
        ) {
            tracing::warn!("{w}");
            warnings.push(w);
        }
        let elapsed = c.elapsed_s.max(1e-9);
        let n = &c.counts;
        let rates = Rates::of(
            c.intended_total,
            c.scheduled,
            n.sent,
            n.after_end,
            c.last_send_s,
            c.duration_s,
            elapsed,
        );
        let failures = n
            .failures()
            .into_iter()
            .map(|(error, occurrences)| {
                let (first, last) = c.failures_seen.get(&error).copied().unwrap_or_default();
                Failure {
                    error,
                    occurrences,
                    first_seen_unix_s: first,
                    last_seen_unix_s: last,
                }
            })
            .collect();
        Report {
            failures,
            tool: format!("kis-loadgen {}", env!("CARGO_PKG_VERSION")),
            config: c.config,
            started_unix_s: c.started_unix_s,
            elapsed_s: elapsed,
            interrupted: c.interrupted,
            totals: Totals::from_counts(n, c.scheduled, c.dropped, c.cancelled),
            rates,
            latency: Latency {
                corrected: Percentiles::of(&c.hists.corrected),
                service: Percentiles::of(&c.hists.service),
                send_lag: Percentiles::of(&c.hists.lag),
            },
            windows: c.windows,
            generator: Generator {
                cpu_seconds: c.cpu_seconds,
                requests_per_cpu_second: if c.cpu_seconds > 0.0 {
                    n.completed as f64 / c.cpu_seconds
                } else {
                    0.0
                },
                warnings,
            },
            request_bytes: c.request.bytes,
            send_path: c.request.send,
            target: c.request.target,
        }
    }
}

/// Corrected latency at Locust's percentiles, ms (zeros when nothing was answered).
pub fn locust_percentiles(h: &hdrhistogram::Histogram<u64>) -> Vec<f64> {
    LOCUST_PERCENTILES
        .iter()
        .map(|q| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(*q))
            }
        })
        .collect()
}

/// Builds the report of `c`, writes every output its configuration asks for and prints the
/// summary (unless quiet). Every output is attempted; the first failure is returned after the
/// others were written.
pub fn finish(c: Collected) -> Result<Report> {
    let locust = locust_percentiles(&c.hists.corrected);
    let request = c.request.clone();
    let report = Report::from_collected(c);
    write_outputs(&report, &report.config.outputs, &request, &locust)?;
    Ok(report)
}

/// Writes the JSON report, the Locust CSVs and the plot that `outputs` names, then prints the
/// summary unless `outputs.quiet`.
pub fn write_outputs(
    report: &Report,
    outputs: &Outputs,
    request: &Request,
    locust: &[f64],
) -> Result<()> {
    let mut first_err: Option<Error> = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r
            && first_err.is_none()
        {
            first_err = Some(e);
        }
    };
    if let Some(p) = &outputs.json {
        keep(report.write_json(p));
    }
    if let Some(p) = &outputs.csv {
        keep(csv::write_all(
            report,
            p,
            &request.method,
            &request.name,
            locust,
        ));
    }
    if let Some(p) = &outputs.plot {
        keep(plot::write(report, p));
    }
    if !outputs.quiet {
        print!("{}", report.summary());
    }
    first_err.map_or(Ok(()), Err)
}

/// Checks every output file `outputs` names before the first request, so that a typo does not
/// cost the run: its directory exists and is writable, the file itself (if it exists) is a
/// writable file, and a plot has a `.png` or `.svg` name and a font to draw with.
pub fn check_outputs(outputs: &Outputs) -> Result<()> {
    for (flag, path) in output_files(outputs) {
        let bad = |why: String| Error::Usage(format!("{flag} {}: {why}", path.display()));
        // --csv is a prefix: its files are PREFIX_stats.csv etc., in the prefix's directory.
        let file = if flag == "--csv" {
            csv::path_with(&path, "_stats.csv")
        } else {
            path.clone()
        };
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(bad(format!("directory {} does not exist", dir.display())));
        }
        // A file made and removed again: permission bits alone do not tell (root, read-only
        // or virtual file systems).
        if let Err(e) = tempfile::NamedTempFile::new_in(&dir) {
            return Err(bad(format!(
                "directory {} is not writable ({e})",
                dir.display()
            )));
        }
        if file.is_dir() {
            return Err(bad("is a directory".into()));
        }
        if file.exists()
            && let Err(e) = std::fs::OpenOptions::new().append(true).open(&file)
        {
            return Err(bad(format!("is not writable ({e})")));
        }
        if flag == "--plot" {
            plot::check(&path)?;
        }
    }
    Ok(())
}

/// The flag and path of every output file `outputs` names (for checks before the run).
pub fn output_files(outputs: &Outputs) -> Vec<(&'static str, PathBuf)> {
    let mut v = Vec::new();
    if let Some(p) = &outputs.json {
        v.push(("--json", p.clone()));
    }
    if let Some(p) = &outputs.csv {
        v.push(("--csv", p.clone()));
    }
    if let Some(p) = &outputs.hdr_log {
        v.push(("--hdr-log", p.clone()));
    }
    if let Some(p) = &outputs.plot {
        v.push(("--plot", p.clone()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;
    use kis_traffic::{ArrivalKind, ShapeSpec};

    fn collected(interrupted: bool, elapsed_s: f64) -> Collected {
        let config = Config::open_loop(
            Target::http("http://127.0.0.1:9/", "GET").unwrap(),
            ShapeSpec::Constant {
                rate: 10.0,
                duration: 60.0,
            },
            ArrivalKind::Uniform,
        );
        Collected {
            config,
            request: Request {
                target: "constant 10.0..10.0 req/s".into(),
                ..Request::default()
            },
            started_unix_s: 0.0,
            elapsed_s,
            last_send_s: elapsed_s - 0.1,
            duration_s: 60.0,
            interrupted,
            hists: Hists::default(),
            counts: Counts::default(),
            scheduled: 25,
            dropped: 0,
            cancelled: 0,
            intended_total: 25.0,
            windows: Windows::in_memory(),
            cpu_seconds: 0.1,
            warnings: Vec::new(),
            failures_seen: BTreeMap::new(),
        }
    }

    #[test]
    fn an_interrupted_title_says_how_long_it_ran() {
        let r = Report::from_collected(collected(true, 2.5));
        assert_eq!(
            r.title(),
            "constant 10.0..10.0 req/s for 2.5 s (interrupted after 2.5 s of the 60.0 s schedule)"
        );
        let r = Report::from_collected(collected(false, 60.2));
        assert_eq!(r.title(), "constant 10.0..10.0 req/s for 60.2 s");
        assert!(r.summary().starts_with("kis-loadgen: constant"));
    }
}
