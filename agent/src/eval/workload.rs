//! The workloads of the harness: the four synthetic shapes (the training split), the held-out traces
//! (the evaluation split of shared/traces/README.md), the validation window `tune` calibrates on, and
//! [`held_out_reason`], the check that refuses held-out data wherever something is tuned or trained.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use kis_sim::SimConfig;
use kis_traffic::{Pattern, Profile, ShapeSpec};
use serde::Serialize;

use crate::scenario::replica_capacity;

/// The validation trace (shared/traces/README.md): days 0–6 only.
pub const VALIDATION_TRACE: &str = "servegen_mlarge_rate_60s.csv";
/// Days of the validation split; days 7–13 of the same file are held out.
pub const VALIDATION_DAYS: f64 = 7.0;
/// Seconds per day.
pub const DAY: f64 = 86_400.0;

/// The held-out traces `compare` runs: file, speedup, part of `--traces short`.
pub const HELD_OUT: [(&str, f64, bool); 5] = [
    ("azure_llm2023_code_rate_1s.csv", 1.0, true),
    ("azure_llm2023_conv_rate_1s.csv", 1.0, true),
    ("twitter2021_spikewindow_rate_1s.csv", 1.0, true),
    ("nasa1995_busiestday_rate_1s.csv", 1.0, false),
    ("twitter2021_rate_60s.csv", 20.0, false),
];

/// Name of the ServeGen held-out scenario (days 7–13 of the validation trace's file).
pub const SERVEGEN_HELD_OUT: &str = "servegen_mlarge_days7-13";

/// A workload.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Shape name or trace file stem.
    pub name: String,
    /// `synthetic` (training data), `validation` or `held-out`.
    pub split: &'static str,
    /// The shape.
    pub shape: ShapeSpec,
    /// Rate scale applied.
    pub scale: f64,
}

impl Scenario {
    /// The scaled rate profile of `seed` (the `random` shape's levels depend on it).
    pub fn profile(&self, seed: u64) -> Result<Profile> {
        Ok(self
            .shape
            .build(seed)
            .map_err(|e| anyhow!("scenario {}: {e}", self.name))?
            .scaled(self.scale))
    }
}

/// Why a trace window is held out (it must not be tuned or trained on), or `None` if it may be.
///
/// The split of shared/traces/README.md, by file name: the five held-out files entirely; ServeGen
/// from day 7 on; and the day of `nasa1995_rate_60s.csv` that `nasa1995_busiestday_rate_1s.csv` was
/// cut from (day 12). `offset` and `limit` are in trace seconds, as in `ShapeSpec::Trace`.
pub fn held_out_reason(path: &Path, offset: f64, limit: Option<f64>) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let end = limit.map_or(f64::INFINITY, |l| offset + l);
    let overlaps = |from_day: f64, to_day: f64| offset < to_day * DAY && end > from_day * DAY;
    if HELD_OUT.iter().any(|(f, _, _)| *f == file) {
        return Some(format!(
            "{file} is a held-out trace (shared/traces/README.md)"
        ));
    }
    if file.starts_with("servegen_mlarge_rate_") && overlaps(VALIDATION_DAYS, f64::INFINITY) {
        return Some(format!(
            "{file} days 7-13 are held out (shared/traces/README.md); the window reaches day {:.2}",
            end.min(1e12) / DAY
        ));
    }
    if file == "nasa1995_rate_60s.csv" && overlaps(12.0, 13.0) {
        return Some(format!(
            "{file} day 12 is the held-out nasa1995_busiestday_rate_1s.csv"
        ));
    }
    None
}

/// The same check for a shape (only traces can be held out).
pub fn shape_held_out(shape: &ShapeSpec) -> Option<String> {
    match shape {
        ShapeSpec::Trace {
            path,
            offset,
            limit,
            ..
        } => held_out_reason(path, *offset, *limit),
        _ => None,
    }
}

/// The four synthetic shapes stretched to `duration` seconds (the training split).
pub fn synthetic(duration: f64) -> Result<Vec<Scenario>> {
    if !(duration.is_finite() && duration > 0.0) {
        bail!("--duration must be a positive number of seconds, got {duration}");
    }
    Ok([
        Pattern::Ramp,
        Pattern::Periodic,
        Pattern::Random,
        Pattern::Spike,
    ]
    .into_iter()
    .map(|p| Scenario {
        name: p.to_string(),
        split: "synthetic",
        shape: ShapeSpec::default_for(p).with_duration(duration),
        scale: 1.0,
    })
    .collect())
}

/// Keeps the scenarios named in `only` (comma-separated); an error if none is left.
pub fn filter_scenarios(mut v: Vec<Scenario>, only: Option<&str>) -> Result<Vec<Scenario>> {
    if let Some(only) = only {
        let want: Vec<&str> = only.split(',').map(str::trim).collect();
        v.retain(|s| want.iter().any(|w| s.name == *w));
        if v.is_empty() {
            bail!("--scenarios {only}: matches none of the scenarios");
        }
    }
    Ok(v)
}

