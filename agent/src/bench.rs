//! `kis-agent bench`: simulated requests per second on the standard scenario (one simulated hour at
//! 1,000 req/s over 20 replicas), by wall clock and by this thread's CPU time. On a shared machine the
//! CPU-time figure is the one-core speed; the wall-clock one includes waiting for a core.

use std::time::Instant;

use anyhow::Result;
use kis_sim::Simulation;
use serde::Serialize;

use crate::cli::BenchArgs;

/// One repetition.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    /// Requests simulated.
    pub requests: u64,
    /// Events (arrivals included) processed.
    pub events: u64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// CPU seconds of the simulating thread (Linux schedstat), if available.
    pub cpu_s: Option<f64>,
    /// requests / wall_s.
    pub req_per_wall_s: f64,
    /// requests / cpu_s.
    pub req_per_cpu_s: Option<f64>,
    /// Peak resident memory of the process so far, KiB.
    pub peak_rss_kib: Option<u64>,
}

/// This thread's on-CPU time in seconds, from `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

/// Peak resident memory of this process in KiB (`VmHWM`), if available.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the standard scenario once, stretched to `hours` simulated hours.
pub fn once(hours: f64) -> Result<BenchRun> {
    if !(hours.is_finite() && hours > 0.0) {
        anyhow::bail!("--hours must be a positive number, got {hours}");
    }
    let mut cfg = kis_sim::bench::hour_at_1000_rps();
    cfg.workload.shape = cfg.workload.shape.clone().with_duration(3600.0 * hours);
    let c0 = thread_cpu();
    let t0 = Instant::now();
    let s = Simulation::new(cfg)?.run();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = match (c0, thread_cpu()) {
        (Some(a), Some(b)) if b > a => Some(b - a),
        _ => None,
    };
    Ok(BenchRun {
        requests: s.arrivals,
        events: s.events,
        wall_s: wall,
        cpu_s: cpu,
        req_per_wall_s: s.arrivals as f64 / wall,
        req_per_cpu_s: cpu.map(|c| s.arrivals as f64 / c),
        peak_rss_kib: peak_rss_kib(),
    })
}

/// Runs the subcommand.
pub fn run(a: &BenchArgs) -> Result<()> {
    let runs = (0..a.repeat.max(1))
        .map(|_| once(a.hours))
        .collect::<Result<Vec<_>>>()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if cfg!(debug_assertions) {
        println!("note: debug build; measure with `cargo run --release -p kis-agent -- bench`");
    }
    println!(
        "scenario: 1 simulated hour, 1,000 req/s Poisson, 20 GPU replicas (10 ms exp. service)"
    );
    for r in &runs {
        println!(
            "{} requests, {} events: wall {:.3} s ({:.2} M req/s), cpu {} ({} M req/s), peak RSS {} KiB",
            r.requests,
            r.events,
            r.wall_s,
            r.req_per_wall_s / 1e6,
            r.cpu_s.map_or("n/a".into(), |c| format!("{c:.3} s")),
            r.req_per_cpu_s
                .map_or("n/a".into(), |x| format!("{:.2}", x / 1e6)),
            r.peak_rss_kib.map_or("n/a".into(), |k| k.to_string())
        );
    }
    let best = runs
        .iter()
        .filter_map(|r| r.req_per_cpu_s)
        .fold(0.0, f64::max);
    let best_wall = runs.iter().map(|r| r.req_per_wall_s).fold(0.0, f64::max);
    println!(
        "best: {:.2} M simulated req/s per CPU second, {:.2} M per wall second (target 5 M)",
        best / 1e6,
        best_wall / 1e6
    );
    Ok(())
}
