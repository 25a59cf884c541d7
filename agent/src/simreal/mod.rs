//! `kis-agent sim-to-real`: does kis-sim, calibrated on the testbed, reproduce the closed loop's
//! dynamics there? On the live testbed it (1) calibrates one emulated GPU replica through nginx
//! with `calibrate`'s code at constant rates and closed-loop levels, (2) measures the Pods'
//! start-up (spec change to Ready) with `kubectl scale`, (3) runs validation scenarios at other
//! rates and shapes through the closed loop (`kis-agent live --mode full` with a rule, the real
//! HPA of deploy/v1.20/hpa-gpu.yaml, nginx), and (4) runs each in kis-sim with that profile and
//! start-up, the same seeded arrivals, the same rule at the same period and phase, and the same
//! HPA. One table of sim vs live per scenario (p95, SLO miss, throughput, scale-step times) with
//! verdicts, and a plot of the replicas per scenario, in a run folder.
//!
//! - [`args`]: the flags;
//! - [`measure`]: the testbed side (calibration, start-up, live runs);
//! - [`sim`]: the simulated side (pure);
//! - [`compare`]: steps, rows, verdicts, table, plot (pure).

mod args;
pub mod compare;
pub mod measure;
pub mod sim;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use kis_sim::{Device, ScalerSpec};

pub use args::{DEFAULT_RULE, SimRealArgs};

use crate::demo::{self, Bins, LoopSettings};
use compare::Row;

/// One validation scenario: `SHAPE:MIN:MAX`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Its label.
    pub name: String,
    /// The shape.
    pub pattern: String,
    /// Lowest rate, req/s.
    pub min: f64,
    /// Highest rate, req/s.
    pub max: f64,
}

/// Parses `--validate`.
pub fn parse_scenarios(s: &str) -> Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let f: Vec<&str> = part.split(':').collect();
        let num = |x: &str| x.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0);
        let (Some(min), Some(max)) = (f.get(1).and_then(|x| num(x)), f.get(2).and_then(|x| num(x)))
        else {
            bail!("--validate {part:?}: expected SHAPE:MIN:MAX with rates > 0");
        };
        if f.len() != 3 || max < min {
            bail!("--validate {part:?}: expected SHAPE:MIN:MAX with MIN <= MAX");
        }
        crate::fidelity::shape_spec(f[0], min, max, 60.0)
            .with_context(|| format!("--validate {part:?}"))?;
        out.push(Scenario {
            name: part.to_string(),
            pattern: f[0].to_string(),
            min,
            max,
        });
    }
    if out.is_empty() {
        bail!("--validate: no scenario");
    }
    Ok(out)
}

/// The checked inputs of a run.
#[derive(Debug)]
struct Plan {
    scenarios: Vec<Scenario>,
    levels: Vec<u32>,
    rates: Vec<f64>,
    rule: kis_autoscale::AutoscalerSpec,
    bounds: (u32, u32),
    slo: f64,
}

