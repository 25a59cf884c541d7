//! The `kis-loadgen` binary: parse flags, check them, run, exit 2 on usage errors and 1 on
//! runtime errors, always with one line naming the problem, and 130 when a signal (SIGINT or
//! SIGTERM) cut the run short (its outputs are written all the same).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use kis_loadgen::cli::{Cli, MergeCli};
use kis_loadgen::config::Outputs;
use kis_loadgen::{Config, run};

/// Exit status of a run a signal cut short (128 + SIGINT, as a shell reports Ctrl-C).
const INTERRUPTED: u8 = 130;

/// Help and version on stdout with success; otherwise the first line of clap's message, exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // clap's message has a usage block and a hint; the first line names the problem.
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    eprintln!("kis-loadgen: {}", first.trim_start_matches("error: "));
    ExitCode::from(2)
}

/// `kis-loadgen merge ...`: exit 2 on a refusal (one line), 1 on an output failure.
fn merge() -> ExitCode {
    let m = match MergeCli::try_parse_from(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => return clap_exit(e),
    };
    let outputs = Outputs {
        json: m.json,
        csv: m.csv,
        hdr_log: m.hdr_log,
        plot: m.plot,
        metrics_addr: None,
        quiet: m.quiet,
    };
    let r = kis_loadgen::report::finish::check_outputs(&outputs)
        .and_then(|()| kis_loadgen::merge::report_files(&m.inputs))
        .and_then(|files| kis_loadgen::merge::merge(&files, outputs, m.allow_missing));
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.is_usage() { 2 } else { 1 };
            eprintln!("kis-loadgen merge: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    if std::env::args().nth(1).as_deref() == Some("merge") {
        return merge();
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return clap_exit(e),
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
