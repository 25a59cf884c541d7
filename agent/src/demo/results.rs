//! What one set-up's run measured (kis-loadgen's report and HDR log, the replica samples), the
//! comparison table (markdown and CSV) and the time series the plot draws. Pure, so tested
//! without a testbed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use kis_sim::SeriesRow;
use serde::Serialize;
use serde_json::Value;

use super::testbed::Sample;

/// One row of the comparison table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The set-up.
    pub setup: String,
    /// Requests the schedule produced.
    pub requests: u64,
    /// Share of requests answered later than the SLO or not at all, percent.
    pub slo_miss_pct: f64,
    /// 95th percentile of the corrected latency (intended start to answer), ms.
    pub p95_ms: f64,
    /// Ready GPU replicas integrated over the run, replica-seconds.
    pub gpu_replica_seconds: f64,
    /// Changes of the Deployment's `spec.replicas` during the run.
    pub scaling_actions: u32,
    /// Requests not answered with a 2xx (errors, dropped, cancelled).
    pub requests_lost: u64,
}

/// Counts from kis-loadgen's HDR interval log: (latencies recorded, of which over `slo_s`), from
/// the `corrected` histograms (values in µs).
pub fn slo_counts(hlog: &[u8], slo_s: f64) -> Result<(u64, u64)> {
    let slo_us = (slo_s * 1e6).round() as u64;
    let (mut total, mut over) = (0u64, 0u64);
    kis_loadgen::merge::for_each_interval(hlog, |tag, _, h| {
        if tag == "corrected" {
            total += h.len();
            over += h.len() - h.count_between(0, slo_us);
        }
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok((total, over))
}

/// Ready replica-seconds and `spec.replicas` changes in `[start, end]` (Unix seconds), each
/// sample held until the next.
pub fn replicas(samples: &[Sample], start: f64, end: f64) -> (f64, u32) {
    let mut secs = 0.0;
    let mut actions = 0;
    let mut prev: Option<&Sample> = None;
    for s in samples {
        if let Some(p) = prev {
            let (a, b) = (p.unix_s.max(start), s.unix_s.min(end));
            if b > a {
                secs += f64::from(p.ready) * (b - a);
            }
            if s.spec != p.spec && s.unix_s >= start && s.unix_s <= end {
                actions += 1;
            }
        }
        prev = Some(s);
    }
    if let Some(p) = prev
        && end > p.unix_s.max(start)
    {
        secs += f64::from(p.ready) * (end - p.unix_s.max(start));
    }
    (secs, actions)
}

/// The row of one set-up from kis-loadgen's JSON report, its HDR log and the samples.
pub fn row(
    setup: &str,
    report: &Value,
    hlog: &[u8],
    samples: &[Sample],
    slo_s: f64,
) -> Result<Row> {
    let t = &report["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(0);
    let scheduled = n("scheduled");
    let (recorded, over) = slo_counts(hlog, slo_s)?;
    // An arrival without a recorded latency (lost, cancelled) misses the SLO too.
    let missed = over + scheduled.saturating_sub(recorded);
    let start = report["started_unix_s"]
        .as_f64()
        .context("kis-loadgen's report has no started_unix_s")?;
    let end = start + report["elapsed_s"].as_f64().unwrap_or(0.0);
    let (gpu_replica_seconds, scaling_actions) = replicas(samples, start, end);
    Ok(Row {
        setup: setup.into(),
        requests: scheduled,
        slo_miss_pct: if scheduled == 0 {
            0.0
        } else {
            100.0 * missed.min(scheduled) as f64 / scheduled as f64
        },
        p95_ms: report["latency"]["corrected"]["p95_ms"]
            .as_f64()
            .unwrap_or(f64::NAN),
        gpu_replica_seconds,
        scaling_actions,
        requests_lost: scheduled.saturating_sub(n("ok")),
    })
}

/// The time series of one run for [`crate::plot`]: kis-loadgen's 1 s windows (offered and
/// answered rate, corrected p95) with the GPU pool's spec and Ready replicas at each window's end.
pub fn series(report: &Value, samples: &[Sample]) -> Vec<SeriesRow> {
    let windows = report["windows"].as_array().cloned().unwrap_or_default();
    windows
        .iter()
        .map(|w| {
            let f = |k: &str| w[k].as_f64().unwrap_or(0.0);
            let at = f("unix_s");
            let s = samples
                .iter()
                .rev()
                .find(|s| s.unix_s <= at)
                .or(samples.first());
            let dt = f("dt_s").max(1e-9);
            let p95 = w["corrected"]["p95_ms"].as_f64();
            let count = w["corrected"]["count"].as_u64().unwrap_or(0);
            SeriesRow {
                t: f("t_s"),
                offered_rps: f("intended_rps"),
                throughput_rps: f("ok") / dt,
                rejected: w["errors"].as_u64().unwrap_or(0) + w["dropped"].as_u64().unwrap_or(0),
                p50: w["corrected"]["p50_ms"]
                    .as_f64()
                    .filter(|_| count > 0)
                    .map(|x| x / 1e3),
                p95: p95.filter(|_| count > 0).map(|x| x / 1e3),
                gpu_spec: s.map_or(0, |s| s.spec),
                gpu_ready: s.map_or(0, |s| s.ready),
                cpu_spec: 0,
                cpu_ready: 0,
                gpu_util: 0.0,
                cpu_util: 0.0,
                queue: 0,
                in_flight: w["in_flight"].as_u64().unwrap_or(0),
            }
        })
        .collect()
}

const HEADER: [&str; 7] = [
    "set-up",
    "requests",
    "SLO miss %",
    "p95 ms",
    "GPU replica-s",
    "scaling actions",
    "requests lost",
];

/// The comparison table as markdown.
pub fn markdown(rows: &[Row], slo_s: f64) -> String {
    let mut s = format!("| {} |\n|", HEADER.join(" | "));
    s += &"---|".repeat(HEADER.len());
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.0} | {:.0} | {} | {} |",
            r.setup,
            r.requests,
            r.slo_miss_pct,
            r.p95_ms,
            r.gpu_replica_seconds,
            r.scaling_actions,
            r.requests_lost
        );
    }
    let _ = writeln!(
        s,
        "\nSLO {:.0} ms: a request misses it when answered later (intended start to answer) or not at all.",
        slo_s * 1e3
    );
    s
}

