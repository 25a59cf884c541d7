//! `kis-agent sim-to-real`'s flags.

use std::path::PathBuf;

use clap::Args;

/// The rule the validation runs use by default: the HPA on Triton's queue (2 waiting requests per
/// pod, as `hpa-queue`) with its time constants compressed like the runs (a 5 s sync, a 15 s
/// scale-down window) and one Pod per step each way (at most one step per 4 s), up to the three
/// emulated GPUs, so that one short run takes several steps up and down.
pub const DEFAULT_RULE: &str = r#"{"kind":"hpa","min_replicas":1,"max_replicas":3,"metrics":[{"type":"external","name":"queue_len","target":{"type":"average-value","value":2.0}}],"behavior":{"scale_up":{"stabilization_window":0.0,"select_policy":"Max","policies":[{"type":"Pods","value":1,"period":4.0}]},"scale_down":{"stabilization_window":15.0,"select_policy":"Max","policies":[{"type":"Pods","value":1,"period":4.0}]}},"sync_period":5.0,"tolerance":0.1}"#;

/// `kis-agent sim-to-real`.
#[derive(Debug, Clone, Args)]
pub struct SimRealArgs {
    /// Run folder (default: out/sim-to-real/YYYY-MM-DD-HH-MM under the current directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Calibration: open-loop Poisson rates (req/s) on one replica through nginx.
    #[arg(long, default_value = "3,9")]
    pub calibrate_rates: String,
    /// Calibration: closed-loop concurrency levels on one replica through nginx.
    #[arg(long, default_value = "1,4")]
    pub calibrate_levels: String,
    /// Calibration: seconds per level.
    #[arg(long, default_value = "20s", value_parser = kis_units::parse_positive_secs)]
    pub calibrate_duration: f64,
    /// Calibration: rounds over the open-loop rates (medians over rounds).
    #[arg(long, default_value_t = 2)]
    pub calibrate_rounds: u32,
    /// Start-up measurement: rounds of 1 → 2 → 3 → 1 replicas (`kubectl scale`, no load); 0
    /// skips it and uses `--startup` instead.
    #[arg(long, default_value_t = 3)]
    pub step_rounds: u32,
    /// Pod start-up (spec change to Ready) in seconds when `--step-rounds 0`.
    #[arg(long, default_value = "5s", value_parser = kis_units::parse_positive_secs)]
    pub startup: f64,
    /// Validation runs, each `SHAPE:MIN:MAX` (ramp, periodic, random, spike, constant), run live
    /// through the closed loop and in kis-sim.
    #[arg(long, default_value = "spike:4:20,ramp:2:24,spike:4:30")]
    pub validate: String,
    /// Length of each validation run.
    #[arg(long, default_value = "90s", value_parser = kis_units::parse_positive_secs)]
    pub duration: f64,
    /// The rule `live` runs (a shorthand or a JSON spec; default: the HPA on queue, compressed).
    #[arg(long, default_value = DEFAULT_RULE)]
    pub rule: String,
    /// The agent's control period.
    #[arg(long, default_value = "5s", value_parser = kis_units::parse_positive_secs)]
    pub period: f64,
    /// Emulated GPUs on the testbed's node (more replicas than this stay Pending).
    #[arg(long, default_value_t = 3)]
    pub gpus: u32,
    /// The scenario `live` reads (bounds, SLO: the table's).
    #[arg(long, default_value = "agent/learn/scenarios/gpu16-randomized.json")]
    pub scenario: String,
    /// Seed of the arrivals (kis-sim replays them).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Relative tolerance of the p95 and SLO-miss verdicts.
    #[arg(long, default_value_t = 0.15)]
    pub tolerance: f64,
}
