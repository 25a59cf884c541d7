//! From what a run collected to its report and output files.
//!
//! [`Collected`] is everything the outputs need: whole-run histograms and counters, the window
//! rows, the generator's cost. A run hands one over at its end; a merge of several generators'
//! runs (sharded load) adds theirs up and calls the same [`finish`], so the report, the summary
//! and every file are written by one piece of code.

use std::path::PathBuf;

use super::{Generator, LOCUST_PERCENTILES, Latency, Rates, Report, Totals, Windows, csv, plot};
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
        let span = elapsed.min(c.duration_s.max(1e-9));
        let rates = Rates {
            intended_total: c.intended_total,
            intended_rps: c.intended_total / span,
            achieved_rps: n.sent as f64 / span,
            achieved_ratio: if c.intended_total > 0.0 {
                n.sent as f64 / c.intended_total
            } else {
                0.0
            },
        };
        Report {
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