fn plan(a: &SimRealArgs) -> Result<Plan> {
    if !(a.tolerance.is_finite() && a.tolerance > 0.0) {
        bail!("--tolerance must be > 0, got {}", a.tolerance);
    }
    if a.gpus == 0 {
        bail!("--gpus must be at least 1");
    }
    let scenarios = parse_scenarios(&a.validate)?;
    // The calibration's flags are `calibrate`'s, checked by its own parser.
    let o = crate::calibrate::Options::from_args(&crate::cli::CalibrateArgs {
        url: String::new(),
        model: String::new(),
        out: PathBuf::new(),
        levels: a.calibrate_levels.clone(),
        duration: a.calibrate_duration,
        open_rates: a.calibrate_rates.clone(),
        open_duration: None,
        open_rounds: a.calibrate_rounds,
        warmup: 2.0,
        seed: a.seed,
        levels_json: None,
    })
    .map_err(|e| {
        anyhow!(
            "{}",
            e.to_string()
                .replace("--open-rates", "--calibrate-rates")
                .replace("--open-rounds", "--calibrate-rounds")
                .replace("--levels", "--calibrate-levels")
        )
    })?;
    let scenario = crate::live::config::load_scenario(&a.scenario)?;
    let slo = scenario.sim.slo;
    let rule = match crate::scenario::parse_autoscaler(&a.rule, &scenario.sim.pools.gpu, slo)
        .with_context(|| format!("--rule {}", a.rule))?
    {
        Some(ScalerSpec::Rule(r)) => r,
        _ => bail!("--rule {}: needs a rule that reads live metrics", a.rule),
    };
    rule.build()
        .map_err(|e| anyhow!("--rule {}: {e}", a.rule))?;
    // What `live` may publish for the GPU pool (its clamp): the scenario's capacity.
    let cap = scenario.capacity(&scenario.sim);
    let bounds = (cap.min_replicas[0].max(1), cap.upper(0));
    Ok(Plan {
        scenarios,
        levels: o.levels,
        rates: o.open_rates,
        rule,
        bounds,
        slo,
    })
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Runs the experiment; prints the table and the run folder.
pub fn run(a: &SimRealArgs) -> Result<()> {
    let p = plan(a)?;
    let bins = Bins::locate()?;
    let workspace = std::env::current_dir()?;
    if !workspace.join("deploy/v1.20/hpa-gpu.yaml").is_file() {
        bail!("run it from the repository root (deploy/v1.20/hpa-gpu.yaml not found)");
    }
    let out = demo::new_run_folder(a.out.as_deref(), "out/sim-to-real")?;
    let argv: Vec<String> = std::env::args().collect();
    std::fs::write(out.join("command.txt"), argv.join(" ") + "\n")?;
    let load_before = load_average();
    demo::testbed::install_signal_handler();
    let t0 = Instant::now();
    let say = |m: String| {
        eprintln!(
            "kis-agent sim-to-real [{:>4.0} s]: {m}",
            t0.elapsed().as_secs_f64()
        )
    };
    say(format!(
        "bringing the testbed up; run folder {}",
        out.display()
    ));
    let (tb, token) = demo::bring_up(&bins, a.gpus, &out)?;
    let (cal, startup) = calibrate_and_start_up(a, &p, &tb, &out, &say)?;
    let ctx = measure::LiveContext {
        bins: &bins,
        tb: &tb,
        workspace: &workspace,
        token: &token,
        settings: LoopSettings {
            scenario: &a.scenario,
            period: a.period,
        },
        rule: &a.rule,
        slo: p.slo,
        seed: a.seed,
    };
    let mut rows = Vec::new();
    for (i, sc) in p.scenarios.iter().enumerate() {
        say(format!(
            "[{}/{}] {}: live ({:.0} s)",
            i + 1,
            p.scenarios.len(),
            sc.name,
            a.duration
        ));
        let dir = out.join(sc.name.replace(':', "-"));
        std::fs::create_dir_all(&dir)?;
        let setup = sim::SimSetup {
            profile: cal.profile.clone(),
            model: cal.config.clone(),
            startup: startup.clone(),
            gpus: a.gpus,
            rule: p.rule.clone(),
            bounds: p.bounds,
            period: a.period,
            phase: 0.0,
            slo: p.slo,
            drain: measure::DRAIN_S,
        };
        rows.push(validate(&ctx, sc, a, setup, &dir)?);
    }
    drop(tb);
    let load_after = load_average();
    let wall = t0.elapsed().as_secs_f64();
    let table = compare::markdown(&rows, a.tolerance, sim::TESTBED_HPA_SYNC_S);
    std::fs::write(out.join("table.md"), &table)?;
    std::fs::write(out.join("steps.csv"), compare::steps_csv(&rows))?;
    std::fs::write(
        out.join("rows.json"),
        serde_json::to_string_pretty(&rows)? + "\n",
    )?;
    std::fs::write(
        out.join("machine.txt"),
        format!(
            "nproc {}\nload average (1 min) before {load_before}, after {load_after}\nwall {wall:.0} s\n\
             The machine was shared with other sessions' builds and tests during the run.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    )?;
    let facts = Facts {
        a,
        p: &p,
        cal: &cal,
        startup: &startup,
        load: (&load_before, &load_after),
        wall,
    };
    std::fs::write(out.join("summary.md"), summary(&facts, &out, &table)?)?;
    println!("{table}");
    println!("run folder {} ({wall:.0} s)", out.display());
    Ok(())
}

/// Steps 1 and 2 on the testbed: the calibrated profile (written to the run folder) and the
/// measured start-up times (or `--startup`).
fn calibrate_and_start_up(
    a: &SimRealArgs,
    p: &Plan,
    tb: &demo::testbed::Testbed,
    out: &Path,
    say: &dyn Fn(String),
) -> Result<(crate::calibrate::Calibration, Vec<f64>)> {
    say(format!(
        "calibrating one replica through nginx: closed {:?}, open {:?} req/s x {} rounds, {:.0} s each",
        p.levels, p.rates, a.calibrate_rounds, a.calibrate_duration
    ));
    let mut cal = measure::calibrate_replica(
        tb,
        p.levels.clone(),
        p.rates.clone(),
        a.calibrate_duration,
        a.calibrate_rounds,
        a.seed,
    )?;
    cal.profile.device = Device::Gpu;
    crate::calibrate::write_profile(&out.join("profile.json"), &cal.profile)?;
    std::fs::write(out.join("calibration.txt"), crate::calibrate::render(&cal))?;
    std::fs::write(
        out.join("calibration.json"),
        serde_json::to_string_pretty(&cal)? + "\n",
    )?;
    let startup: Vec<f64> = if a.step_rounds > 0 {
        say(format!("measuring Pod start-up: {} rounds", a.step_rounds));
        let s = measure::measure_startup(tb, a.step_rounds)?;
        let mut csv = String::from("from,to,pod,seconds\n");
        for x in &s {
            let _ = writeln!(csv, "{},{},{},{:.3}", x.from, x.to, x.pod, x.seconds);
        }
        std::fs::write(out.join("startup.csv"), csv)?;
        s.iter().map(|x| x.seconds).collect()
    } else {
        vec![a.startup]
    };
    Ok((cal, startup))
}

/// What the summary reports besides the table.
struct Facts<'a> {
    a: &'a SimRealArgs,
    p: &'a Plan,
    cal: &'a crate::calibrate::Calibration,
    startup: &'a [f64],
    load: (&'a str, &'a str),
    wall: f64,
}

/// summary.md: what ran, how kis-sim was set up, the table, the plots.
fn summary(f: &Facts<'_>, out: &Path, table: &str) -> Result<String> {
    let (a, p) = (f.a, f.p);
    let mut st = f.startup.to_vec();
    st.sort_by(f64::total_cmp);
    let batches: Vec<String> = f
        .cal
        .profile
        .batches
        .iter()
        .map(|b| format!("b{} {:.1} ms", b.size, b.latency.mean() * 1e3))
        .collect();
    let mut s = format!(
        "# sim-to-real of the closed loop's dynamics, {}\n\nCommand: `{}`\n\n\
         Machine: {} cores, 1-min load average {} before and {} after, {:.0} s wall; shared with other \
         sessions' builds and tests while it ran (`machine.txt`).\n\n",
        crate::calibrate::now_utc(),
        std::fs::read_to_string(out.join("command.txt"))?.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        f.load.0,
        f.load.1,
        f.wall
    );
    let _ = write!(
        s,
        "**Calibration** (in sample): one `emulated-gpu` replica through nginx, `calibrate`'s code: closed \
         loop at {:?}, open loop at {:?} req/s constant, {:.0} s each, {} round(s) → `profile.json` \
         ({}; `calibration.txt`, `calibration.json`). **Start-up**: {} Pod(s) from `kubectl scale` to \
         Ready, {} → kis-sim's start-up as an empirical distribution (`startup.csv`).\n\n\
         **Validation** (out of sample: other rates and shapes, several replicas, the loop closed): each \
         scenario {:.0} s, Poisson, seed {}, live through `kis-agent live --mode full` (period {:.0} s, \
         rule below) and deploy/v1.20/hpa-gpu.yaml on the testbed, then in kis-sim with the same arrivals, \
         rule, period and phase, HPA and sync period ({:.0} s). SLO {:.0} ms. Rule: `{}`.\n\n",
        p.levels,
        p.rates,
        a.calibrate_duration,
        a.calibrate_rounds,
        batches.join(", "),
        st.len(),
        match st.len() {
            0 => "none".to_string(),
            n => format!(
                "min {:.2} s, median {:.2} s, max {:.2} s",
                st[0],
                st[n / 2],
                st[n - 1]
            ),
        },
        a.duration,
        a.seed,
        a.period,
        sim::TESTBED_HPA_SYNC_S,
        p.slo * 1e3,
        a.rule
    );
    s += table;
    s += "\n| scenario | plot |\n|---|---|\n";
    for sc in &p.scenarios {
        let d = sc.name.replace(':', "-");
        let _ = writeln!(s, "| {} | [{d}/replicas.png]({d}/replicas.png) |", sc.name);
    }
    s += "\nFiles: `table.md`, `rows.json` (every figure and step), `steps.csv` (each scale step live and \
          simulated), per scenario `commands.txt`, `agent.log`, `decisions.jsonl`, `loadgen.json`, \
          `loadgen.hlog`, `replicas.csv` (live spec and Ready every 250 ms), `sim-replicas.csv`, \
          `sim-decisions.csv`, `sim-summary.json`, `replicas.png`. How kis-sim is set up: \
          agent/docs/sim-to-real.md.\n";
    Ok(s)
}

/// One scenario: live, then simulated with the live run's decision phase; its row and plot.
fn validate(
    ctx: &measure::LiveContext<'_>,
    sc: &Scenario,
    a: &SimRealArgs,
    mut setup: sim::SimSetup,
    dir: &Path,
) -> Result<Row> {
    let spec = crate::fidelity::shape_spec(&sc.pattern, sc.min, sc.max, a.duration)?;
    let live = measure::live_run(ctx, &sc.name, &spec, a.duration, dir)?;
    setup.phase = live.phase;
    let rates = spec.build(a.seed)?;
    let offered = rates.mean_rate();
    let live_pts: Vec<(f64, u32, u32)> = live
        .samples
        .iter()
        .map(|x| (x.unix_s - live.start, x.spec, x.ready))
        .filter(|x| x.0 >= 0.0 && x.0 <= a.duration)
        .collect();
    // The live HPA controller's sync phase: its first change of spec (0 without one).
    let hpa_phase = live_pts
        .windows(2)
        .find(|w| w[1].1 != w[0].1)
        .map_or(0.0, |w| w[1].0.rem_euclid(sim::TESTBED_HPA_SYNC_S));
    let s = sim::simulate(&setup, spec, rates, a.seed, hpa_phase)?;
    let mut sim_pts: Vec<(f64, u32, u32)> = s
        .replicas
        .iter()
        .copied()
        .filter(|x| x.0 <= a.duration)
        .collect();
    // Only changes are kept: the last counts hold to the end.
    if let Some(&(_, spec, ready)) = sim_pts.last() {
        sim_pts.push((a.duration, spec, ready));
    }
    let (steps, extra) = compare::pair(&compare::steps(&live_pts), &compare::steps(&sim_pts));
    let sum = &s.summary;
    let row = Row {
        scenario: sc.name.clone(),
        offered_rps: offered,
        live_arrivals: live.row.requests,
        sim_arrivals: sum.arrivals,
        live_p95_ms: live.row.p95_ms,
        sim_p95_ms: sum.p95.unwrap_or(f64::NAN) * 1e3,
        live_slo_miss_pct: live.row.slo_miss_pct,
        sim_slo_miss_pct: 100.0 * sum.slo_miss_fraction,
        live_rps: live.report["totals"]["ok"].as_u64().unwrap_or(0) as f64 / a.duration,
        sim_rps: sum.completed as f64 / a.duration,
        steps,
        extra_sim_steps: extra,
    };
    let mut csv = String::from("t,spec,ready\n");
    for r in &s.replicas {
        let _ = writeln!(csv, "{:.3},{},{}", r.0, r.1, r.2);
    }
    std::fs::write(dir.join("sim-replicas.csv"), csv)?;
    let mut csv = String::from("t,target\n");
    for d in &s.decisions {
        let _ = writeln!(csv, "{:.3},{}", d.0, d.1);
    }
    std::fs::write(dir.join("sim-decisions.csv"), csv)?;
    std::fs::write(
        dir.join("sim-summary.json"),
        serde_json::to_string_pretty(sum)? + "\n",
    )?;
    let offered_pts: Vec<(f64, f64)> = s.series.iter().map(|r| (r.t, r.offered_rps)).collect();
    compare::plot(
        &dir.join("replicas.png"),
        &format!("sim-to-real: {} (seed {})", sc.name, a.seed),
        &live_pts,
        &sim_pts,
        &offered_pts,
    )?;
    eprintln!(
        "kis-agent sim-to-real: {}: p95 live {:.0} ms / sim {:.0} ms, SLO miss {:.2} % / {:.2} %, arrivals {} / {}, agent phase {:.1} s, HPA phase {hpa_phase:.2} s",
        row.scenario,
        row.live_p95_ms,
        row.sim_p95_ms,
        row.live_slo_miss_pct,
        row.sim_slo_miss_pct,
        row.live_arrivals,
        row.sim_arrivals,
        live.phase
    );
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_and_bad_ones_are_named() {
        let v = parse_scenarios("spike:4:20, ramp:2:24").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].pattern.as_str(), v[1].min, v[1].max),
            ("ramp", 2.0, 24.0)
        );
        for bad in [
            "spike:4",
            "spike:20:4",
            "blob:1:2",
            "spike:0:3",
            "spike:a:3",
            "",
        ] {
            let e = parse_scenarios(bad).unwrap_err().to_string();
            assert!(e.contains("--validate"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_default_flags_plan() {
        use clap::Parser;
        #[derive(Parser)]
        struct C {
            #[command(flatten)]
            a: SimRealArgs,
        }
        let mut c = C::parse_from(["x"]);
        c.a.scenario = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/learn/scenarios/gpu16-randomized.json"
        )
        .into();
        let p = plan(&c.a).unwrap();
        assert_eq!(p.levels, [1, 4]);
        assert_eq!(p.rates, [3.0, 9.0]);
        assert_eq!(p.scenarios.len(), 3);
        assert!(p.bounds.0 >= 1 && p.bounds.1 >= 3, "{:?}", p.bounds);
        c.a.rule = "nope".into();
        assert!(plan(&c.a).is_err());
        c.a.rule = DEFAULT_RULE.into();
        c.a.calibrate_rates = "x".into();
        assert!(
            plan(&c.a)
                .unwrap_err()
                .to_string()
                .contains("--calibrate-rates")
        );
    }
}
