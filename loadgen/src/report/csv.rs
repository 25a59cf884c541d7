//! Locust-compatible CSV files (`PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv`, `PREFIX_exceptions.csv`), with Locust 2.x's column names and order,
//! value kinds and CRLF line endings, so existing analysis keeps working (a golden test compares
//! them with a real Locust run's files). Times are milliseconds of corrected latency; history
//! rows are 1 s windows.

use std::path::{Path, PathBuf};

use super::{LOCUST_PERCENTILES, Report};
use crate::error::{Error, Result};

/// Locust's percentile column names (`50%` … `100%`).
pub fn percentile_names() -> Vec<String> {
    LOCUST_PERCENTILES
        .iter()
        .map(|p| {
            let v = p * 100.0;
            if v.fract() == 0.0 {
                format!("{}%", v as u64)
            } else {
                format!("{}%", (v * 1e6).round() / 1e6)
            }
        })
        .collect()
}

/// `_stats.csv` header.
pub fn stats_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Average Content Size",
        "Requests/s",
        "Failures/s",
    ]
    .map(String::from)
    .to_vec();
    h.extend(percentile_names());
    h
}

/// `_stats_history.csv` header.
pub fn history_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "Timestamp",
        "User Count",
        "Type",
        "Name",
        "Requests/s",
        "Failures/s",
    ]
    .map(String::from)
    .to_vec();
    h.extend(percentile_names());
    h.extend(
        [
            "Total Request Count",
            "Total Failure Count",
            "Total Median Response Time",
            "Total Average Response Time",
            "Total Min Response Time",
            "Total Max Response Time",
            "Total Average Content Size",
        ]
        .map(String::from),
    );
    h
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV record, CRLF-terminated as Python's `csv` module (and so Locust) writes them.
fn line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| quote(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push_str("\r\n");
    s
}

/// `prefix` with `suffix` appended to its file name.
pub fn path_with(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write(path: PathBuf, text: String) -> Result<()> {
    std::fs::write(&path, text).map_err(|source| Error::File {
        flag: "--csv",
        path,
        source,
    })
}

/// Unix seconds as Locust's `First Seen`/`Last Seen` (`2026-12-03T11:52:02Z`).
pub fn iso_utc(unix_s: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_s.max(0.0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Mean of `total` over `n`, as Locust writes it (a float; 0 without samples).
fn mean(total: u64, n: u64) -> String {
    if n == 0 {
        "0.0".into()
    } else {
        format!("{:.3}", total as f64 / n as f64)
    }
}

/// Writes the four CSV files for `prefix` (`_stats`, `_stats_history`, `_failures`,
/// `_exceptions`); `method` and `name` label the request row.
pub fn write_all(
    report: &Report,
    prefix: &Path,
    method: &str,
    name: &str,
    locust: &[f64],
) -> Result<()> {
    write(
        path_with(prefix, "_stats.csv"),
        stats(report, method, name, locust),
    )?;
    write(path_with(prefix, "_stats_history.csv"), history(report)?)?;
    let mut fails = line(&failures_header());
    for f in &report.failures {
        fails.push_str(&line(&[
            method.to_string(),
            name.to_string(),
            f.error.clone(),
            f.occurrences.to_string(),
            iso_utc(f.first_seen_unix_s),
            iso_utc(f.last_seen_unix_s),
        ]));
    }
    write(path_with(prefix, "_failures.csv"), fails)?;
    // Locust lists exceptions raised in its users' Python code here; kis-loadgen runs no user
    // code, so the file has Locust's header and no rows (errors are in _failures.csv).
    write(
        path_with(prefix, "_exceptions.csv"),
        line(&["Count", "Message", "Traceback", "Nodes"].map(String::from)),
    )
}

/// `_failures.csv` header (Locust 2.x).
pub fn failures_header() -> Vec<String> {
    [
        "Method",
        "Name",
        "Error",
        "Occurrences",
        "First Seen",
        "Last Seen",
    ]
    .map(String::from)
    .to_vec()
}

fn stats(report: &Report, method: &str, name: &str, locust: &[f64]) -> String {
    let t = &report.totals;
    let c = &report.latency.corrected;
    let secs = report.elapsed_s.max(1e-9);
    let row = |typ: &str, nm: &str| {
        let mut f = vec![
            typ.to_string(),
            nm.to_string(),
            t.requests.to_string(),
            t.errors.to_string(),
            format!("{:.0}", c.p50_ms),
            format!("{:.3}", c.mean_ms),
            format!("{:.3}", c.min_ms),
            format!("{:.3}", c.max_ms),
            mean(t.bytes_in, t.completed),
            format!("{:.3}", t.requests as f64 / secs),
            format!("{:.3}", t.errors as f64 / secs),
        ];
        f.extend(locust.iter().map(|v| format!("{v:.0}")));
        line(&f)
    };
    let mut stats = line(&stats_header());
    stats.push_str(&row(method, name));
    stats.push_str(&row("", "Aggregated"));
    stats
}

fn history(report: &Report) -> Result<String> {
    let mut hist = line(&history_header());
    for r in report.windows.try_iter() {
        let (w, h) = r.map_err(|e| Error::Output {
            what: "window rows",
            reason: e.to_string(),
        })?;
        let mut f = vec![
            format!("{}", w.unix_s as u64),
            // Locust's user count; an open loop has no users, so its requests in flight.
            w.users.unwrap_or(w.in_flight).to_string(),
            String::new(),
            "Aggregated".to_string(),
            format!("{:.6}", w.completed as f64 / w.dt_s.max(1e-9)),
            format!("{:.6}", w.errors as f64 / w.dt_s.max(1e-9)),
        ];
        if h.locust.is_empty() {
            f.extend(LOCUST_PERCENTILES.iter().map(|_| "N/A".to_string()));
        } else {
            f.extend(h.locust.iter().map(|v| format!("{v:.0}")));
        }
        let (n, fails, bytes) = h.total_counts;
        f.extend([
            n.to_string(),
            fails.to_string(),
            format!("{:.0}", h.total.p50_ms),
            format!("{:.3}", h.total.mean_ms),
            format!("{:.3}", h.total.min_ms),
            format!("{:.3}", h.total.max_ms),
            mean(bytes, n),
        ]);
        hist.push_str(&line(&f));
    }
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_names_match_locust() {
        assert_eq!(
            percentile_names(),
            [
                "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"
            ]
        );
    }
}
