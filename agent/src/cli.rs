//! Command-line definitions (clap derive); checked and turned into configs in [`crate::scenario`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kis_traffic::{ArrivalKind, Pattern};

/// Learned autoscaler for GPU/CPU inference on Kubernetes: simulation and evaluation.
#[derive(Debug, Parser)]
#[command(name = "kis-agent", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate one run and print its summary.
    Simulate(SimulateArgs),
    /// Run every autoscaler over the shapes and held-out traces for several seeds.
    Compare(CompareArgs),
    /// Measure simulator speed (simulated requests per second).
    Bench(BenchArgs),
    /// Calibrate the rule-based autoscalers on the validation trace with a fixed budget.
    Tune(TuneArgs),
    /// Every tuned rule, the forecaster, the KARB treatments, the oracle and any policies on the
    /// held-out traces: paired seeds, 95 % CIs, Pareto plots and verdicts, in a run folder.
    Evaluate(EvaluateArgs),
    /// Measure a real Triton model with kis-loadgen and write a service-time profile.
    Calibrate(CalibrateArgs),
    /// Run the four shapes against a real Triton and in the simulator; compare p50, p95, throughput.
    Fidelity(FidelityArgs),
    /// The closed loop in a cluster: read Prometheus and the apiserver, run the policy (or the
    /// rule) under a safety mode, publish targets through kis-adapter.
    Live(crate::live::LiveArgs),
    /// On the live testbed: the shipped policy and the best tuned rule (`--all`: also the
    /// forecaster and the HPA on queue length) under one spike; a comparison table and plots.
    Demo(crate::demo::DemoArgs),
    /// On the live testbed: calibrate kis-sim there, run scenarios at other rates and shapes
    /// through the closed loop and in kis-sim; p95, SLO miss, throughput and scale-step times.
    SimToReal(crate::simreal::SimRealArgs),
    /// Train a PPO policy on a scenario (built with the `train` feature).
    #[cfg(feature = "train")]
    Train(crate::train::TrainArgs),
}

/// The workload and cluster, shared by `simulate` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// Service-time profile of GPU replicas (JSON, schema in agent/sim/README.md); default: the KIS-S
    /// paper's RTX 3080 replica.
    #[arg(long)]
    pub gpu_profile: Option<PathBuf>,
    /// Service-time profile of CPU replicas; default: the KIS-S paper's CPU replica.
    #[arg(long)]
    pub cpu_profile: Option<PathBuf>,
    /// Latency objective in seconds.
    #[arg(long)]
    pub slo: Option<f64>,
    /// GPU nodes in the cluster (one GPU each unless --gpus-per-node).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// GPUs per node.
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
}

/// `kis-agent simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Simulation config (JSON, or TOML by extension); flags given below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Traffic shape.
    #[arg(long)]
    pub pattern: Option<Pattern>,
    /// Trace CSV for `--pattern trace`: a path, or a file name in ../shared/traces/.
    #[arg(long)]
    pub trace: Option<String>,
    /// Multiply the offered rate by this factor.
    #[arg(long)]
    pub scale: Option<f64>,
    /// Trace time compression (trace seconds per simulated second).
    #[arg(long)]
    pub speedup: Option<f64>,
    /// Simulated duration: seconds (`600`) or with a unit (`600s`, `10m`, `1h`); stretches the
    /// shape, and for a trace is the window length.
    #[arg(long, value_parser = kis_units::parse_positive_secs)]
    pub duration: Option<f64>,
    /// Arrival process.
    #[arg(long)]
    pub arrivals: Option<ArrivalKind>,
    /// Seed of the run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Initial GPU replicas.
    #[arg(long)]
    pub gpu_replicas: Option<u32>,
    /// Initial CPU replicas.
    #[arg(long)]
    pub cpu_replicas: Option<u32>,
    /// GPU pool autoscaler: none, fixed:N, hpa-cpu, hpa-queue, keda, knative, forecast, oracle,
    /// external-target, or a JSON spec such as '{"kind":"hpa","max_replicas":8}'.
    #[arg(long)]
    pub gpu_autoscaler: Option<String>,
    /// CPU pool autoscaler (same forms as --gpu-autoscaler).
    #[arg(long)]
    pub cpu_autoscaler: Option<String>,
    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the per-scrape time series as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a plot of load, replicas and latency over time: PNG if FILE ends in .png, SVG if .svg.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the effective configuration as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Cluster and profiles.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

