//! The run's results: the JSON report (validated against `schema.json`), the summary table, and
//! the Locust CSV and plot writers in submodules.

pub mod csv;
pub mod finish;
pub mod plot;
pub mod spool;

pub use finish::{Collected, Request, finish};
pub use spool::{History, Windows};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::record::{Counts, Gaps, Percentiles};

/// The JSON Schema the report follows.
pub const SCHEMA: &str = include_str!("schema.json");

/// Locust's percentile columns, as fractions.
pub const LOCUST_PERCENTILES: [f64; 11] = [
    0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0,
];

/// One 1 s window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    /// Window end, seconds since the start.
    pub t_s: f64,
    /// Window length, seconds.
    pub dt_s: f64,
    /// Wall-clock window end, Unix seconds.
    pub unix_s: f64,
    /// Expected arrivals from the shape (integral of the rate); closed loop: arrivals made.
    pub intended: f64,
    /// Arrivals the schedule produced.
    pub scheduled: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests finished.
    pub completed: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Errors.
    pub errors: u64,
    /// Dropped arrivals.
    pub dropped: u64,
    /// Sends > 1 ms late.
    pub late_sends: u64,
    /// Stretches of ≥ 1 ms the busy-polling dispatcher did not run (`--busy-poll` only).
    pub dispatcher_gaps: Gaps,
    /// Intended rate, req/s.
    pub intended_rps: f64,
    /// Achieved send rate, req/s.
    pub achieved_rps: f64,
    /// Requests in flight at the window end.
    pub in_flight: u64,
    /// Closed loop: users active at the window end (Locust's user count); open loop: `None`.
    #[serde(default)]
    pub users: Option<u64>,
    /// Due arrivals waiting for a free connection at the window's end (open loop; the
    /// schedule is not consumed while every connection is busy, so this costs no memory).
    pub backlog: u64,
    /// Corrected latency.
    pub corrected: Percentiles,
    /// Service time.
    pub service: Percentiles,
    /// Send lag.
    pub send_lag: Percentiles,
    /// Generator CPU, cores busy.
    pub cpu_ratio: Option<f64>,
    /// Server mean queue time per request (Triton statistics), ms.
    pub server_queue_ms: Option<f64>,
    /// Server mean compute time per request, ms.
    pub server_compute_ms: Option<f64>,
    /// Server-side successful inferences in the window.
    pub server_success: Option<u64>,
}

/// Run totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Arrivals the schedule produced.
    pub scheduled: u64,
    /// Requests sent.
    pub requests: u64,
    /// Finished with an outcome.
    pub completed: u64,
    /// 2xx.
    pub ok: u64,
    /// Not 2xx or no answer.
    pub errors: u64,
    /// Dropped by the overflow policy.
    pub dropped: u64,
    /// Queued arrivals discarded by a stop.
    pub cancelled: u64,
    /// Sends > 1 ms late.
    pub late_sends: u64,
    /// Stretches of ≥ 1 ms the busy-polling dispatcher did not run (`--busy-poll` only).
    pub dispatcher_gaps: Gaps,
    /// Response bytes.
    pub bytes_in: u64,
    /// Errors by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<String, u64>,
}

