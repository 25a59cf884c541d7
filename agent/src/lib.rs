//! Learned autoscaler: simulation, training, evaluation and live mode.
//!
//! # Brief overview
//! The `kis-agent` binary's subcommands, as a library so tests call them in-process:
//! - [`simulate`]: one run of the kis-sim simulator, summary + JSON / CSV time series / SVG or PNG plot.
//! - [`compare`]: every autoscaler over the four shapes and the held-out traces, several seeds, one
//!   table of means with 95 % confidence intervals.
//! - [`bench`]: simulated requests per wall-clock and CPU second on the standard scenario.
//! - [`tune`]: calibrating the rule-based autoscalers on the validation trace (fixed budget).
//! - [`evaluate`]: every baseline, the KARB treatments and any policies on the held-out traces, with
//!   paired seeds, confidence intervals, Pareto plots and verdicts.
//! - [`eval`]: the evaluation harness `compare`, `tune` and `evaluate` share (workloads, set-ups,
//!   the `Policy` trait, one parallel map with one progress bar, statistics, Pareto fronts).
//! - [`calibrate`]: a service-time profile measured on a real Triton with kis-loadgen.
//! - [`fidelity`]: the four shapes on the real Triton and in the simulator, side by side.
//! - `train` (cargo feature `train`, links libtorch): PPO on a scenario, writing a policy file.
//! - [`live`]: the closed loop in a cluster: Prometheus and the apiserver in, the policy (or the
//!   rule) under safety modes, targets published through kis-adapter.
//! - [`demo`]: the closed loop on the live testbed, set-up after set-up under one spike: a
//!   comparison table and plots.
//! - [`simreal`]: sim-to-real of the loop's dynamics: kis-sim calibrated on the testbed against
//!   the testbed's closed loop at other rates and shapes.
//! - [`scenario`]: building simulation configs from files and flags (autoscaler shorthands, traces).
//! - [`files`]: the one reader of the agent's TOML / JSON config and scenario files.

#![warn(missing_docs, unreachable_pub)]

pub mod bench;
pub mod calibrate;
pub mod cli;
pub mod compare;
pub mod demo;
pub mod eval;
pub mod evaluate;
pub mod fidelity;
pub mod files;
pub mod live;
pub mod plot;
pub mod scenario;
pub mod simreal;
pub mod simulate;
#[cfg(feature = "train")]
pub mod train;
pub mod tune;

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Simulate(a) => simulate::run(&a),
        cli::Command::Compare(a) => compare::run(&a),
        cli::Command::Bench(a) => bench::run(&a),
        cli::Command::Tune(a) => tune::run(&a),
        cli::Command::Evaluate(a) => evaluate::run(&a),
        cli::Command::Calibrate(a) => calibrate::run(&a),
        cli::Command::Fidelity(a) => fidelity::run(&a),
        cli::Command::Live(a) => live::run(&a),
        cli::Command::Demo(a) => demo::run(&a),
        cli::Command::SimToReal(a) => simreal::run(&a),
        #[cfg(feature = "train")]
        cli::Command::Train(a) => train::run(&a),
    }
}
