//! Locust-compatible CSV files (`PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv`), with Locust's column names and order so existing analysis keeps
//! working. Times are milliseconds of corrected latency; history rows are 1 s windows.

use std::fmt::Write as _;
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

fn line(fields: &[String]) -> String {
    let mut s = fields
        .iter()
        .map(|f| quote(f))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
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

/// Writes the three CSV files for `prefix`; `method` and `name` label the request row.
pub fn write_all(
    report: &Report,
    prefix: &Path,
    method: &str,
    name: &str,
    locust: &[f64],
) -> Result<()> {
    let t = &report.totals;
    let c = &report.latency.corrected;
    let secs = report.elapsed_s.max(1e-9);
    let avg_size = t.bytes_in.checked_div(t.completed).unwrap_or(0);
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
            avg_size.to_string(),
            format!("{:.3}", t.requests as f64 / secs),
            format!("{:.3}", t.errors as f64 / secs),
        ];
        f.extend(locust.iter().map(|v| format!("{v:.0}")));
        line(&f)
    };
    let mut stats = line(&stats_header());
    stats.push_str(&row(method, name));
    stats.push_str(&row("", "Aggregated"));
    write(path_with(prefix, "_stats.csv"), stats)?;

    let mut hist = line(&history_header());
    for r in report.windows.try_iter() {
        let (w, h) = r.map_err(|e| Error::Output {
            what: "window rows",
            reason: e.to_string(),
        })?;
        let mut f = vec![
            format!("{}", w.unix_s as u64),
            w.in_flight.to_string(),
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
            bytes.checked_div(n).unwrap_or(0).to_string(),
        ]);
        hist.push_str(&line(&f));
    }
    write(path_with(prefix, "_stats_history.csv"), hist)?;

    let mut fails = line(&["Method", "Name", "Error", "Occurrences"].map(String::from));
    for (kind, n) in &t.errors_by_kind {
        let what = if kind == "status" {
            let codes: Vec<String> = t
                .by_status
                .iter()
                .filter(|(k, _)| !k.starts_with('2'))
                .map(|(k, v)| format!("HTTP {k} x{v}"))
                .collect();
            format!("status: {}", codes.join(" "))
        } else {
            kind.clone()
        };
        let _ = write!(
            fails,
            "{}",
            line(&[method.to_string(), name.to_string(), what, n.to_string()])
        );
    }
    write(path_with(prefix, "_failures.csv"), fails)
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