/// The comparison table as CSV (the same columns, machine names).
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "setup,requests,slo_miss_pct,p95_ms,gpu_replica_seconds,scaling_actions,requests_lost\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{:.4},{:.3},{:.3},{},{}",
            r.setup,
            r.requests,
            r.slo_miss_pct,
            r.p95_ms,
            r.gpu_replica_seconds,
            r.scaling_actions,
            r.requests_lost
        );
    }
    s
}

/// The replica samples as CSV.
pub fn samples_csv(samples: &[Sample], path: &Path) -> Result<()> {
    let mut s = String::from("unix_s,spec,ready\n");
    for x in samples {
        let _ = writeln!(s, "{:.3},{},{}", x.unix_s, x.spec, x.ready);
    }
    std::fs::write(path, s).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(unix_s: f64, spec: u32, ready: u32) -> Sample {
        Sample {
            unix_s,
            spec,
            ready,
        }
    }

    #[test]
    fn replica_seconds_hold_each_sample_and_count_spec_changes_in_the_window() {
        let v = [s(0.0, 1, 1), s(10.0, 3, 1), s(20.0, 3, 3), s(30.0, 1, 1)];
        // [5, 40]: 1 x 5 + 1 x 10 + 3 x 10 + 1 x 10.
        let (secs, actions) = replicas(&v, 5.0, 40.0);
        assert!((secs - 55.0).abs() < 1e-9, "{secs}");
        assert_eq!(actions, 2);
        // A window before the scale-up sees no action.
        assert_eq!(replicas(&v, 0.0, 9.0), (9.0, 0));
        assert_eq!(replicas(&[], 0.0, 9.0), (0.0, 0));
    }

    #[test]
    fn slo_misses_count_late_and_unanswered_requests() {
        let dir = std::env::temp_dir().join(format!("kis-demo-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A report and HDR log from the library, as the binary writes them: 20 answered at 0.1 s.
        let hlog = {
            use hdrhistogram::serialization::V2DeflateSerializer;
            use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            h.record_n(100_000, 18).unwrap();
            h.record_n(900_000, 2).unwrap();
            let mut out = Vec::new();
            let mut ser = V2DeflateSerializer::new();
            let mut w = IntervalLogWriterBuilder::new()
                .begin_log_with(&mut out, &mut ser)
                .unwrap();
            w.write_histogram(
                &h,
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(1),
                hdrhistogram::serialization::interval_log::Tag::new("corrected"),
            )
            .unwrap();
            drop(w);
            out
        };
        assert_eq!(slo_counts(&hlog, 0.5).unwrap(), (20, 2));
        let report = serde_json::json!({
            "totals": {"scheduled": 25, "ok": 20},
            "started_unix_s": 100.0, "elapsed_s": 10.0,
            "latency": {"corrected": {"p95_ms": 880.0}},
        });
        let r = row("x", &report, &hlog, &[s(95.0, 2, 2)], 0.5).unwrap();
        // 2 late + 5 never answered of 25.
        assert!((r.slo_miss_pct - 28.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.requests_lost, 5);
        assert!((r.gpu_replica_seconds - 20.0).abs() < 1e-9);
        assert_eq!(r.p95_ms, 880.0);
        let md = markdown(std::slice::from_ref(&r), 0.5);
        assert!(md.contains("| x | 25 | 28.00 | 880 | 20 | 0 | 5 |"), "{md}");
        assert_eq!(csv(&[r]).lines().count(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn series_pairs_windows_with_the_replicas_at_their_end() {
        let report = serde_json::json!({"windows": [
            {"t_s": 1.0, "dt_s": 1.0, "unix_s": 101.0, "intended_rps": 4.0, "ok": 4,
             "errors": 0, "dropped": 0, "in_flight": 1,
             "corrected": {"count": 4, "p50_ms": 80.0, "p95_ms": 90.0}},
            {"t_s": 2.0, "dt_s": 1.0, "unix_s": 102.0, "intended_rps": 4.0, "ok": 0,
             "errors": 1, "dropped": 0, "in_flight": 0,
             "corrected": {"count": 0, "p50_ms": 0.0, "p95_ms": 0.0}},
        ]});
        let rows = series(&report, &[s(100.0, 1, 1), s(101.5, 2, 1)]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].gpu_spec, rows[1].gpu_spec), (1, 2));
        assert_eq!(rows[0].p95, Some(0.09));
        assert_eq!(rows[1].p95, None);
        assert_eq!(rows[1].rejected, 1);
    }
}
