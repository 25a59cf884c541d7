//! Learned autoscaler: simulation, training, evaluation and live mode.
//!
//! # Brief overview
//! The `kis-agent` binary's subcommands, as a library so tests call them in-process:
//! - [`simulate`]: one run of the kis-sim simulator, summary + JSON / CSV time series / SVG plot.
//! - [`compare`]: every autoscaler over the four shapes and the held-out traces, several seeds, one
//!   table of means with 95 % confidence intervals.
//! - [`bench`]: simulated requests per wall-clock and CPU second on the standard scenario.
//! - [`tune`]: calibrating the rule-based autoscalers on the validation trace (fixed budget).
//! - [`scenario`]: building simulation configs from files and flags (autoscaler shorthands, traces).

pub mod bench;
pub mod cli;
pub mod compare;
pub mod plot;
pub mod scenario;
pub mod simulate;
pub mod tune;

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Simulate(a) => simulate::run(&a),
        cli::Command::Compare(a) => compare::run(&a),
        cli::Command::Bench(a) => bench::run(&a),
        cli::Command::Tune(a) => tune::run(&a),
    }
}
