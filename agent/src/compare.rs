//! `kis-agent compare`: every autoscaler over the four synthetic shapes and the held-out traces, several
//! seeds each, reported as one table of means with 95 % confidence intervals (Student t over seeds).
//!
//! Setting: the GPU Deployment scales on a cluster of one-GPU nodes (16 by default) with the KIS-S GPU
//! profile; the paper's fixed baselines (GPU-only 1 replica, CPU-only 3 replicas) are included.
//! Traces are scaled so that their busiest minute uses 80 % of the largest GPU pool's capacity (scaling
//! the mean to half the capacity, as the traces README suggests, overloads even the largest pool for
//! minutes on the burstier traces, which then measures the queue backlog rather than the autoscaler).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kis_autoscale::{AutoscalerSpec, StaticBasis};
use kis_sim::scaler::replicas_for_rate;
use kis_sim::{ScalerSpec, SimConfig, Simulation, Summary};
use kis_traffic::{Pattern, ShapeSpec};
use serde::Serialize;

use crate::cli::{CompareArgs, ScenarioArgs};
use crate::scenario::{apply_scenario, paper_testbed, parse_autoscaler, replica_capacity};

/// Held-out traces (shared/traces/README.md): file, speedup, included in `short`.
const HELD_OUT: [(&str, f64, bool); 5] = [
    ("azure_llm2023_code_rate_1s.csv", 1.0, true),
    ("azure_llm2023_conv_rate_1s.csv", 1.0, true),
    ("twitter2021_spikewindow_rate_1s.csv", 1.0, true),
    ("nasa1995_busiestday_rate_1s.csv", 1.0, false),
    ("twitter2021_rate_60s.csv", 20.0, false),
];

/// A workload of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Shape name or trace file stem.
    pub name: String,
    /// `synthetic` (training data) or `held-out`.
    pub split: &'static str,
    /// The shape.
    pub shape: ShapeSpec,
    /// Rate scale applied.
    pub scale: f64,
}

/// One autoscaling set-up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Label in the table.
    pub label: String,
    /// GPU pool initial replicas and autoscaler.
    pub gpu: (u32, Option<ScalerSpec>),
    /// CPU pool initial replicas and autoscaler.
    pub cpu: (u32, Option<ScalerSpec>),
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Setup label.
    pub setup: String,
    /// Seed.
    pub seed: u64,
    /// The run's summary.
    pub summary: Summary,
}

/// Mean and 95 % half-width.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    /// Mean over seeds.
    pub mean: f64,
    /// Half-width of the 95 % confidence interval of the mean.
    pub ci95: f64,
}

/// Aggregated row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Split of the scenario.
    pub split: &'static str,
    /// Setup label.
    pub setup: String,
    /// p95 latency, seconds.
    pub p95: Stat,
    /// Fraction of arrivals slow, rejected or killed.
    pub slo_miss: Stat,
    /// GPU-hours.
    pub gpu_hours: Stat,
    /// CPU replica-hours.
    pub cpu_replica_hours: Stat,
    /// Scaling actions (both pools).
    pub actions: Stat,
}

/// The whole comparison, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Base configuration (shape and autoscalers replaced per run).
    pub base: SimConfig,
    /// Workloads.
    pub scenarios: Vec<Scenario>,
    /// Set-ups.
    pub setups: Vec<Setup>,
    /// Aggregates.
    pub rows: Vec<Row>,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// About the data split.
    pub note: String,
}

const NOTE: &str = "Synthetic shapes are training data; traces are the held-out split of shared/traces/README.md \
(never used for tuning). Trace rates are scaled so that their busiest minute uses 80 % of the capacity of the largest GPU pool.";

/// Student t 0.975 quantile for `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::NAN,
        1..=10 => T[df - 1],
        11..=20 => 2.131 - (df as f64 - 15.0) * 0.006,
        21..=30 => 2.06,
        _ => 1.96,
    }
}

