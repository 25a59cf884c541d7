//! `kis-agent simulate`: one run, its summary, and optional JSON, CSV time series and SVG or PNG plot.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use kis_sim::{SeriesRow, SimConfig, Simulation, Summary};
use serde::Serialize;

use crate::cli::SimulateArgs;
use crate::scenario::simulate_config;

/// The JSON document `--json` prints: the effective config and the summary.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// What was simulated.
    pub config: &'a SimConfig,
    /// The results.
    pub summary: &'a Summary,
}

/// Runs the subcommand.
pub fn run(a: &SimulateArgs) -> Result<()> {
    let cfg = simulate_config(a)?;
    if a.print_config {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let mut sim = Simulation::new(cfg.clone())?;
    let summary = sim.run();
    if let Some(p) = &a.csv {
        write_csv(p, sim.series())?;
    }
    if let Some(p) = &a.plot {
        let title = format!(
            "{} | GPU {} | CPU {} | seed {}",
            cfg.workload.shape.pattern(),
            summary.pools[0].autoscaler,
            summary.pools[1].autoscaler,
            cfg.seed
        );
        crate::plot::write_plot(p, &title, sim.series(), cfg.slo)?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(
            &mut out,
            &Report {
                config: &cfg,
                summary: &summary,
            },
        )?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&summary))?;
    }
    Ok(())
}

fn ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1} ms", v * 1e3))
}

/// The human-readable summary.
pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    o += &format!(
        "simulated {:.0} s, seed {}: {} arrivals, {} completed, {} rejected ({} with no Ready pod), {} killed, {} in flight\n",
        s.simulated_seconds,
        s.seed,
        s.arrivals,
        s.completed,
        s.rejected,
        s.rejected_no_endpoint,
        s.killed,
        s.in_flight
    );
    o += &format!(
        "latency: mean {}  p50 {}  p95 {}  p99 {}  max {}\n",
        ms(s.mean_latency),
        ms(s.p50),
        ms(s.p95),
        ms(s.p99),
        ms(s.max_latency)
    );
    o += &format!(
        "SLO {:.0} ms: {} of completed over, {} of arrivals missed (slow + rejected + killed)\n",
        s.slo * 1e3,
        pct(s.over_slo_fraction),
        pct(s.slo_miss_fraction)
    );
    o += &format!("GPU-hours: {:.3}\n", s.gpu_hours);
    o += "pool  autoscaler            replica-s  mean repl  max  final  actions  util     p95\n";
    for p in &s.pools {
        o += &format!(
            "{:<5} {:<20} {:>10.0} {:>10.2} {:>4} {:>6} {:>8} {:>5.1} %  {}\n",
            format!("{:?}", p.pool).to_lowercase(),
            p.autoscaler,
            p.replica_seconds,
            p.mean_replicas,
            p.max_replicas,
            p.final_replicas,
            p.scaling_actions,
            p.utilization * 100.0,
            ms(p.p95)
        );
    }
    o
}

/// Writes the time series with a header row; empty latency cells when nothing completed.
pub fn write_csv(path: &Path, rows: &[SeriesRow]) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    writeln!(
        f,
        "t,offered_rps,throughput_rps,rejected,p50_s,p95_s,gpu_spec,gpu_ready,cpu_spec,cpu_ready,gpu_util,cpu_util,queue,in_flight"
    )?;
    let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.6}"));
    for r in rows {
        writeln!(
            f,
            "{},{:.3},{:.3},{},{},{},{},{},{},{},{:.4},{:.4},{},{}",
            r.t,
            r.offered_rps,
            r.throughput_rps,
            r.rejected,
            opt(r.p50),
            opt(r.p95),
            r.gpu_spec,
            r.gpu_ready,
            r.cpu_spec,
            r.cpu_ready,
            r.gpu_util,
            r.cpu_util,
            r.queue,
            r.in_flight
        )?;
    }
    f.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