/// `kis-agent compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Seeds per (scenario, autoscaler).
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Simulated time per synthetic shape (the 300 s shapes are stretched to this): seconds or
    /// with a unit (`1800s`, `30m`).
    #[arg(long, default_value = "1800", value_parser = kis_units::parse_positive_secs)]
    pub duration: f64,
    /// Which held-out traces to include: none, short (the three 1-2 h ones) or all.
    #[arg(long, default_value = "short")]
    pub traces: String,
    /// Only these autoscalers (comma-separated labels as printed); default all.
    #[arg(long)]
    pub only: Option<String>,
    /// Only these scenarios (comma-separated: ramp, periodic, random, spike, or trace file stems).
    #[arg(long)]
    pub scenarios: Option<String>,
    /// Print all results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also run the tuned specs of this `kis-agent tune --out` file (labelled `<name>-tuned`).
    #[arg(long)]
    pub tuned: Option<PathBuf>,
    /// Run folder to write (command.txt, comparison.json, summary.md), e.g.
    /// agent/runs/2026-12-03-compare.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also run this policy (repeatable): built-in `hold` or `scripted:g,c,p;g,c,p;...`.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Cluster and profiles.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

/// `kis-agent bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Repetitions (the best is reported, with all of them).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Simulated hours per run (memory must not grow with it).
    #[arg(long, default_value_t = 1.0)]
    pub hours: f64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kis-agent tune`.
#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// Autoscalers to tune (comma-separated: hpa-cpu, hpa-queue, keda, knative, forecast); default
    /// all five.
    #[arg(long)]
    pub autoscaler: Option<String>,
    /// Candidate parameter sets evaluated per autoscaler, the default included.
    #[arg(long, default_value_t = 40)]
    pub budget: usize,
    /// Seeds each candidate runs on (0..seeds, the same for every candidate).
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// Seed of the search.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `validation` (servegen_mlarge_rate_60s.csv days 0-6), or a trace CSV (path or shared name);
    /// held-out traces are refused.
    #[arg(long, default_value = "validation")]
    pub trace: String,
    /// Days of the trace replayed from its start (at most 7 for `validation`).
    #[arg(long, default_value_t = 7.0)]
    pub days: f64,
    /// Trace seconds per simulated second (20: the 7 days take 8.4 simulated hours).
    #[arg(long, default_value_t = 20.0)]
    pub speedup: f64,
    /// SLO-miss fraction above which the objective adds its penalty.
    #[arg(long, default_value_t = 0.01)]
    pub slo_miss_target: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the tuned specs as JSON (for `compare --tuned`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cluster and profiles.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

/// `kis-agent evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// Seeds per (scenario, set-up): 0..N, the same for every set-up (paired by seed).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Tuned specs from `kis-agent tune --out` (without it the rules run with their defaults).
    #[arg(long)]
    pub tuned: Option<PathBuf>,
    /// A policy to evaluate (repeatable): built-in `hold` or `scripted:g,c,p;g,c,p;...`.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Scenarios (comma-separated); default the held-out set: the five `compare` traces and
    /// ServeGen days 7-13 (`servegen_mlarge_days7-13`). The synthetic shapes (ramp, periodic,
    /// random, spike) may be named for checks; they are training data, not an evaluation.
    #[arg(long)]
    pub scenarios: Option<String>,
    /// Only these set-ups (comma-separated label prefixes).
    #[arg(long)]
    pub only: Option<String>,
    /// Simulated time of a synthetic shape: seconds or with a unit.
    #[arg(long, default_value = "1800", value_parser = kis_units::parse_positive_secs)]
    pub duration: f64,
    /// Trace seconds per simulated second for ServeGen days 7-13 (tune's default, 20).
    #[arg(long, default_value_t = 20.0)]
    pub servegen_speedup: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run folder to write (command, runs.csv, runs.jsonl, evaluation.json, summary.md, one Pareto
    /// PNG per scenario), e.g. agent/runs/2026-12-03-evaluate.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the evaluation as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Cluster and profiles.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

/// `kis-agent calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Triton base URL (loopback).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Model to measure.
    #[arg(long, default_value = "image")]
    pub model: String,
    /// Where to write the profile (JSON, kis-service-profile/v1).
    #[arg(long)]
    pub out: PathBuf,
    /// Closed-loop concurrency levels, comma-separated.
    #[arg(long, default_value = "1,2,4,8")]
    pub levels: String,
    /// Run length of each level (e.g. 10s, 500ms, 1m30s; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = kis_units::parse_positive_secs)]
    pub duration: f64,
    /// Rates of the open-loop levels (Poisson, req/s, comma-separated) at which the per-request
    /// overhead and its quantiles are fitted (one `network_by_rate` point each); 0 = none (then the
    /// lowest closed level sets a constant log-normal overhead). `--open-rate` is an alias.
    #[arg(long = "open-rates", alias = "open-rate", default_value = "20,80,150")]
    pub open_rates: String,
    /// Length of each open-loop level in each round (default: --duration). Its tail quantiles need
    /// requests: p99 is fitted from 500 answers per round, p99.9 from 5,000.
    #[arg(long, value_parser = kis_units::parse_positive_secs)]
    pub open_duration: Option<f64>,
    /// Rounds over the open-loop rates (20,80,150,20,80,150,...): the fit uses each latency figure's
    /// median over the rounds, so one disturbed run on a shared machine does not set the profile.
    #[arg(long, default_value_t = 3)]
    pub open_rounds: u32,
    /// Unmeasured warm-up at the highest level before the first (0 = none).
    #[arg(long, default_value = "2s", value_parser = kis_units::parse_secs)]
    pub warmup: f64,
    /// Seed of the request payloads.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write every level's measurements and the model config as JSON.
    #[arg(long)]
    pub levels_json: Option<PathBuf>,
}

