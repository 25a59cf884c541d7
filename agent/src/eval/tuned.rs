//! The file `tune --out` writes and `compare --tuned` / `evaluate --tuned` read: the tuned specs with
//! their default and tuned scores, and the set-ups they become.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use kis_autoscale::AutoscalerSpec;
use kis_sim::ScalerSpec;
use serde::{Deserialize, Serialize};

use super::policy::{self, PolicySetup};
use super::setup::Setup;

/// Mean figures of one candidate over the seeds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Score {
    /// Fraction of arrivals slow, rejected, killed or still unanswered at the end.
    pub slo_miss: f64,
    /// GPU replica-hours (simulated time).
    pub gpu_hours: f64,
    /// The objective minimised.
    pub objective: f64,
}

/// One parameter, default and tuned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParamValue {
    /// Name as in `param_space()`.
    pub name: String,
    /// The shorthand's value.
    pub default: f64,
    /// The tuned value.
    pub tuned: f64,
}

/// One tuned autoscaler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tuned {
    /// Shorthand (`hpa-cpu`, ...); set-ups label it `<name>-tuned`.
    pub autoscaler: String,
    /// The tuned spec (GPU pool).
    pub spec: AutoscalerSpec,
    /// Default's score.
    pub default: Score,
    /// Tuned score.
    pub tuned: Score,
    /// Parameters.
    pub params: Vec<ParamValue>,
    /// Candidates evaluated (each on every seed).
    pub evaluations: usize,
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TunedFile {
    /// What the workload was.
    pub workload: String,
    /// Rate scale applied to the trace.
    pub scale: f64,
    /// Trace seconds per simulated second.
    pub speedup: f64,
    /// SLO-miss target of the objective.
    pub slo_miss_target: f64,
    /// Penalty per unit of SLO-miss fraction above the target (GPU-hours).
    pub penalty: f64,
    /// Candidates per autoscaler.
    pub budget: usize,
    /// Seeds per candidate.
    pub seeds: u64,
    /// Search seed.
    pub seed: u64,
    /// Results.
    pub tuned: Vec<Tuned>,
}

/// Reads a `tune --out` file as set-ups labelled `<autoscaler>-tuned` (GPU pool from 1 replica).
pub fn load_tuned(path: &Path) -> Result<Vec<Setup>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read tuned specs {}", path.display()))?;
    let f: TunedFile =
        serde_json::from_str(&text).map_err(|e| anyhow!("tuned specs {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for t in f.tuned {
        t.spec
            .validate()
            .with_context(|| format!("tuned specs {}: {}", path.display(), t.autoscaler))?;
        out.push(Setup::gpu(
            format!("{}-tuned", t.autoscaler),
            1,
            Some(ScalerSpec::Rule(t.spec)),
        ));
    }
    Ok(out)
}

/// The `--tuned FILE` and `--policy P...` flags `compare` and `evaluate` share, loaded.
pub fn tuned_and_policies(
    tuned: Option<&Path>,
    policies: &[String],
) -> Result<(Vec<Setup>, Vec<PolicySetup>)> {
    let tuned = match tuned {
        Some(p) => load_tuned(p)?,
        None => Vec::new(),
    };
    let policies = policies
        .iter()
        .map(|p| policy::builtin(p).with_context(|| format!("--policy {p}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((tuned, policies))
}
