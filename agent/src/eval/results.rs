//! Running set-ups over scenarios and seeds (one job list, one parallel map, one progress bar) and
//! aggregating the runs into rows of means with 95 % confidence intervals.

use anyhow::Result;
use kis_sim::{SimConfig, Summary};
use serde::Serialize;

use super::runner::{par_map, progress};
use super::setup::{Setup, run_one};
use super::stats::{Objective, Stat, stat};
use super::workload::Scenario;

/// SLO-miss fraction above which the objective adds its penalty (`tune`'s default).
pub const SLO_MISS_TARGET: f64 = 0.01;

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Setup label.
    pub setup: String,
    /// Seed.
    pub seed: u64,
    /// The run's summary.
    pub summary: Summary,
}

/// Aggregated row: one set-up on one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Split of the scenario.
    pub split: &'static str,
    /// Setup label.
    pub setup: String,
    /// p95 latency, seconds.
    pub p95: Stat,
    /// Fraction of arrivals slow, rejected, killed or unanswered at the end.
    pub slo_miss: Stat,
    /// GPU-hours.
    pub gpu_hours: Stat,
    /// CPU replica-hours.
    pub cpu_replica_hours: Stat,
    /// Scaling actions (both pools).
    pub actions: Stat,
    /// `tune`'s objective for this scenario (see [`objective_for`]), per run.
    pub objective: Stat,
}

/// The objective of `scenario` on `base`'s GPU pool: target [`SLO_MISS_TARGET`], penalty 100 × the
/// full pool's GPU-hours over the scenario.
pub fn objective_for(base: &SimConfig, scenario: &Scenario) -> Result<Objective> {
    let seconds = scenario.profile(0)?.duration();
    Ok(Objective::for_pool(
        SLO_MISS_TARGET,
        base.pools.gpu.max_replicas,
        seconds,
    ))
}

/// Runs `setups[i]` on `scenarios[i]` for seeds `0..seeds`, in parallel, results in job order.
pub fn run_all(
    base: &SimConfig,
    scenarios: &[Scenario],
    setups: &[Vec<Setup>],
    seeds: u64,
    threads: usize,
) -> Result<Vec<RunResult>> {
    let mut jobs = Vec::new();
    for (sc, ss) in scenarios.iter().zip(setups) {
        for s in ss {
            for seed in 0..seeds {
                jobs.push((sc, s, seed));
            }
        }
    }
    let bar = progress(jobs.len() as u64, "runs");
    let runs = par_map(&jobs, threads, &bar, |(sc, setup, seed)| {
        Ok(RunResult {
            scenario: sc.name.clone(),
            setup: setup.label.clone(),
            seed: *seed,
            summary: run_one(base, sc, setup, *seed)?,
        })
    })?;
    bar.finish_and_clear();
    Ok(runs)
}

/// One row per (scenario, set-up) in order of first appearance.
pub fn aggregate(base: &SimConfig, scenarios: &[Scenario], runs: &[RunResult]) -> Result<Vec<Row>> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        let k = (r.scenario.as_str(), r.setup.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut rows = Vec::new();
    for (sc, setup) in keys {
        let scenario = scenarios.iter().find(|s| s.name == sc);
        let obj = match scenario {
            Some(s) => Some(objective_for(base, s)?),
            None => None,
        };
        let rs: Vec<&Summary> = runs
            .iter()
            .filter(|r| r.scenario == sc && r.setup == setup)
            .map(|r| &r.summary)
            .collect();
        let f = |g: &dyn Fn(&Summary) -> f64| stat(&rs.iter().map(|s| g(s)).collect::<Vec<_>>());
        rows.push(Row {
            split: scenario.map_or("", |s| s.split),
            scenario: sc.to_string(),
            setup: setup.to_string(),
            p95: f(&|s| s.p95.unwrap_or(f64::NAN)),
            slo_miss: f(&|s| s.slo_miss_fraction),
            gpu_hours: f(&|s| s.gpu_hours),
            cpu_replica_hours: f(&|s| s.pools[1].replica_seconds / 3600.0),
            actions: f(&|s| (s.pools[0].scaling_actions + s.pools[1].scaling_actions) as f64),
            objective: f(&|s| obj.map_or(f64::NAN, |o| o.value(s.slo_miss_fraction, s.gpu_hours))),
        });
    }
    Ok(rows)
}

/// `mean ± ci` scaled, or `-` for no value.
pub fn pm(s: Stat, scale: f64, digits: usize) -> String {
    if s.mean.is_nan() {
        return "-".into();
    }
    format!(
        "{:.*} ± {:.*}",
        digits,
        s.mean * scale,
        digits,
        s.ci95 * scale
    )
}
