//! `kis-agent evaluate`: every tuned rule, the forecaster, static-peak, the oracle, the four KARB
//! treatments and any policies on the held-out traces, with the same seeds for every set-up (paired by
//! seed): SLO miss, GPU-hours and the objective with 95 % CIs, a ranking by objective, the paired
//! objective difference to the best baseline, a cost-vs-SLO-miss Pareto plot per trace and a verdict
//! per policy (dominates / on the front / dominated). `--out DIR` writes a run folder.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kis_autoscale::StaticBasis;
use kis_sim::SimConfig;
use serde::Serialize;

use crate::cli::EvaluateArgs;
use crate::eval::pareto::{Point, Verdict, plot_png, verdict};
use crate::eval::policy::PolicySetup;
use crate::eval::results::{Row, RunResult, aggregate, objective_for, pm, run_all};
use crate::eval::runner::threads;
use crate::eval::setup::{
    RULES, Setup, base_config_for, filter_setups, fixed_gpu_1, karb_treatments, static_for,
};
use crate::eval::stats::{Stat, stat};
use crate::eval::tuned::tuned_and_policies;
use crate::eval::workload::{
    Scenario, compare_traces, filter_scenarios, servegen_held_out, synthetic,
};
use crate::scenario::parse_autoscaler;

/// A policy's standing on one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictRow {
    /// Scenario.
    pub scenario: String,
    /// Policy set-up label.
    pub setup: String,
    /// Against the baselines.
    pub verdict: Verdict,
}

/// Objective of a set-up minus that of the scenario's best baseline, paired by seed.
#[derive(Debug, Clone, Serialize)]
pub struct Paired {
    /// Scenario.
    pub scenario: String,
    /// Set-up.
    pub setup: String,
    /// The best baseline (lowest mean objective, oracle excluded).
    pub versus: String,
    /// Mean and 95 % CI of the per-seed difference (negative = better than the baseline).
    pub diff: Stat,
}

/// Everything `evaluate` measured.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    /// Base configuration.
    pub base: SimConfig,
    /// Scenarios.
    pub scenarios: Vec<Scenario>,
    /// Whether the rules are tuned (`--tuned`).
    pub tuned: bool,
    /// Set-ups of each scenario.
    pub setups: Vec<Vec<Setup>>,
    /// Rows (means ± CI), in scenario order, each scenario ranked by mean objective.
    pub rows: Vec<Row>,
    /// Policy verdicts.
    pub verdicts: Vec<VerdictRow>,
    /// Paired differences to the best baseline.
    pub paired: Vec<Paired>,
    /// Every run.
    pub runs: Vec<RunResult>,
}

/// The set-up's kind for verdicts and plots.
fn kind(s: &Setup) -> &'static str {
    if s.policy.is_some() {
        "policy"
    } else if s.is_oracle() {
        "oracle"
    } else {
        "baseline"
    }
}

/// The scenarios of `a`: by default the held-out set.
pub fn scenarios(a: &EvaluateArgs, base: &SimConfig) -> Result<Vec<Scenario>> {
    if !(a.servegen_speedup.is_finite() && a.servegen_speedup > 0.0) {
        bail!(
            "--servegen-speedup must be a positive number, got {}",
            a.servegen_speedup
        );
    }
    let synth = synthetic(a.duration)?;
    let wanted: Option<Vec<&str>> = a
        .scenarios
        .as_deref()
        .map(|s| s.split(',').map(str::trim).collect());
    let only_synthetic = wanted
        .as_ref()
        .is_some_and(|w| w.iter().all(|n| synth.iter().any(|s| s.name == *n)));
    let mut all = Vec::new();
    if a.scenarios.is_some() {
        all.extend(synth);
    }
    if !only_synthetic {
        all.extend(compare_traces("all", base)?);
        all.push(servegen_held_out(base, a.servegen_speedup)?);
    }
    filter_scenarios(all, a.scenarios.as_deref())
}

/// The set-ups for one scenario.
pub fn setups(
    base: &SimConfig,
    sc: &Scenario,
    tuned: &[Setup],
    policies: &[PolicySetup],
) -> Result<Vec<Setup>> {
    let p = sc.profile(0)?;
    let mut v = vec![
        fixed_gpu_1(),
        static_for(base, StaticBasis::Peak, p.peak_rate()),
    ];
    for name in RULES {
        let t = tuned.iter().find(|t| t.label == format!("{name}-tuned"));
        match t {
            Some(t) => v.push(t.clone()),
            None if tuned.is_empty() || name == "forecast" => v.push(Setup::gpu(
                name,
                1,
                parse_autoscaler(name, &base.pools.gpu, base.slo)?,
            )),
            None => {}
        }
    }
    v.push(Setup::gpu(
        "oracle",
        1,
        parse_autoscaler("oracle", &base.pools.gpu, base.slo)?,
    ));
    v.extend(karb_treatments(base)?);
    v.extend(policies.iter().cloned().map(Setup::policy));
    Ok(v)
}

