//! `kis-agent fidelity`: does the simulator, fed a calibrated profile, reproduce the real server?
//!
//! Each shape runs twice with the same definition and seed: open loop against the real Triton with
//! kis-loadgen (in-process), and in kis-sim with one replica configured as Triton reports the model
//! (instances, max batch, dynamic-batching delay) and the calibrated profile. The table compares p50
//! and p95 latency (kis-loadgen's corrected latency: from the intended send time, as the simulator
//! measures from arrival) and throughput, with the relative error against a tolerance.

use std::io::Write;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use kis_sim::{ServiceProfile, SimConfig, Simulation, Summary};
use kis_traffic::{ArrivalKind, Pattern, ShapeSpec};
use serde::Serialize;

use crate::calibrate::now_utc;
use crate::cli::FidelityArgs;
use crate::scenario::load_profile;
use kis_loadgen::kserve::{ModelClient, ModelConfig};

/// kis-sim's arrival-stream seed offset (`Simulation::with_rates`): a simulation seeded with
/// `s ^ ARRIVAL_STREAM` draws the arrival times kis-loadgen draws with seed `s`.
pub use kis_sim::ARRIVAL_STREAM;

/// A simulation of one replica of the calibrated model (defined with the fit that runs it).
pub use crate::calibrate::sim_config;

/// Simulates `cfg` once.
pub fn simulate(cfg: SimConfig) -> Result<Summary> {
    let mut sim = Simulation::new(cfg)?;
    Ok(sim.run())
}

/// One shape, real vs simulated.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Shape name.
    pub shape: String,
    /// Mean offered rate, req/s.
    pub offered_rps: f64,
    /// Real p50, ms.
    pub real_p50_ms: f64,
    /// Simulated p50 (mean over seeds), ms.
    pub sim_p50_ms: f64,
    /// Real p95, ms.
    pub real_p95_ms: f64,
    /// Simulated p95, ms.
    pub sim_p95_ms: f64,
    /// Real answers per second of schedule.
    pub real_rps: f64,
    /// Simulated completions per second of schedule.
    pub sim_rps: f64,
    /// Real failed or dropped requests.
    pub real_errors: u64,
    /// Requests kis-loadgen scheduled.
    pub real_arrivals: u64,
    /// Arrivals of the first simulation (equal to `real_arrivals` when the stream is replayed).
    pub sim_arrivals: u64,
}

/// `|sim - real| / real`.
pub fn rel_err(real: f64, sim: f64) -> f64 {
    if real > 0.0 {
        (sim - real).abs() / real
    } else {
        f64::INFINITY
    }
}

impl Row {
    /// The three relative errors: p50, p95, throughput.
    pub fn errors(&self) -> [f64; 3] {
        [
            rel_err(self.real_p50_ms, self.sim_p50_ms),
            rel_err(self.real_p95_ms, self.sim_p95_ms),
            rel_err(self.real_rps, self.sim_rps),
        ]
    }
}

/// The shape of one fidelity row: `pattern` between `min` and `max` req/s (a constant runs at
/// `max`) for `seconds`, the same value for kis-loadgen and kis-sim.
pub fn shape_spec(pattern: &str, min: f64, max: f64, seconds: f64) -> Result<ShapeSpec> {
    let p = Pattern::from_str(pattern).map_err(|e| anyhow!("shape {pattern:?}: {e}"))?;
    Ok(ShapeSpec::default_for(p)
        .with_rates(min, max)
        .with_duration(seconds))
}

/// kis-loadgen's configuration of one shape: open loop, Poisson arrivals, against the model.
fn loadgen_config(server: &ModelClient, spec: ShapeSpec, seed: u64) -> Result<kis_loadgen::Config> {
    let target = kis_loadgen::config::Target::kserve(server.url(), server.model())?;
    Ok(
        kis_loadgen::Config::open_loop(target, spec, ArrivalKind::Poisson)
            .with_seed(seed)
            .quiet(),
    )
}

/// Runs one shape on both sides.
pub fn compare_shape(
    server: &ModelClient,
    model: &ModelConfig,
    profile: &ServiceProfile,
    shape: &str,
    a: &FidelityArgs,
    seconds: f64,
) -> Result<Row> {
    let spec = shape_spec(shape, a.min, a.max, seconds)?;
    let arrivals = ArrivalKind::Poisson;
    let cfg = loadgen_config(server, spec.clone(), a.seed)?;
    // Built once from the shared seed: the random shape's levels are the real run's, and only the
    // arrival and service draws change between simulation seeds.
    let rates = spec.build(a.seed)?;
    let offered = rates.mean_rate();
    let r = kis_loadgen::run(cfg).with_context(|| format!("shape {shape}: kis-loadgen"))?;
    let mut p50 = 0.0;
    let mut p95 = 0.0;
    let mut rps = 0.0;
    let mut sim_arrivals = 0;
    let n = a.sim_seeds.max(1);
    for s in 0..n {
        // kis-sim draws arrivals from `seed ^ ARRIVAL_STREAM` with the same kis-traffic code
        // kis-loadgen uses with its seed, so the first run replays the real run's arrival times
        // exactly (checked below by the count); further seeds draw other arrival streams.
        let seed = (a.seed ^ ARRIVAL_STREAM).wrapping_add(s);
        let cfg = sim_config(profile, model, spec.clone(), arrivals, seed);
        let sum = Simulation::with_rates(cfg, rates.clone())?.run();
        if s == 0 {
            sim_arrivals = sum.arrivals;
        }
        p50 += sum.p50.unwrap_or(0.0) * 1e3;
        p95 += sum.p95.unwrap_or(0.0) * 1e3;
        rps += sum.completed as f64 / seconds;
    }
    let nf = n as f64;
    Ok(Row {
        shape: shape.to_string(),
        offered_rps: offered,
        real_p50_ms: r.latency.corrected.p50_ms,
        sim_p50_ms: p50 / nf,
        real_p95_ms: r.latency.corrected.p95_ms,
        sim_p95_ms: p95 / nf,
        real_rps: r.totals.ok as f64 / seconds,
        sim_rps: rps / nf,
        real_errors: r.totals.errors + r.totals.dropped,
        real_arrivals: r.totals.scheduled,
        sim_arrivals,
    })
}

