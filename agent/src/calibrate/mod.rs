//! `kis-agent calibrate`: measures a real Triton model with kis-loadgen (in-process, closed loop) at
//! several concurrency levels and turns Triton's statistics extension into a `kis-service-profile/v1`
//! the simulator can run.
//!
//! Per level the model's `/v2/models/M/stats` is read before and after the run; the deltas of
//! `batch_stats[]` give how many batches of each size executed and their compute time
//! (input + infer + output), so dynamic batching at higher concurrency yields the larger batch sizes
//! for free. The per-request time outside the batch ("network": HTTP, (de)serialisation, the client,
//! Triton's frontend and backend IPC) is fitted at each open-loop rate: a quantile table such that
//! kis-sim, running the fitted batches at that Poisson rate, reproduces the client's latency
//! quantiles there (see [`fit_overheads`]); the tables become the profile's `network_by_rate`.
//!
//! Layout: this module measures (the levels, through kis-loadgen's in-process run and its Triton
//! client); `fit` turns levels into a profile; `render` prints them.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kis_sim::ServiceProfile;
use kis_traffic::{ArrivalKind, ShapeSpec};
use serde::Serialize;

use crate::cli::CalibrateArgs;

mod fit;
mod render;

pub use fit::{fit_overheads, fit_ranks, lognormal_cv, median_level, pooled_batches, sim_config};
pub use render::{now_utc, render};

/// Triton's model configuration and statistics, and the client that reads them: one parser and
/// one client for the workspace, in kis-loadgen.
pub use kis_loadgen::kserve::{ModelClient, ModelConfig, ServerStats};

/// One closed-loop level as measured.
#[derive(Clone, Debug, Serialize)]
pub struct Level {
    /// Closed-loop users (requests in flight); 0 for the open-loop level.
    pub concurrency: u32,
    /// The open-loop level's Poisson rate, req/s.
    pub open_rate_rps: Option<f64>,
    /// Which round of the open-loop levels (1-based; 0 for closed-loop levels).
    pub round: u32,
    /// Seconds the level ran.
    pub elapsed_s: f64,
    /// Successful answers.
    pub ok: u64,
    /// Failed requests (client side).
    pub errors: u64,
    /// Answers per second.
    pub throughput_rps: f64,
    /// Client-observed service time, ms.
    pub service_mean_ms: f64,
    /// ms.
    pub service_p50_ms: f64,
    /// ms.
    pub service_p90_ms: f64,
    /// ms.
    pub service_p95_ms: f64,
    /// ms.
    pub service_p99_ms: f64,
    /// ms.
    pub service_p999_ms: f64,
    /// Smallest, ms.
    pub service_min_ms: f64,
    /// Largest, ms.
    pub service_max_ms: f64,
    /// Server: mean request time (receive to response), ms.
    pub server_request_ms: f64,
    /// Server: mean queue time per request, ms.
    pub server_queue_ms: f64,
    /// Server: mean compute time per request (batch time / batch size), ms.
    pub server_compute_ms: f64,
    /// Client service minus server queue and compute, ms.
    pub network_ms: f64,
    /// Fraction of the level the model instances were executing.
    pub busy_fraction: f64,
    /// `(batch size, executions, mean batch time ms)`.
    pub batches: Vec<(u32, u64, f64)>,
}

/// The result of a calibration: the profile, the model's scheduling config and every level.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The fitted profile.
    pub profile: ServiceProfile,
    /// What Triton reported about the model.
    pub config: ModelConfig,
    /// Per level, in the order run.
    pub levels: Vec<Level>,
}

/// Checked options of a calibration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Triton base URL.
    pub url: String,
    /// Model name.
    pub model: String,
    /// Closed-loop concurrency levels.
    pub levels: Vec<u32>,
    /// Seconds per level.
    pub duration: f64,
    /// Rates of the open-loop levels at which the per-request overhead is fitted, ascending (empty:
    /// the lowest closed-loop level sets a constant overhead).
    pub open_rates: Vec<f64>,
    /// Seconds per open-loop level and round.
    pub open_duration: f64,
    /// Rounds over the open-loop rates (each round runs every rate once, in ascending order); the fit
    /// takes each quantile's median over the rounds, so one disturbed run does not set the profile.
    pub open_rounds: u32,
    /// Seconds of unmeasured warm-up before the first level.
    pub warmup: f64,
    /// Seed of the request payloads.
    pub seed: u64,
}

impl Options {
    /// Checks the flags.
    pub fn from_args(a: &CalibrateArgs) -> Result<Options> {
        let mut levels = Vec::new();
        for part in a.levels.split(',') {
            let p = part.trim();
            match p.parse::<u32>() {
                Ok(n) if (1..=1024).contains(&n) => levels.push(n),
                _ => bail!(
                    "--levels {:?}: each level must be a whole number of concurrent requests in 1..=1024, got {p:?}",
                    a.levels
                ),
            }
        }
        levels.sort_unstable();
        levels.dedup();
        let mut open_rates = Vec::new();
        if a.open_rates.trim() != "0" {
            for part in a.open_rates.split(',') {
                let p = part.trim();
                match p.parse::<f64>() {
                    Ok(r) if r.is_finite() && r > 0.0 => open_rates.push(r),
                    _ => bail!(
                        "--open-rates {:?}: each rate must be a number of req/s > 0 (or the whole flag 0 for none), got {p:?}",
                        a.open_rates
                    ),
                }
            }
        }
        open_rates.sort_by(f64::total_cmp);
        open_rates.dedup();
        Ok(Options {
            url: a.url.clone(),
            model: a.model.clone(),
            levels,
            duration: a.duration,
            open_duration: a.open_duration.unwrap_or(a.duration),
            warmup: a.warmup,
            seed: a.seed,
            open_rates,
            open_rounds: match a.open_rounds {
                1..=20 => a.open_rounds,
                n => bail!("--open-rounds must be in 1..=20, got {n}"),
            },
        })
    }
}