/// `kis-agent fidelity`.
#[derive(Debug, Clone, Args)]
pub struct FidelityArgs {
    /// Triton base URL (loopback).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Model to drive.
    #[arg(long, default_value = "image")]
    pub model: String,
    /// The calibrated profile of that model (from `kis-agent calibrate`).
    #[arg(long)]
    pub profile: PathBuf,
    /// Shapes to run, comma-separated (ramp, periodic, random, spike, constant).
    #[arg(long, default_value = "ramp,periodic,random,spike")]
    pub shapes: String,
    /// Lowest rate of every shape (ramp start, periodic/random minimum, spike base), req/s.
    #[arg(long, default_value_t = 20.0)]
    pub min: f64,
    /// Highest rate (ramp end, periodic/random maximum, spike peak), req/s: the defaults are the
    /// rates of the table in agent/docs/fidelity.md.
    #[arg(long, default_value_t = 150.0)]
    pub max: f64,
    /// Length of each shape (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = kis_units::parse_positive_secs)]
    pub duration: f64,
    /// Seed of arrivals and random levels (the same for the real run and the simulation).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulation runs averaged per shape: the first replays the real run's arrival times, the
    /// others draw fresh ones.
    #[arg(long, default_value_t = 1)]
    pub sim_seeds: u64,
    /// Relative error counted as a match.
    #[arg(long, default_value_t = 0.15)]
    pub tolerance: f64,
    /// Print the rows as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}