/// Runs the evaluation.
pub fn evaluate(a: &EvaluateArgs) -> Result<Evaluation> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let base = base_config_for(&a.scenario)?;
    let scenarios = scenarios(a, &base)?;
    let (tuned, policies) = tuned_and_policies(a.tuned.as_deref(), &a.policies)?;
    let mut all_setups = Vec::new();
    for sc in &scenarios {
        all_setups.push(filter_setups(
            setups(&base, sc, &tuned, &policies)?,
            a.only.as_deref(),
        )?);
    }
    let runs = run_all(&base, &scenarios, &all_setups, a.seeds, threads(a.threads))?;
    let mut rows = aggregate(&base, &scenarios, &runs)?;
    // Rank each scenario's rows by mean objective (stable: ties keep the set-up order).
    rows.sort_by(|x, y| {
        let si = |r: &Row| scenarios.iter().position(|s| s.name == r.scenario);
        si(x)
            .cmp(&si(y))
            .then(x.objective.mean.total_cmp(&y.objective.mean))
    });
    let (verdicts, paired) = judge(&base, &scenarios, &all_setups, &rows, &runs)?;
    Ok(Evaluation {
        base,
        scenarios,
        tuned: !tuned.is_empty(),
        setups: all_setups,
        rows,
        verdicts,
        paired,
        runs,
    })
}

/// The Pareto points of one scenario, in row (rank) order.
pub fn points(scenario: &str, setups: &[Setup], rows: &[Row]) -> Vec<Point> {
    rows.iter()
        .filter(|r| r.scenario == scenario)
        .filter_map(|r| {
            let s = setups.iter().find(|s| s.label == r.setup)?;
            Some(Point {
                label: r.setup.clone(),
                gpu_hours: r.gpu_hours.mean,
                slo_miss: r.slo_miss.mean,
                kind: kind(s),
            })
        })
        .collect()
}

/// Policy verdicts and paired objective differences to the best baseline.
fn judge(
    base: &SimConfig,
    scenarios: &[Scenario],
    setups: &[Vec<Setup>],
    rows: &[Row],
    runs: &[RunResult],
) -> Result<(Vec<VerdictRow>, Vec<Paired>)> {
    let mut verdicts = Vec::new();
    let mut paired = Vec::new();
    for (sc, ss) in scenarios.iter().zip(setups) {
        let pts = points(&sc.name, ss, rows);
        let baselines: Vec<Point> = pts
            .iter()
            .filter(|p| p.kind == "baseline")
            .cloned()
            .collect();
        for p in pts.iter().filter(|p| p.kind == "policy") {
            verdicts.push(VerdictRow {
                scenario: sc.name.clone(),
                setup: p.label.clone(),
                verdict: verdict(p, &baselines),
            });
        }
        // Rows are ranked: the first baseline row is the best baseline.
        let Some(best) = rows
            .iter()
            .filter(|r| r.scenario == sc.name)
            .find(|r| baselines.iter().any(|b| b.label == r.setup))
        else {
            continue;
        };
        let obj = objective_for(base, sc)?;
        let per_seed = |label: &str| -> Vec<(u64, f64)> {
            runs.iter()
                .filter(|r| r.scenario == sc.name && r.setup == label)
                .map(|r| {
                    (
                        r.seed,
                        obj.value(r.summary.slo_miss_fraction, r.summary.gpu_hours),
                    )
                })
                .collect()
        };
        let reference = per_seed(&best.setup);
        for s in ss.iter().filter(|s| s.label != best.setup) {
            let diffs: Vec<f64> = per_seed(&s.label)
                .iter()
                .filter_map(|(seed, v)| {
                    reference
                        .iter()
                        .find(|(r, _)| r == seed)
                        .map(|(_, b)| v - b)
                })
                .collect();
            paired.push(Paired {
                scenario: sc.name.clone(),
                setup: s.label.clone(),
                versus: best.setup.clone(),
                diff: stat(&diffs),
            });
        }
    }
    Ok((verdicts, paired))
}