/// Runs kis-loadgen for `seconds`: closed loop with `users` users and no think time, or (`open_rate`)
/// open loop with Poisson arrivals at that constant rate.
fn drive(
    server: &ModelClient,
    users: u32,
    open_rate: Option<f64>,
    seconds: f64,
    seed: u64,
) -> Result<kis_loadgen::Report> {
    use kis_loadgen::config::{Target, Wait};
    let target = Target::kserve(server.url(), server.model())?;
    let cfg = match open_rate {
        Some(rate) => kis_loadgen::Config::open_loop(
            target,
            ShapeSpec::Constant {
                rate,
                duration: seconds,
            },
            ArrivalKind::Poisson,
        ),
        None => kis_loadgen::Config::closed_loop(target, users, Wait::NONE, seconds),
    }
    .with_seed(seed)
    .quiet();
    Ok(kis_loadgen::run(cfg)?)
}

/// Measures every level and fits the profile.
pub fn calibrate(o: &Options) -> Result<Calibration> {
    let server = ModelClient::new(&o.url, &o.model)?;
    let config = server.config()?;
    // Behind a load balancer that routes only the model's paths (the testbed's nginx) the
    // server's own metadata is not reachable; the model's config and statistics are.
    let version = server
        .server_version()
        .unwrap_or_else(|e| format!("server version unknown ({e})"));
    server.stats()?;
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let started = now_utc();
    if o.warmup > 0.0 {
        let top = *o.levels.last().unwrap_or(&1);
        drive(&server, top, None, o.warmup, o.seed)?;
    }
    let mut levels = Vec::new();
    let runs = o.levels.iter().map(|&n| (n, None, 0)).chain(
        (1..=o.open_rounds).flat_map(|k| o.open_rates.iter().map(move |&r| (0, Some(r), k))),
    );
    for (i, (n, open, round)) in runs.enumerate() {
        let before = server.stats()?;
        let secs = if open.is_some() {
            o.open_duration
        } else {
            o.duration
        };
        let r = drive(&server, n, open, secs, o.seed + 1 + i as u64)?;
        // Settled: Triton counts a request just after answering it, so wait for every answer.
        let d = server.stats_settled(&before, r.totals.ok)?.since(&before);
        tracing::info!(concurrency = n, ok = r.totals.ok, "level done");
        if r.totals.ok == 0 {
            bail!(
                "level {}: no successful request ({} errors: {:?})",
                open.map_or(format!("c{n}"), |r| format!("open {r} req/s")),
                r.totals.errors,
                r.totals.errors_by_kind
            );
        }
        let per_req = |ns: u64| {
            if d.success > 0 {
                ns as f64 / d.success as f64 * 1e-6
            } else {
                0.0
            }
        };
        // Open loop: latency from the intended send time, as the simulator (and fidelity) count it.
        let svc = if open.is_some() {
            &r.latency.corrected
        } else {
            &r.latency.service
        };
        let queue = per_req(d.queue_ns);
        let compute = per_req(d.batch_compute_ns());
        let elapsed = r.elapsed_s.max(1e-9);
        levels.push(Level {
            concurrency: n,
            open_rate_rps: open,
            round,
            elapsed_s: r.elapsed_s,
            ok: r.totals.ok,
            errors: r.totals.errors,
            throughput_rps: r.totals.ok as f64 / elapsed,
            service_mean_ms: svc.mean_ms,
            service_p50_ms: svc.p50_ms,
            service_p90_ms: svc.p90_ms,
            service_p95_ms: svc.p95_ms,
            service_p99_ms: svc.p99_ms,
            service_p999_ms: svc.p999_ms,
            service_min_ms: svc.min_ms,
            service_max_ms: svc.max_ms,
            server_request_ms: per_req(d.success_ns),
            server_queue_ms: queue,
            server_compute_ms: compute,
            network_ms: (svc.mean_ms - queue - compute).max(0.0),
            busy_fraction: d.batch_compute_ns() as f64 * 1e-9
                / (elapsed * config.instances.max(1) as f64),
            batches: d
                .batches
                .iter()
                .map(|&(s, c, ns)| (s, c, ns as f64 / c as f64 * 1e-6))
                .collect(),
        });
    }
    let profile = fit::fit(&fit::Measured {
        model: &o.model,
        version: &version,
        config: &config,
        levels: &levels,
        options: o,
        started: &started,
        load: &load_before,
    })?;
    Ok(Calibration {
        profile,
        config,
        levels,
    })
}

/// Runs the subcommand: measure, write the profile, print the levels.
pub fn run(a: &CalibrateArgs) -> Result<()> {
    let o = Options::from_args(a)?;
    let c = calibrate(&o)?;
    write_profile(&a.out, &c.profile)?;
    if let Some(p) = &a.levels_json {
        let text = serde_json::to_string_pretty(&c)?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write {}", p.display()))?;
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", render(&c))?;
    writeln!(out, "wrote {}", a.out.display())?;
    Ok(())
}

/// Writes a profile as pretty JSON.
pub fn write_profile(path: &PathBuf, p: &ServiceProfile) -> Result<()> {
    let text = serde_json::to_string_pretty(p)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