impl Totals {
    /// Totals from run counts.
    pub fn from_counts(c: &Counts, scheduled: u64, dropped: u64, cancelled: u64) -> Totals {
        Totals {
            scheduled,
            requests: c.sent,
            completed: c.completed,
            ok: c.ok,
            errors: c.errors,
            dropped,
            cancelled,
            late_sends: c.late_sends,
            dispatcher_gaps: c.dispatcher_gaps.clone(),
            bytes_in: c.bytes_in,
            errors_by_kind: c
                .by_kind
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            by_status: c
                .by_status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// Rates over the run. Only sends made by the schedule's end count as achieved: a generator
/// that falls behind and catches up afterwards shows it as an overrun, not as a full rate.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Rates {
    /// Length of the schedule, seconds.
    pub schedule_s: f64,
    /// Expected arrivals (integral of the shape over the time run).
    pub intended_total: f64,
    /// Mean intended rate, req/s.
    pub intended_rps: f64,
    /// Sends made by the schedule's end per second of schedule run, req/s.
    pub achieved_rps: f64,
    /// achieved / intended.
    pub achieved_ratio: f64,
    /// Sends made by the schedule's end.
    pub on_time_sends: u64,
    /// Of the arrivals the schedule produced, the share sent by its end (1 when the generator
    /// kept up, whatever the spread of a Poisson count).
    pub on_time_ratio: f64,
    /// Sends made after the schedule's end: arrivals due before it, caught up late.
    pub overrun_sends: u64,
    /// Seconds from the schedule's start to the last send: the wall time sending really took.
    pub send_wall_s: f64,
    /// How long sending went on past the schedule's end, seconds (0 without an overrun).
    pub overrun_s: f64,
}

impl Rates {
    /// The rates of a run that sent `sent` requests, `after_end` of them after the schedule's
    /// `duration_s`, the last `last_send_s` after its start, of `scheduled` arrivals
    /// (`intended_total` expected) over `elapsed_s`.
    pub fn of(
        intended_total: f64,
        scheduled: u64,
        sent: u64,
        after_end: u64,
        last_send_s: f64,
        duration_s: f64,
        elapsed_s: f64,
    ) -> Rates {
        let span = elapsed_s.min(duration_s).max(1e-9);
        let on_time = sent.saturating_sub(after_end);
        Rates {
            schedule_s: duration_s,
            intended_total,
            intended_rps: intended_total / span,
            achieved_rps: on_time as f64 / span,
            achieved_ratio: if intended_total > 0.0 {
                on_time as f64 / intended_total
            } else {
                0.0
            },
            on_time_sends: on_time,
            on_time_ratio: if scheduled > 0 {
                on_time as f64 / scheduled as f64
            } else {
                0.0
            },
            overrun_sends: after_end,
            send_wall_s: last_send_s,
            overrun_s: if after_end > 0 {
                (last_send_s - duration_s).max(0.0)
            } else {
                0.0
            },
        }
    }

    /// The summary's `overrun` line, when sends went on after the schedule's end.
    pub fn overrun_line(&self, sent: u64) -> Option<String> {
        let duration_s = self.schedule_s;
        (self.overrun_sends > 0).then(|| {
            format!(
                "the {duration_s:.1} s schedule took {:.1} s to send: {} sends ({:.2}%) went out in a {:.1} s catch-up after its end",
                self.send_wall_s,
                self.overrun_sends,
                100.0 * self.overrun_sends as f64 / sent.max(1) as f64,
                self.overrun_s
            )
        })
    }
}

/// Latency percentiles over the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    /// End − intended start.
    pub corrected: Percentiles,
    /// End − actual send.
    pub service: Percentiles,
    /// Actual − intended send.
    pub send_lag: Percentiles,
}

/// The generator's own cost.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Generator {
    /// User + system CPU seconds during the run.
    pub cpu_seconds: f64,
    /// Completed requests per CPU-second.
    pub requests_per_cpu_second: f64,
    /// Self-diagnosis warnings.
    pub warnings: Vec<String>,
}

/// One kind of failure over the run (a row of the Locust failures CSV).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failure {
    /// `HTTP 500`, `timeout`, `connect`, ...
    pub error: String,
    /// How many.
    pub occurrences: u64,
    /// Unix seconds of the start of the first window it occurred in.
    pub first_seen_unix_s: f64,
    /// Unix seconds of the end of the last window it occurred in.
    pub last_seen_unix_s: f64,
}