/// The summary (markdown): per scenario, the ranked table, then the verdicts.
pub fn render(e: &Evaluation, seeds: u64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Means ± 95 % CI over {seeds} seeds (0..{seeds}, the same for every set-up). SLO {:.0} ms; \
         SLO miss counts requests still queued at the end as missed. Objective = GPU-hours + \
         100 × full-pool GPU-hours × max(0, SLO miss − 1 %). Rules: {}.\n",
        e.base.slo * 1e3,
        if e.tuned {
            "tuned (`--tuned`)"
        } else {
            "defaults (no `--tuned` file)"
        }
    );
    for sc in &e.scenarios {
        let _ = writeln!(o, "## {} ({}, scale {:.3})\n", sc.name, sc.split, sc.scale);
        o += "| rank | set-up | SLO miss (%) | GPU-hours | objective | Δ objective vs best baseline (paired) |\n";
        o += "|---|---|---|---|---|---|\n";
        for (i, r) in e.rows.iter().filter(|r| r.scenario == sc.name).enumerate() {
            let d = e
                .paired
                .iter()
                .find(|p| p.scenario == sc.name && p.setup == r.setup)
                .map_or("best baseline".to_string(), |p| pm(p.diff, 1.0, 1));
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {d} |",
                i + 1,
                r.setup,
                pm(r.slo_miss, 100.0, 2),
                pm(r.gpu_hours, 1.0, 3),
                pm(r.objective, 1.0, 1)
            );
        }
        let vs: Vec<&VerdictRow> = e
            .verdicts
            .iter()
            .filter(|v| v.scenario == sc.name)
            .collect();
        if !vs.is_empty() {
            o += "\n| policy | verdict against the baselines |\n|---|---|\n";
            for v in vs {
                let _ = writeln!(o, "| {} | {} |", v.setup, v.verdict.words());
            }
        }
        o += "\n";
    }
    o
}

/// File-name-safe form of a scenario name.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the run folder: `command.txt`, `runs.csv` (key figures per run), `runs.jsonl` (every
/// run's summary), `evaluation.json` (the rest), `summary.md` and `pareto-<scenario>.png`.
pub fn write_run(dir: &Path, a: &EvaluateArgs, e: &Evaluation) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let w = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
    };
    let argv: Vec<String> = std::env::args().collect();
    w(
        "command.txt",
        format!("{}\n\n{a:#?}\n", argv.join(" ")).as_bytes(),
    )?;
    let mut csv = String::from(
        "scenario,setup,seed,arrivals,completed,rejected,killed,in_flight,slo_miss,gpu_hours,p95_s,objective\n",
    );
    for r in &e.runs {
        let s = &r.summary;
        let obj = e
            .scenarios
            .iter()
            .find(|x| x.name == r.scenario)
            .map(|x| objective_for(&e.base, x))
            .transpose()?
            .map_or(f64::NAN, |o| o.value(s.slo_miss_fraction, s.gpu_hours));
        let _ = writeln!(
            csv,
            "{},\"{}\",{},{},{},{},{},{},{:.6},{:.6},{},{:.6}",
            r.scenario,
            r.setup,
            r.seed,
            s.arrivals,
            s.completed,
            s.rejected,
            s.killed,
            s.in_flight,
            s.slo_miss_fraction,
            s.gpu_hours,
            s.p95.map_or(String::new(), |p| format!("{p:.6}")),
            obj
        );
    }
    w("runs.csv", csv.as_bytes())?;
    // Compact, and the runs one per line beside the rest, so each file stays well under 1 MB.
    let mut jsonl = String::new();
    for r in &e.runs {
        jsonl += &serde_json::to_string(r)?;
        jsonl.push('\n');
    }
    w("runs.jsonl", jsonl.as_bytes())?;
    let mut rest = serde_json::to_value(e)?;
    if let Some(m) = rest.as_object_mut() {
        m.remove("runs");
    }
    w("evaluation.json", serde_json::to_string(&rest)?.as_bytes())?;
    w("summary.md", render(e, a.seeds).as_bytes())?;
    for (sc, ss) in e.scenarios.iter().zip(&e.setups) {
        let png = plot_png(
            &format!("{}: cost vs SLO miss", sc.name),
            &points(&sc.name, ss, &e.rows),
        )?;
        w(&format!("pareto-{}.png", slug(&sc.name)), &png)?;
    }
    Ok(())
}

/// Runs the subcommand.
pub fn run(a: &EvaluateArgs) -> Result<()> {
    let e = evaluate(a)?;
    // Printed first, so a run folder that cannot be written loses nothing that was measured.
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", render(&e, a.seeds));
    }
    if let Some(dir) = &a.out {
        write_run(dir, a, &e)?;
    }
    Ok(())
}
