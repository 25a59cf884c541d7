//! Command-line flags (clap derive). Raw values only: [`crate::config::Config::try_from`] checks them.

use std::path::PathBuf;

use clap::Parser;

/// Open-loop, coordinated-omission-correct load generator for KServe-v2 (Triton) and plain HTTP.
#[derive(Debug, Clone, Parser)]
#[command(name = "kis-loadgen", version, about)]
pub struct Cli {
    // --- target ---
    /// Server base URL (KServe mode) or full request URL (plain HTTP mode). Only http://.
    #[arg(long, help_heading = "Target")]
    pub url: Option<String>,
    /// KServe-v2 model to drive (default `image` when neither --url nor --method is given).
    #[arg(long, help_heading = "Target")]
    pub model: Option<String>,
    /// Model version (KServe mode).
    #[arg(long, help_heading = "Target")]
    pub model_version: Option<String>,
    /// Send JSON tensors instead of the binary tensor extension.
    #[arg(long, help_heading = "Target")]
    pub json_body: bool,
    /// Input data: `random`, `zero`, or a file of raw little-endian tensor bytes.
    #[arg(long, default_value = "random", help_heading = "Target")]
    pub input: String,
    /// Override an input's shape, e.g. `INPUT0:1,16` (repeatable; -1 dims otherwise become 1).
    #[arg(long, value_name = "NAME:D1,D2", help_heading = "Target")]
    pub shape: Vec<String>,
    /// Plain HTTP mode: method (GET, POST, ...).
    #[arg(long, help_heading = "Target")]
    pub method: Option<String>,
    /// Plain HTTP mode: request body from this file.
    #[arg(long, help_heading = "Target")]
    pub body_file: Option<PathBuf>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long, help_heading = "Target")]
    pub header: Vec<String>,
    /// How long to wait for the server (and model) to be ready before the run.
    #[arg(long, default_value = "10s", value_parser = kis_units::parse_secs, help_heading = "Target")]
    pub ready_timeout: f64,

    // --- load ---
    /// Traffic shape: constant, ramp, periodic, random, spike or trace (rate in requests/s;
    /// default ramp). With --users, the number of active users follows the shape instead.
    #[arg(long, help_heading = "Load")]
    pub pattern: Option<String>,
    /// Trace CSV (`t_seconds,rate_rps`) for --pattern trace.
    #[arg(long, help_heading = "Load")]
    pub trace: Option<PathBuf>,
    /// Constant pattern: requests/s.
    #[arg(long, help_heading = "Load")]
    pub rate: Option<f64>,
    /// Low rate: ramp start, periodic/random minimum, spike base.
    #[arg(long, help_heading = "Load")]
    pub min: Option<f64>,
    /// High rate: ramp end, periodic/random maximum, spike peak.
    #[arg(long, help_heading = "Load")]
    pub max: Option<f64>,
    /// Ramp: number of equal steps (0 = linear).
    #[arg(long, help_heading = "Load")]
    pub steps: Option<u32>,
    /// Periodic: cycles over the run.
    #[arg(long, help_heading = "Load")]
    pub cycles: Option<f64>,
    /// Random: seconds between new levels.
    #[arg(long, value_parser = kis_units::parse_secs, help_heading = "Load")]
    pub interval: Option<f64>,
    /// Spike: start of the peak as a fraction of the duration.
    #[arg(long, help_heading = "Load")]
    pub spike_start: Option<f64>,
    /// Spike: length of the peak as a fraction of the duration.
    #[arg(long, help_heading = "Load")]
    pub spike_length: Option<f64>,
    /// Trace: multiply every rate by this.
    #[arg(long, help_heading = "Load")]
    pub trace_scale: Option<f64>,
    /// Trace: play the trace this many times faster.
    #[arg(long, help_heading = "Load")]
    pub trace_speedup: Option<f64>,
    /// Trace: start this many trace seconds in.
    #[arg(long, help_heading = "Load")]
    pub trace_offset: Option<f64>,
    /// Run length in wall-clock time (stretches the shape; e.g. `60s`, `5m`); a trace plays
    /// duration x --trace-speedup of trace time. Shape default otherwise (300 s).
    #[arg(long, value_parser = kis_units::parse_secs, help_heading = "Load")]
    pub duration: Option<f64>,
    /// Inter-arrival times: uniform (constant spacing) or poisson.
    #[arg(long, default_value = "uniform", help_heading = "Load")]
    pub arrivals: String,
    /// Seed for random shapes, Poisson arrivals, think times and random input.
    #[arg(long, default_value_t = 1, help_heading = "Load")]
    pub seed: u64,
    /// Closed loop instead: N users, each waiting for its answer, then thinking (--wait).
    #[arg(long, help_heading = "Load")]
    pub users: Option<u32>,
    /// Closed-loop think time `A..B` (uniform, like Locust `between(a, b)`), or one value; `0s` = none.
    #[arg(long, default_value = "1s..2s", help_heading = "Load")]
    pub wait: String,
    /// Most requests in flight at once (default: --connections); that many connections are used.
    #[arg(long, help_heading = "Load")]
    pub max_in_flight: Option<usize>,
    /// What an arrival does when --max-in-flight is reached: queue (charged from its intended time) or drop.
    #[arg(long, default_value = "queue", help_heading = "Load")]
    pub overflow: String,
    /// HTTP/1.1 keep-alive connections (open loop; closed loop uses one per user).
    #[arg(long, default_value_t = 64, help_heading = "Load")]
    pub connections: usize,
    /// Generator threads, each a single-threaded runtime with its own share of the connections
    /// and of the schedule (1 is the cheapest per request).
    #[arg(long, default_value_t = 1, help_heading = "Load")]
    pub threads: usize,
    /// Open loop: generator threads poll instead of sleeping between sends, for a send lag of
    /// microseconds even on a virtual machine, at the cost of one busy core per thread.
    #[arg(long, help_heading = "Load")]
    pub busy_poll: bool,
    /// Send only shard K of N of the schedule (and of the users), e.g. `0/4`: N processes with
    /// the same flags and seed together send exactly the single-process schedule.
    #[arg(long, value_name = "K/N", help_heading = "Load")]
    pub shard: Option<String>,
    /// Number of shards, the index coming from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed
    /// Job); also from the `KIS_LOADGEN_SHARDS` environment variable.
    #[arg(long, value_name = "N", help_heading = "Load")]
    pub shards: Option<u32>,
    /// Start the schedule at this wall-clock time: RFC 3339 in UTC (`2026-12-03T13:00:00Z`) or `+30s` from now, so shards on different machines begin together. The
    /// target must be ready before it; a process ready only after it keeps the schedule and
    /// says how late it started (its due sends count as late).
    #[arg(long, value_name = "TIME", help_heading = "Load")]
    pub start_at: Option<String>,
    /// Name of the run the shards belong to (also `KIS_LOADGEN_RUN_ID`); `merge` refuses
    /// shards of different runs.
    #[arg(long, help_heading = "Load")]
    pub run_id: Option<String>,
    /// How requests of 64 KiB or more are sent: `auto` measures `write`, `sendfile` and
    /// `splice` at start-up (under 0.5 s) and takes the one costing the least CPU per request.
    #[arg(long, value_enum, default_value_t = crate::send::SendMode::Auto, help_heading = "Load")]
    pub send_path: crate::send::SendMode,
    /// Per-request timeout (at most 1 h, the top of the latency histograms).
    #[arg(long, default_value = "60s", value_parser = kis_units::parse_secs, help_heading = "Load")]
    pub timeout: f64,
    /// After the schedule ends or a signal, how long in-flight requests may still finish.
    #[arg(long, default_value = "5s", value_parser = kis_units::parse_secs, help_heading = "Load")]
    pub grace: f64,

    // --- outputs ---
    /// Write the JSON report here.
    #[arg(long, help_heading = "Outputs")]
    pub json: Option<PathBuf>,
    /// Write Locust-compatible PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv,
    /// PREFIX_exceptions.csv.
    #[arg(long, value_name = "PREFIX", help_heading = "Outputs")]
    pub csv: Option<PathBuf>,
    /// Write an HdrHistogram interval log (1 s intervals; tags corrected, service, lag).
    #[arg(long, help_heading = "Outputs")]
    pub hdr_log: Option<PathBuf>,
    /// Serve Prometheus /metrics on this address while running (e.g. 127.0.0.1:9464).
    #[arg(long, help_heading = "Outputs")]
    pub metrics_addr: Option<String>,
    /// Write a plot of rate and latency over time (.png or .svg).
    #[arg(long, help_heading = "Outputs")]
    pub plot: Option<PathBuf>,
    /// No status line and no summary table.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `kis-loadgen merge DIR|FILES...`: the shards of one run into one report (see [`crate::merge`]).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kis-loadgen merge",
    about = "Merge the shards of one run (their JSON reports and HDR interval logs) into the outputs one process writes"
)]
pub struct MergeCli {
    /// Shard JSON reports, or directories of them (`*.json`); each shard's --hdr-log is looked
    /// for beside its report, then at the path the shard wrote it to.
    #[arg(required = true, value_name = "DIR|FILE")]
    pub inputs: Vec<PathBuf>,
    /// Write the merged JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the merged Locust CSVs with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write the merged HDR interval log here.
    #[arg(long)]
    pub hdr_log: Option<PathBuf>,
    /// Write the merged plot here (.png or .svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Merge even when some shards are missing (they are named in a warning).
    #[arg(long)]
    pub allow_missing: bool,
    /// No shard table and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_aim_at_the_quick_start() {
        let c = Cli::parse_from(["kis-loadgen"]);
        // No --pattern: the open loop's default shape (ramp, checked in config) applies.
        assert_eq!(c.pattern, None);
        assert!(c.url.is_none() && c.model.is_none());
        assert_eq!(c.wait, "1s..2s");
    }
}
