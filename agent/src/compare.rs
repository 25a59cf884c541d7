//! `kis-agent compare`: every autoscaler over the four synthetic shapes and the held-out traces, several
//! seeds each, reported as one table of means with 95 % confidence intervals (Student t over seeds).
//!
//! Setting: the GPU Deployment scales on a cluster of one-GPU nodes (16 by default) with the KIS-S GPU
//! profile; the paper's fixed baselines (GPU-only 1 replica, CPU-only 3 replicas) are included.
//! Workloads, set-ups, runs and statistics come from the shared harness ([`crate::eval`]).

use anyhow::{Context, Result, bail};
use kis_sim::SimConfig;
use serde::Serialize;

use crate::cli::CompareArgs;
use crate::eval::results::{Row, RunResult, aggregate, pm, run_all};
use crate::eval::runner::threads;
use crate::eval::setup::{Setup, base_config_for, compare_setups, filter_setups};
use crate::eval::tuned::tuned_and_policies;
use crate::eval::workload::{Scenario, compare_traces, filter_scenarios, synthetic};

/// The whole comparison, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Base configuration (shape and autoscalers replaced per run).
    pub base: SimConfig,
    /// Workloads.
    pub scenarios: Vec<Scenario>,
    /// Set-ups (of the first scenario; static sizes differ per scenario).
    pub setups: Vec<Setup>,
    /// Aggregates.
    pub rows: Vec<Row>,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// About the data split.
    pub note: String,
}

const NOTE: &str = "Synthetic shapes are training data; traces are the held-out split of shared/traces/README.md \
(never used for tuning). Trace rates are scaled so that their busiest minute uses 80 % of the capacity of the largest GPU pool. \
SLO miss counts requests still queued at the end of a run as missed.";

/// The base config of the comparison.
pub fn base_config(a: &CompareArgs) -> Result<SimConfig> {
    base_config_for(&a.scenario)
}

/// The workloads for `a`.
pub fn scenarios(a: &CompareArgs, base: &SimConfig) -> Result<Vec<Scenario>> {
    let mut out = synthetic(a.duration)?;
    out.extend(compare_traces(&a.traces, base)?);
    filter_scenarios(out, a.scenarios.as_deref())
}

/// Runs the comparison and returns every figure.
pub fn compare(a: &CompareArgs) -> Result<Comparison> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let base = base_config(a)?;
    let scenarios = scenarios(a, &base)?;
    let (tuned, policies) = tuned_and_policies(a.tuned.as_deref(), &a.policies)?;
    let mut setups = Vec::new();
    for sc in &scenarios {
        let p = sc.profile(0)?;
        let mut ss = compare_setups(&base, p.peak_rate(), p.mean_rate())?;
        ss.extend(tuned.iter().cloned());
        ss.extend(policies.iter().cloned().map(Setup::policy));
        setups.push(filter_setups(ss, a.only.as_deref())?);
    }
    let runs = run_all(&base, &scenarios, &setups, a.seeds, threads(a.threads))?;
    let rows = aggregate(&base, &scenarios, &runs)?;
    Ok(Comparison {
        base,
        scenarios,
        setups: setups.into_iter().next().unwrap_or_default(),
        rows,
        runs,
        note: NOTE.into(),
    })
}

/// Renders the table (markdown).
pub fn render(c: &Comparison, seeds: u64) -> String {
    let mut o = String::new();
    o += &format!(
        "Means ± 95 % CI over {seeds} seeds. SLO {:.0} ms. {}\n\n",
        c.base.slo * 1e3,
        c.note
    );
    o += "| scenario | split | autoscaler | p95 (ms) | SLO miss (%) | GPU-hours | CPU replica-hours | scaling actions | objective |\n";
    o += "|---|---|---|---|---|---|---|---|---|\n";
    for r in &c.rows {
        o += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.split,
            r.setup,
            pm(r.p95, 1e3, 0),
            pm(r.slo_miss, 100.0, 2),
            pm(r.gpu_hours, 1.0, 3),
            pm(r.cpu_replica_hours, 1.0, 3),
            pm(r.actions, 1.0, 1),
            pm(r.objective, 1.0, 1)
        );
    }
    o
}

/// Runs the subcommand.
pub fn run(a: &CompareArgs) -> Result<()> {
    let c = compare(a)?;
    let table = render(&c, a.seeds);
    // Printed first, so a run folder that cannot be written loses nothing that was measured.
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{table}");
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let argv: Vec<String> = std::env::args().collect();
        for (name, text) in [
            ("command.txt", format!("{}\n\n{a:#?}\n", argv.join(" "))),
            // Compact: every run's summary is in it, and a run folder stays small.
            ("comparison.json", serde_json::to_string(&c)?),
            ("summary.md", table),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    Ok(())
}
