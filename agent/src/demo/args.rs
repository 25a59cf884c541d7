//! `kis-agent demo`'s flags.

use std::path::PathBuf;

use clap::Args;

/// `kis-agent demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Also run the forecaster and the HPA on queue length (four set-ups, not two).
    #[arg(long)]
    pub all: bool,
    /// Only these set-ups (comma-separated labels: policy, NAME-tuned, forecast, hpa-queue).
    #[arg(long)]
    pub only: Option<String>,
    /// Run folder (default: out/demo/YYYY-MM-DD-HHMM under the current directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Length of the spike each set-up runs (base, a peak from 20 % to 60 % of it, base).
    #[arg(long, default_value = "150s", value_parser = kis_units::parse_positive_secs)]
    pub duration: f64,
    /// Base rate of the spike, req/s.
    #[arg(long, default_value_t = 4.0)]
    pub min: f64,
    /// Peak rate, req/s (one emulated GPU replica serves about 13).
    #[arg(long, default_value_t = 30.0)]
    pub max: f64,
    /// The agent's control period (the policy was trained at 30 s steps; the demo compresses).
    #[arg(long, default_value = "5s", value_parser = kis_units::parse_positive_secs)]
    pub period: f64,
    /// Emulated GPUs on the testbed's node (more replicas than this stay Pending).
    #[arg(long, default_value_t = 3)]
    pub gpus: u32,
    /// The shipped policy file.
    #[arg(long, default_value = "agent/policies/default.kpol")]
    pub policy: PathBuf,
    /// `kis-agent tune --out` file: the rule with the lowest tuned objective is "the best tuned rule".
    #[arg(long, default_value = "agent/runs/2026-12-03-tune/tuned.json")]
    pub tuned: PathBuf,
    /// The scenario the policy was trained on (its SLO is the table's).
    #[arg(long, default_value = "agent/learn/scenarios/gpu16-randomized.json")]
    pub scenario: String,
    /// Seed of the arrivals (the same for every set-up).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}
