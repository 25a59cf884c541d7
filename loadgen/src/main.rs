//! The `kis-loadgen` binary: parse flags, check them, run, exit 2 on usage errors and 1 on
//! runtime errors, always with one line naming the problem, and 130 when a signal (SIGINT or
//! SIGTERM) cut the run short (its outputs are written all the same).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use kis_loadgen::cli::Cli;
use kis_loadgen::{Config, run};

/// Exit status of a run a signal cut short (128 + SIGINT, as a shell reports Ctrl-C).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message has a usage block and a hint; the first line names the problem.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("kis-loadgen: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let cfg = match Config::try_from(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kis-loadgen: {:#}", anyhow::Error::from(e));
            return ExitCode::from(2);
        }
    };
    match run(cfg) {
        Ok(r) if r.interrupted => ExitCode::from(INTERRUPTED),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.is_usage() { 2 } else { 1 };
            // The error and its causes on one line ("context: cause").
            eprintln!("kis-loadgen: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}