/// Mean and 95 % CI half-width of `xs`.
pub fn stat(xs: &[f64]) -> Stat {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return Stat {
            mean,
            ci95: f64::NAN,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Stat {
        mean,
        ci95: t975(n - 1) * (var / n as f64).sqrt(),
    }
}

/// The base config of the comparison.
pub fn base_config(a: &CompareArgs) -> Result<SimConfig> {
    base_config_for(&a.scenario)
}

/// The base config of the comparison for these cluster and profile flags.
pub fn base_config_for(scenario: &ScenarioArgs) -> Result<SimConfig> {
    let mut cfg = paper_testbed();
    cfg.cluster.nodes = 16;
    cfg.cluster.gpus_per_node = 1;
    cfg.pools.gpu.max_replicas = 16;
    cfg.pools.gpu.replicas = 1;
    cfg.pools.cpu.replicas = 0;
    // One core requested, so a saturated replica reads 100 % CPU and the CPU-HPA can act.
    cfg.pools.gpu.cpu_request = 1.0;
    cfg.record_series = false;
    apply_scenario(&mut cfg, scenario)?;
    cfg.pools.gpu.max_replicas = cfg
        .pools
        .gpu
        .max_replicas
        .min(cfg.cluster.nodes * cfg.cluster.gpus_per_node);
    cfg.validate()?;
    Ok(cfg)
}

/// The workloads for `a`.
pub fn scenarios(a: &CompareArgs, base: &SimConfig) -> Result<Vec<Scenario>> {
    if !(a.duration.is_finite() && a.duration > 0.0) {
        bail!(
            "--duration must be a positive number of seconds, got {}",
            a.duration
        );
    }
    let mut out: Vec<Scenario> = [
        Pattern::Ramp,
        Pattern::Periodic,
        Pattern::Random,
        Pattern::Spike,
    ]
    .into_iter()
    .map(|p| Scenario {
        name: p.to_string(),
        split: "synthetic",
        shape: ShapeSpec::default_for(p).with_duration(a.duration),
        scale: 1.0,
    })
    .collect();
    let which = a.traces.as_str();
    if !matches!(which, "none" | "short" | "all") {
        bail!("--traces must be none, short or all, got {which:?}");
    }
    if which != "none" {
        let dir = kis_traffic::shared_dir()
            .ok_or_else(|| anyhow!("--traces {which}: no shared/traces folder found (set KIS_SHARED_DIR or use --traces none)"))?
            .join("traces");
        let capacity = replica_capacity(&base.pools.gpu) * base.pools.gpu.max_replicas as f64;
        for (file, speedup, short) in HELD_OUT {
            if which == "short" && !short {
                continue;
            }
            let shape = ShapeSpec::Trace {
                path: dir.join(file),
                scale: 1.0,
                speedup,
                offset: 0.0,
                limit: None,
            };
            let profile = shape.build(0).map_err(|e| anyhow!("trace {file}: {e}"))?;
            let peak = peak_rate_over(&profile, 60.0);
            out.push(Scenario {
                name: file.trim_end_matches(".csv").to_string(),
                split: "held-out",
                shape,
                scale: if peak > 0.0 {
                    0.8 * capacity / peak
                } else {
                    1.0
                },
            });
        }
    }
    if let Some(only) = &a.scenarios {
        let want: Vec<&str> = only.split(',').map(str::trim).collect();
        out.retain(|s| want.iter().any(|w| s.name == *w));
        if out.is_empty() {
            bail!("--scenarios {only}: matches none of the scenarios");
        }
    }
    Ok(out)
}

/// Highest mean rate over any `window`-second span (stepped by a sixth of the window).
pub fn peak_rate_over(p: &kis_traffic::Profile, window: f64) -> f64 {
    let d = p.duration();
    if d <= window {
        return p.cumulative(d) / d.max(1e-9);
    }
    let step = window / 6.0;
    let mut t = 0.0;
    let mut peak: f64 = 0.0;
    while t + window <= d {
        peak = peak.max((p.cumulative(t + window) - p.cumulative(t)) / window);
        t += step;
    }
    peak
}

/// The set-ups for a scenario (static sizes depend on its peak and mean rate).
pub fn setups(base: &SimConfig, peak: f64, mean: f64) -> Result<Vec<Setup>> {
    let gpu = &base.pools.gpu;
    let max = gpu.max_replicas;
    let size = |r: f64| replicas_for_rate(gpu, base.slo, r, 0.01, 1, max);
    let rule = |r: AutoscalerSpec| Some(ScalerSpec::Rule(r));
    let mut v = vec![
        Setup {
            label: "fixed-gpu-1 (paper GPU-only)".into(),
            gpu: (1, rule(AutoscalerSpec::Fixed { replicas: 1 })),
            cpu: (0, None),
        },
        Setup {
            label: "fixed-cpu-3 (paper CPU-only)".into(),
            gpu: (0, None),
            cpu: (3, rule(AutoscalerSpec::Fixed { replicas: 3 })),
        },
    ];
    for (basis, rate, name) in [
        (StaticBasis::Peak, peak, "peak"),
        (StaticBasis::Mean, mean, "mean"),
    ] {
        let n = size(rate);
        v.push(Setup {
            label: format!("static-{name} ({n})"),
            gpu: (n, rule(AutoscalerSpec::Static { replicas: n, basis })),
            cpu: (0, None),
        });
    }
    for name in ["hpa-cpu", "hpa-queue", "keda", "knative", "oracle"] {
        let spec = parse_autoscaler(name, gpu, base.slo)?;
        // The oracle starts from the size its first window needs; everyone else from 1 replica.
        v.push(Setup {
            label: name.into(),
            gpu: (1, spec),
            cpu: (0, None),
        });
    }
    Ok(v)
}

/// One run of `setup` on `sc` with `seed`.
pub fn run_one(base: &SimConfig, sc: &Scenario, setup: &Setup, seed: u64) -> Result<Summary> {
    let mut cfg = base.clone();
    cfg.seed = seed;
    cfg.workload.shape = sc.shape.clone();
    cfg.workload.scale = sc.scale;
    cfg.pools.gpu.replicas = setup.gpu.0;
    cfg.pools.gpu.autoscaler = setup.gpu.1.clone();
    cfg.pools.cpu.replicas = setup.cpu.0;
    cfg.pools.cpu.autoscaler = setup.cpu.1.clone();
    if let Some(ScalerSpec::Oracle(_)) = &setup.gpu.1 {
        let p = sc.shape.build(seed)?.scaled(sc.scale);
        let horizon = cfg.pools.gpu.startup.mean() + 20.0;
        let early = (0..=horizon as usize)
            .map(|t| p.rate(t as f64))
            .fold(0.0, f64::max);
        cfg.pools.gpu.replicas = replicas_for_rate(
            &cfg.pools.gpu,
            cfg.slo,
            early,
            0.01,
            1,
            cfg.pools.gpu.max_replicas,
        );
    }
    Ok(Simulation::new(cfg)?.run())
}

/// Runs the comparison and returns every figure.
pub fn compare(a: &CompareArgs) -> Result<Comparison> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let base = base_config(a)?;
    let scenarios = scenarios(a, &base)?;
    let tuned = match &a.tuned {
        Some(p) => crate::tune::load_tuned(p)?,
        None => Vec::new(),
    };
    let mut jobs = Vec::new();
    let mut all_setups: Vec<Setup> = Vec::new();
    for (si, sc) in scenarios.iter().enumerate() {
        let p = sc.shape.build(0)?.scaled(sc.scale);
        let mut ss = setups(&base, p.peak_rate(), p.mean_rate())?;
        ss.extend(tuned.iter().cloned());
        if let Some(only) = &a.only {
            let want: Vec<&str> = only.split(',').map(str::trim).collect();
            ss.retain(|s| want.iter().any(|w| s.label.starts_with(w)));
            if ss.is_empty() {
                bail!("--only {only}: matches none of the autoscalers");
            }
        }
        for s in &ss {
            for seed in 0..a.seeds {
                jobs.push((si, s.clone(), seed));
            }
        }
        if si == 0 {
            all_setups = ss;
        }
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // A progress bar on a terminal, nothing otherwise (draw target hidden).
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(jobs.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Summary>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((si, setup, seed)) = jobs.get(i) else {
                        break;
                    };
                    let r = run_one(&base, &scenarios[*si], setup, *seed);
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?;
    let mut runs = Vec::new();
    for ((si, setup, seed), r) in jobs.iter().zip(results) {
        let summary = r.ok_or_else(|| anyhow!("a run did not finish"))??;
        runs.push(RunResult {
            scenario: scenarios[*si].name.clone(),
            setup: setup.label.clone(),
            seed: *seed,
            summary,
        });
    }
    let mut rows = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &runs {
        let k = (r.scenario.clone(), r.setup.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (sc, setup) in keys {
        let rs: Vec<&Summary> = runs
            .iter()
            .filter(|r| r.scenario == sc && r.setup == setup)
            .map(|r| &r.summary)
            .collect();
        let f = |g: &dyn Fn(&Summary) -> f64| stat(&rs.iter().map(|s| g(s)).collect::<Vec<_>>());
        rows.push(Row {
            split: scenarios
                .iter()
                .find(|s| s.name == sc)
                .map_or("", |s| s.split),
            scenario: sc,
            setup,
            p95: f(&|s| s.p95.unwrap_or(f64::NAN)),
            slo_miss: f(&|s| s.slo_miss_fraction),
            gpu_hours: f(&|s| s.gpu_hours),
            cpu_replica_hours: f(&|s| s.pools[1].replica_seconds / 3600.0),
            actions: f(&|s| (s.pools[0].scaling_actions + s.pools[1].scaling_actions) as f64),
        });
    }
    Ok(Comparison {
        base,
        scenarios,
        setups: all_setups,
        rows,
        runs,
        note: NOTE.into(),
    })
}

fn pm(s: Stat, scale: f64, digits: usize) -> String {
    if s.mean.is_nan() {
        return "-".into();
    }
    format!(
        "{:.*} ± {:.*}",
        digits,
        s.mean * scale,
        digits,
        s.ci95 * scale
    )
}

/// Renders the table (markdown).
pub fn render(c: &Comparison, seeds: u64) -> String {
    let mut o = String::new();
    o += &format!(
        "Means ± 95 % CI over {seeds} seeds. SLO {:.0} ms. {}\n\n",
        c.base.slo * 1e3,
        c.note
    );
    o += "| scenario | split | autoscaler | p95 (ms) | SLO miss (%) | GPU-hours | CPU replica-hours | scaling actions |\n";
    o += "|---|---|---|---|---|---|---|---|\n";
    for r in &c.rows {
        o += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.split,
            r.setup,
            pm(r.p95, 1e3, 0),
            pm(r.slo_miss, 100.0, 2),
            pm(r.gpu_hours, 1.0, 3),
            pm(r.cpu_replica_hours, 1.0, 3),
            pm(r.actions, 1.0, 1)
        );
    }
    o
}

/// Runs the subcommand.
pub fn run(a: &CompareArgs) -> Result<()> {
    let c = compare(a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", render(&c, a.seeds));
    }
    Ok(())
}