/// The one peak-rate measure, shared with training's randomisation so both scale load alike.
pub use kis_sim::randomize::peak_rate_over;

/// A trace window scaled so that its busiest `window` simulated seconds use 80 % of the largest GPU
/// pool of `base` (scaling the mean to half the capacity overloads even the largest pool for minutes
/// on the burstier traces, which then measures the backlog rather than the autoscaler).
pub fn trace(
    name: String,
    split: &'static str,
    shape: ShapeSpec,
    base: &SimConfig,
    window: f64,
) -> Result<Scenario> {
    let profile = shape.build(0).map_err(|e| anyhow!("trace {name}: {e}"))?;
    let capacity = replica_capacity(&base.pools.gpu) * base.pools.gpu.max_replicas as f64;
    let peak = peak_rate_over(&profile, window);
    Ok(Scenario {
        name,
        split,
        shape,
        scale: if peak > 0.0 {
            0.8 * capacity / peak
        } else {
            1.0
        },
    })
}

/// A trace file in the shared folder as a `ShapeSpec`.
fn shared_trace(file: &str, speedup: f64, offset: f64, limit: Option<f64>) -> Result<ShapeSpec> {
    let dir = kis_traffic::shared_dir()
        .ok_or_else(|| anyhow!("no shared/traces folder found for {file} (set KIS_SHARED_DIR)"))?
        .join("traces");
    Ok(ShapeSpec::Trace {
        path: dir.join(file),
        scale: 1.0,
        speedup,
        offset,
        limit,
    })
}

/// `compare`'s held-out traces: `short` (the three 1–2 h ones) or `all` (the five), scaled by their
/// busiest 60 simulated seconds.
pub fn compare_traces(which: &str, base: &SimConfig) -> Result<Vec<Scenario>> {
    if !matches!(which, "none" | "short" | "all") {
        bail!("--traces must be none, short or all, got {which:?}");
    }
    let mut out = Vec::new();
    if which == "none" {
        return Ok(out);
    }
    for (file, speedup, short) in HELD_OUT {
        if which == "short" && !short {
            continue;
        }
        let shape = shared_trace(file, speedup, 0.0, None)
            .map_err(|e| anyhow!("--traces {which}: {e} (or use --traces none)"))?;
        let name = file.trim_end_matches(".csv").to_string();
        out.push(trace(name, "held-out", shape, base, 60.0)?);
    }
    Ok(out)
}

/// ServeGen days 7–13, replayed at `speedup` and scaled, as `tune` scales its validation days, by the
/// busiest minute of trace time.
pub fn servegen_held_out(base: &SimConfig, speedup: f64) -> Result<Scenario> {
    let shape = shared_trace(
        VALIDATION_TRACE,
        speedup,
        VALIDATION_DAYS * DAY,
        Some(7.0 * DAY),
    )?;
    trace(
        SERVEGEN_HELD_OUT.into(),
        "held-out",
        shape,
        base,
        60.0 / speedup,
    )
}

/// The validation window `tune` calibrates on: `path` days 0..`days` at `speedup`. Refuses held-out
/// data with the reason.
pub fn validation(
    path: &Path,
    name: String,
    days: f64,
    speedup: f64,
    base: &SimConfig,
) -> Result<Scenario> {
    let limit = Some(days * DAY);
    if let Some(why) = held_out_reason(path, 0.0, limit) {
        bail!("refusing to tune on held-out data: {why}");
    }
    let shape = ShapeSpec::Trace {
        path: path.to_path_buf(),
        scale: 1.0,
        speedup,
        offset: 0.0,
        limit,
    };
    // The busiest minute of trace time (60 / speedup simulated seconds): a 60 s simulated window
    // would average a whole hour of the trace at speedup 60 and overload the pool at the peak.
    trace(name, "validation", shape, base, 60.0 / speedup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn held_out_split_by_file_and_window() {
        let p = |f: &str| PathBuf::from("/x/traces").join(f);
        for (f, _, _) in HELD_OUT {
            assert!(held_out_reason(&p(f), 0.0, Some(10.0)).is_some(), "{f}");
        }
        let sg = p(VALIDATION_TRACE);
        assert!(held_out_reason(&sg, 0.0, Some(7.0 * DAY)).is_none());
        assert!(held_out_reason(&sg, 0.0, Some(7.01 * DAY)).is_some());
        assert!(held_out_reason(&sg, 0.0, None).is_some());
        assert!(held_out_reason(&sg, 8.0 * DAY, Some(DAY)).is_some());
        let native = p("servegen_mlarge_rate_600s_native.csv");
        assert!(held_out_reason(&native, 6.0 * DAY, Some(2.0 * DAY)).is_some());
        let nasa = p("nasa1995_rate_60s.csv");
        assert!(held_out_reason(&nasa, 30.0 * DAY, Some(27.0 * DAY)).is_none());
        assert!(held_out_reason(&nasa, 0.0, None).is_some());
        assert!(held_out_reason(&nasa, 11.5 * DAY, Some(0.6 * DAY)).is_some());
        assert!(held_out_reason(&p("my_trace.csv"), 0.0, None).is_none());
    }
}