/// The Markdown table of `rows`.
pub fn render(rows: &[Row], tolerance: f64) -> String {
    let mut o = String::from(
        "| shape | offered req/s | arrivals real / sim | p50 real | p50 sim | err | p95 real | p95 sim | err | req/s real | req/s sim | err |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mark = |e: f64| {
        let flag = if e <= tolerance { "" } else { " ✗" };
        format!("{:.1} %{flag}", e * 100.0)
    };
    let mut misses = 0;
    for r in rows {
        let e = r.errors();
        misses += e.iter().filter(|&&x| x > tolerance).count();
        o += &format!(
            "| {} | {:.1} | {} / {} | {:.1} ms | {:.1} ms | {} | {:.1} ms | {:.1} ms | {} | {:.1} | {:.1} | {} |\n",
            r.shape,
            r.offered_rps,
            r.real_arrivals,
            r.sim_arrivals,
            r.real_p50_ms,
            r.sim_p50_ms,
            mark(e[0]),
            r.real_p95_ms,
            r.sim_p95_ms,
            mark(e[1]),
            r.real_rps,
            r.sim_rps,
            mark(e[2]),
        );
    }
    o += &format!(
        "\n{} of {} figures within {:.0} % (✗ = outside).\n",
        rows.len() * 3 - misses,
        rows.len() * 3,
        tolerance * 100.0
    );
    o
}

/// Runs the subcommand.
pub fn run(a: &FidelityArgs) -> Result<()> {
    let seconds = a.duration;
    if !(a.min.is_finite() && a.max.is_finite() && a.min > 0.0 && a.max >= a.min) {
        bail!(
            "--min/--max: need 0 < min <= max, got {} and {}",
            a.min,
            a.max
        );
    }
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        bail!("--tolerance must be > 0, got {}", a.tolerance);
    }
    let shapes: Vec<&str> = a.shapes.split(',').map(str::trim).collect();
    for s in &shapes {
        if !["ramp", "periodic", "random", "spike", "constant"].contains(s) {
            bail!(
                "--shapes: unknown shape {s:?} (expected ramp, periodic, random, spike or constant)"
            );
        }
    }
    let profile = load_profile(&a.profile)?;
    let server = ModelClient::new(&a.url, &a.model)?;
    let model = server.config()?;
    let version = server.server_version()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = now_utc();
    let mut rows = Vec::new();
    for s in &shapes {
        let row = compare_shape(&server, &model, &profile, s, a, seconds)?;
        tracing::info!(shape = s, "done");
        rows.push(row);
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{started}: {version}, model {} ({} instance(s), max batch {}, queue delay {}), {:.0} s per shape, \
             rates {}..{} req/s, Poisson, seed {}, {} sim seeds; load average at start: {}",
            a.model,
            model.instances,
            model.sim_max_batch(),
            model
                .max_queue_delay
                .map_or("none".into(), |d| format!("{:.0} us", d * 1e6)),
            seconds,
            a.min,
            a.max,
            a.seed,
            a.sim_seeds,
            load.trim()
        )?;
        write!(out, "{}", render(&rows, a.tolerance))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kis_sim::{Device, Dist};

    #[test]
    fn single_replica_config_follows_the_model() {
        let p = ServiceProfile::single(Device::Cpu, Dist::constant(0.01));
        let m = ModelConfig {
            max_batch_size: 16,
            max_queue_delay: Some(0.002),
            instances: 2,
        };
        let cfg = sim_config(
            &p,
            &m,
            ShapeSpec::default_for(kis_traffic::Pattern::Spike),
            ArrivalKind::Poisson,
            3,
        );
        cfg.validate().unwrap();
        assert_eq!(cfg.pools.cpu.replicas, 1);
        assert_eq!(cfg.pools.gpu.replicas, 0);
        assert_eq!(cfg.pools.cpu.instances, 2);
        assert_eq!(cfg.pools.cpu.max_batch, 16);
        let s = simulate(cfg).unwrap();
        assert!(s.conserved());
        assert_eq!(s.pools[0].arrivals, 0, "nothing goes to the empty GPU pool");
    }

    #[test]
    fn table_flags_misses() {
        let r = Row {
            shape: "ramp".into(),
            offered_rps: 10.0,
            real_p50_ms: 10.0,
            sim_p50_ms: 11.0,
            real_p95_ms: 20.0,
            sim_p95_ms: 30.0,
            real_rps: 10.0,
            sim_rps: 10.0,
            real_errors: 0,
            real_arrivals: 100,
            sim_arrivals: 100,
        };
        let t = render(&[r], 0.15);
        assert!(t.contains("10.0 %"), "{t}");
        assert!(t.contains("50.0 % ✗"), "{t}");
        assert!(t.contains("2 of 3 figures"), "{t}");
    }
}