/// The whole report (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Tool and version.
    pub tool: String,
    /// The checked configuration.
    pub config: Config,
    /// Unix seconds at the start.
    pub started_unix_s: f64,
    /// Seconds from the first scheduled send to the end of the drain.
    pub elapsed_s: f64,
    /// Whether a signal stopped the run early.
    pub interrupted: bool,
    /// Totals.
    pub totals: Totals,
    /// Rates.
    pub rates: Rates,
    /// Latency.
    pub latency: Latency,
    /// Per-window rows (spooled to a temporary file, read back on use).
    pub windows: Windows,
    /// Generator cost and warnings.
    pub generator: Generator,
    /// Request body size, bytes.
    pub request_bytes: u64,
    /// How the requests were sent, and the start-up calibration that chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_path: Option<crate::send::SendChoice>,
    /// Human description of the target.
    pub target: String,
    /// The failures with the windows they were first and last seen in (for the Locust CSV;
    /// the JSON has them by kind and status in `totals` and per window).
    #[serde(skip)]
    pub failures: Vec<Failure>,
}

/// The summary's `--busy-poll` line: how long the dispatcher went unrun in gaps of ≥ 1 ms,
/// against `elapsed_s`. Sends due in a gap lag by up to its length whatever the server does.
pub fn gaps_line(g: &Gaps, elapsed_s: f64) -> String {
    if g.count == 0 {
        return "no gaps of 1 ms or more: the dispatcher ran throughout".into();
    }
    format!(
        "{} gaps of 1 ms or more, {:.1} ms in all ({:.2}% of the run), longest {:.1} ms: the \
         dispatcher did not run then (its CPU was taken by another process, the host, or the \
         thread's own work), so sends due in them lag whatever the server does",
        g.count,
        g.total_us as f64 / 1e3,
        100.0 * g.total_us as f64 / 1e6 / elapsed_s.max(1e-9),
        g.max_us as f64 / 1e3,
    )
}

/// The summary's latency table: milliseconds, or seconds once any value reaches 10 s, every
/// column at least one space apart (up to the 1 h the histograms hold), so it stays readable
/// and splits on whitespace whatever the latencies.
pub fn latency_table(l: &Latency) -> String {
    let rows = [
        ("corrected", &l.corrected),
        ("service", &l.service),
        ("send_lag", &l.send_lag),
    ];
    let cells = |p: &Percentiles| [p.p50_ms, p.p90_ms, p.p95_ms, p.p99_ms, p.p999_ms, p.max_ms];
    let top = rows
        .iter()
        .flat_map(|(_, p)| cells(p))
        .fold(0.0_f64, f64::max);
    let (unit, div) = if top >= 10_000.0 {
        ("s", 1000.0)
    } else {
        ("ms", 1.0)
    };
    let mut s = format!("{unit:<10}");
    for h in ["p50", "p90", "p95", "p99", "p99.9", "max"] {
        let _ = write!(s, " {h:>10}");
    }
    s.push('\n');
    for (name, p) in rows {
        let _ = write!(s, "{name:<10}");
        for v in cells(p) {
            let _ = write!(s, " {:>10.3}", v / div);
        }
        s.push('\n');
    }
    s
}

