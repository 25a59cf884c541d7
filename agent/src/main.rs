//! `kis-agent`: thin binary over the kis-agent library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kis_agent::live=info")
            }),
        )
        .with_writer(std::io::stderr)
        // Escape codes only on a terminal: log files and pipes get plain `key=value` fields.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = kis_agent::cli::Cli::parse();
    match kis_agent::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kis-agent: {e:#}");
            ExitCode::from(1)
        }
    }
}