impl Report {
    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let file_err = |source| Error::File {
            flag: "--json",
            path: path.to_path_buf(),
            source,
        };
        // Streamed: the window rows come from the spool, never all in memory at once.
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(file_err)?);
        serde_json::to_writer_pretty(&mut f, self).map_err(|e| Error::Output {
            what: "JSON report",
            reason: e.to_string(),
        })?;
        std::io::Write::flush(&mut f).map_err(file_err)
    }

    /// What ran and for how long: the summary's first line and the plot's caption. An
    /// interrupted run says how much of its schedule it ran.
    pub fn title(&self) -> String {
        if self.interrupted {
            format!(
                "{} for {:.1} s (interrupted after {:.1} s of the {:.1} s schedule)",
                self.target,
                self.elapsed_s,
                self.elapsed_s.min(self.rates.schedule_s),
                self.rates.schedule_s
            )
        } else {
            format!("{} for {:.1} s", self.target, self.elapsed_s)
        }
    }

    /// The final summary table.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let t = &self.totals;
        let _ = writeln!(s, "kis-loadgen: {}", self.title());
        let _ = writeln!(
            s,
            "requests   sent {}  ok {}  errors {}  dropped {}  cancelled {}",
            t.requests, t.ok, t.errors, t.dropped, t.cancelled
        );
        if !t.errors_by_kind.is_empty() {
            let kinds: Vec<String> = t
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let codes: Vec<String> = t
                .by_status
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                s,
                "errors     {}   (statuses {})",
                kinds.join(", "),
                codes.join(", ")
            );
        }
        let r = &self.rates;
        let _ = writeln!(
            s,
            "rate       intended {:.1}/s  achieved {:.1}/s ({:.2}%), on time {} of {} sends ({:.2}%)",
            r.intended_rps,
            r.achieved_rps,
            100.0 * r.achieved_ratio,
            r.on_time_sends,
            t.scheduled,
            100.0 * r.on_time_ratio
        );
        if let Some(o) = r.overrun_line(t.requests) {
            let _ = writeln!(s, "overrun    {o}");
        }
        s += &latency_table(&self.latency);
        let g = &self.generator;
        let _ = writeln!(
            s,
            "generator  {:.2} CPU-s, {:.0} req/CPU-s, late sends {}",
            g.cpu_seconds, g.requests_per_cpu_second, t.late_sends
        );
        if let Some(c) = self.send_path.as_ref().filter(|c| !c.cpu_us.is_empty()) {
            let _ = writeln!(s, "send path  {}", c.line());
        }
        if self.config.load.busy_poll() {
            let _ = writeln!(
                s,
                "dispatcher {}",
                gaps_line(&t.dispatcher_gaps, self.elapsed_s)
            );
        }
        for w in &g.warnings {
            let _ = writeln!(s, "warning    {w}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(base: f64) -> Percentiles {
        Percentiles {
            count: 10,
            p50_ms: base,
            p90_ms: base * 1.5,
            p95_ms: base * 1.53,
            p99_ms: base * 1.6,
            p999_ms: base * 1.7,
            max_ms: base * 1.9,
            ..Percentiles::default()
        }
    }

    /// Every row splits into its name and six numbers that read back as the values, at
    /// latencies from microseconds to the hour the histograms hold.
    #[test]
    fn latency_table_stays_aligned_and_parseable_at_any_latency() {
        for base in [0.004, 6569.983, 10_067.967, 1_894_736.8] {
            let l = Latency {
                corrected: pct(base),
                service: pct(base / 3.0),
                send_lag: pct(base / 7.0),
            };
            let t = latency_table(&l);
            let lines: Vec<&str> = t.lines().collect();
            assert_eq!(lines.len(), 4, "{t}");
            let seconds = lines[0].starts_with("s ");
            assert_eq!(seconds, base >= 10_000.0 / 1.9, "{t}");
            // Every line is the same width: the columns line up.
            assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{t}");
            assert!(
                lines.iter().all(|l| l.split_whitespace().count() == 7),
                "{t}"
            );
            let fields: Vec<&str> = lines[1].split_whitespace().collect();
            let p50: f64 = fields[1].parse().unwrap();
            let want = if seconds { base / 1000.0 } else { base };
            assert!(
                (p50 - want).abs() <= 0.0005 + 1e-9 * want,
                "{p50} vs {want}: {t}"
            );
            let max: f64 = fields[6].parse().unwrap();
            assert!(max > p50, "{t}");
        }
    }

    #[test]
    fn gaps_line_states_count_share_and_longest() {
        let none = gaps_line(&Gaps::default(), 10.0);
        assert!(none.starts_with("no gaps"), "{none}");
        let g = Gaps {
            count: 3,
            total_us: 25_000,
            max_us: 12_500,
        };
        let l = gaps_line(&g, 10.0);
        assert!(
            l.starts_with(
                "3 gaps of 1 ms or more, 25.0 ms in all (0.25% of the run), longest 12.5 ms"
            ),
            "{l}"
        );
    }
}
