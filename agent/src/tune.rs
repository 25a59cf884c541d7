//! `kis-agent tune`: calibrates the rule-based baselines (HPA, KEDA, Knative, the forecaster) on the
//! validation traces with a fixed budget of simulator evaluations, so that a learned policy is compared with tuned rules
//! rather than defaults.
//!
//! Workload: `servegen_mlarge_rate_60s.csv` days 0–6 (the validation split of shared/traces/README.md;
//! the held-out days 7–13 are never read), replayed with `--speedup` and scaled as `compare` scales
//! traces (busiest minute of trace time at 80 % of the largest GPU pool's capacity), on `compare`'s
//! cluster. Held-out data is refused (`eval::workload::held_out_reason`), whatever `--trace` names.
//! Objective (lower is better): `gpu_hours + penalty * max(0, slo_miss - target)`, means over seeds
//! (the SLO miss counts requests still queued at the end as missed),
//! where `penalty` is 100 × the GPU-hours of the full pool over the run, so a candidate that misses
//! the target by one percentage point costs as much as running every replica all the time.
//! Search: the default first, then a Latin hypercube over the (log-)ranges for 60 % of the budget,
//! then coordinate-free Gaussian steps around the best point with a shrinking radius.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use kis_autoscale::spec::hpa_metrics;
use kis_autoscale::{AutoscalerSpec, ExternalTarget, MetricSpec, Param};
use kis_sim::{ScalerSpec, SimConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::cli::TuneArgs;
use crate::eval::runner::{par_map, progress, threads};
pub use crate::eval::setup::RULES;
use crate::eval::setup::{Setup, base_config_for, run_one};
use crate::eval::stats::Objective;
pub use crate::eval::tuned::{ParamValue, Score, Tuned, TunedFile, load_tuned};
use crate::eval::workload::{self, Scenario};
pub use crate::eval::workload::{VALIDATION_DAYS, VALIDATION_TRACE};
use crate::scenario::{parse_autoscaler, resolve_trace};

/// The spec's current values of `param_space()`, clamped into the ranges (the default candidate).
pub fn current_values(spec: &AutoscalerSpec) -> Vec<f64> {
    let mut v = Vec::new();
    match spec {
        AutoscalerSpec::Hpa(c) => {
            for m in hpa_metrics(c) {
                v.push(match m {
                    MetricSpec::CpuUtilization {
                        average_utilization,
                    } => average_utilization as f64,
                    MetricSpec::External { target, .. } => {
                        let (ExternalTarget::AverageValue(t) | ExternalTarget::Value(t)) = target;
                        t
                    }
                });
            }
            // The HPA's upstream default tolerance when unset.
            v.push(c.tolerance.unwrap_or(0.1));
            match &c.behavior {
                Some(b) => {
                    v.push(b.scale_up.stabilization_window);
                    v.push(b.scale_down.stabilization_window);
                }
                None => v.push(c.downscale_stabilization),
            }
        }
        AutoscalerSpec::Keda(c) => v.extend([
            c.threshold,
            c.activation_threshold,
            c.polling_interval,
            c.cooldown_period,
        ]),
        AutoscalerSpec::Knative(c) => v.extend([
            c.target_concurrency,
            c.target_utilization,
            c.stable_window,
            c.panic_threshold_percentage,
            c.max_scale_down_rate,
            c.scale_to_zero_grace_period,
        ]),
        AutoscalerSpec::Forecast(c) => {
            v.extend([
                c.target_utilization,
                c.lead,
                c.alpha,
                c.beta,
                c.scale_down_delay,
                c.backlog_drain,
            ]);
            if c.season.is_some() {
                v.push(c.gamma);
            }
        }
        AutoscalerSpec::Fixed { .. }
        | AutoscalerSpec::Static { .. }
        | AutoscalerSpec::ExternalTarget(_) => {}
    }
    let space = spec.param_space();
    v.iter()
        .zip(&space)
        .map(|(x, p)| x.clamp(p.lo, p.hi))
        .collect()
}

/// Maps a point of the unit cube to parameter values.
fn from_unit(space: &[Param], u: &[f64]) -> Vec<f64> {
    space
        .iter()
        .zip(u)
        .map(|(p, &x)| {
            let x = x.clamp(0.0, 1.0);
            let v = if p.log && p.lo > 0.0 {
                (p.lo.ln() + x * (p.hi.ln() - p.lo.ln())).exp()
            } else {
                p.lo + x * (p.hi - p.lo)
            };
            let v = v.clamp(p.lo, p.hi);
            if p.integer { v.round() } else { v }
        })
        .collect()
}

/// Maps parameter values into the unit cube.
fn to_unit(space: &[Param], v: &[f64]) -> Vec<f64> {
    space
        .iter()
        .zip(v)
        .map(|(p, &x)| {
            let u = if p.log && p.lo > 0.0 {
                (x.max(p.lo).ln() - p.lo.ln()) / (p.hi.ln() - p.lo.ln()).max(1e-12)
            } else {
                (x - p.lo) / (p.hi - p.lo).max(1e-12)
            };
            u.clamp(0.0, 1.0)
        })
        .collect()
}

/// A Latin hypercube of `n` points in `d` dimensions.
fn latin_hypercube(rng: &mut Pcg64, n: usize, d: usize) -> Vec<Vec<f64>> {
    let mut pts = vec![vec![0.0; d]; n];
    for j in 0..d {
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let k = (rng.next_u64() % (i as u64 + 1)) as usize;
            perm.swap(i, k);
        }
        for (i, pt) in pts.iter_mut().enumerate() {
            pt[j] = (perm[i] as f64 + unit(rng)) / n as f64;
        }
    }
    pts
}

fn unit(rng: &mut Pcg64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Pcg64) -> f64 {
    let u1 = unit(rng).max(1e-12);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The validation workload and how candidates are scored.
#[derive(Debug)]
pub struct Evaluator {
    /// Cluster (compare's).
    pub base: SimConfig,
    /// Workload.
    pub scenario: Scenario,
    /// Seeds per candidate (0..seeds).
    pub seeds: u64,
    /// What a candidate's mean figures are scored by.
    pub objective: Objective,
    /// Worker threads.
    pub threads: usize,
    /// Simulator runs so far (candidates × seeds), counted where they happen.
    pub runs: AtomicUsize,
}

impl Evaluator {
    /// Builds the workload of `a`.
    pub fn new(a: &TuneArgs) -> Result<Self> {
        if a.seeds == 0 {
            bail!("--seeds must be at least 1");
        }
        if !(a.speedup.is_finite() && a.speedup > 0.0) {
            bail!("--speedup must be a positive number, got {}", a.speedup);
        }
        if !(a.days.is_finite() && a.days > 0.0) {
            bail!("--days must be a positive number, got {}", a.days);
        }
        if !(a.slo_miss_target.is_finite() && (0.0..1.0).contains(&a.slo_miss_target)) {
            bail!(
                "--slo-miss-target must be a fraction in [0, 1), got {}",
                a.slo_miss_target
            );
        }
        let (path, name) = if a.trace == "validation" {
            if a.days > VALIDATION_DAYS {
                bail!(
                    "--days {}: the validation split is days 0-{} (days 7-13 are held out)",
                    a.days,
                    VALIDATION_DAYS - 1.0
                );
            }
            (
                resolve_trace(VALIDATION_TRACE)?,
                format!("{VALIDATION_TRACE} days 0-{}", a.days),
            )
        } else {
            let p = resolve_trace(&a.trace)?;
            (p, format!("{} days 0-{}", a.trace, a.days))
        };
        let base = base_config_for(&a.scenario)?;
        // Refuses held-out data (shared/traces/README.md) with the reason.
        let scenario = workload::validation(&path, name, a.days, a.speedup, &base)?;
        let seconds = scenario.profile(0)?.duration();
        Ok(Evaluator {
            objective: Objective::for_pool(a.slo_miss_target, base.pools.gpu.max_replicas, seconds),
            base,
            scenario,
            seeds: a.seeds,
            threads: threads(a.threads),
            runs: AtomicUsize::new(0),
        })
    }

    /// Scores one spec (mean over seeds).
    pub fn score(&self, spec: &AutoscalerSpec) -> Result<Score> {
        let setup = Setup::gpu(spec.label(), 1, Some(ScalerSpec::Rule(spec.clone())));
        let (mut miss, mut hours) = (0.0, 0.0);
        for seed in 0..self.seeds {
            let s = run_one(&self.base, &self.scenario, &setup, seed)?;
            self.runs.fetch_add(1, Ordering::Relaxed);
            miss += s.slo_miss_fraction;
            hours += s.gpu_hours;
        }
        let n = self.seeds as f64;
        let (slo_miss, gpu_hours) = (miss / n, hours / n);
        Ok(Score {
            slo_miss,
            gpu_hours,
            objective: self.objective.value(slo_miss, gpu_hours),
        })
    }

    /// Scores a batch in parallel, results in input order.
    fn score_all(&self, specs: &[AutoscalerSpec], bar: &ProgressBar) -> Result<Vec<Score>> {
        par_map(specs, self.threads, bar, |spec| self.score(spec))
    }
}

/// Tunes `default` with exactly `budget` candidate evaluations (the default is the first).
pub fn tune_spec(
    ev: &Evaluator,
    name: &str,
    default: &AutoscalerSpec,
    budget: usize,
    seed: u64,
    bar: &ProgressBar,
) -> Result<Tuned> {
    if budget == 0 {
        bail!("--budget must be at least 1");
    }
    let space = default.param_space();
    if space.is_empty() {
        bail!("autoscaler {name} has no parameters to tune");
    }
    let d = space.len();
    let d0 = current_values(default);
    let mut rng = Pcg64::seed_from_u64(seed);
    let n_lhs = ((budget as f64 * 0.6).round() as usize).clamp(1, budget) - 1;
    let mut cands: Vec<Vec<f64>> = vec![d0.clone()];
    cands.extend(
        latin_hypercube(&mut rng, n_lhs, d)
            .iter()
            .map(|u| from_unit(&space, u)),
    );
    let mut evaluations = 0;
    let mut specs = Vec::with_capacity(cands.len());
    for c in &cands {
        specs.push(default.with_params(c).with_context(|| name.to_string())?);
    }
    let scores = ev.score_all(&specs, bar)?;
    evaluations += specs.len();
    let default_score = scores[0];
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if s.objective < scores[best].objective {
            best = i;
        }
    }
    let (mut best_v, mut best_s, mut best_spec) =
        (cands[best].clone(), scores[best], specs[best].clone());
    // Local refinement: batches of Gaussian steps around the incumbent, radius shrinking from 0.15
    // to 0.02 of each range, so batches run in parallel and the result does not depend on timing.
    let batch = ev.threads.max(2);
    while evaluations < budget {
        let k = batch.min(budget - evaluations);
        let progress = evaluations as f64 / budget as f64;
        let sigma = 0.15 * (1.0 - progress) + 0.02 * progress;
        let u0 = to_unit(&space, &best_v);
        let mut vs = Vec::with_capacity(k);
        let mut ss = Vec::with_capacity(k);
        for _ in 0..k {
            let u: Vec<f64> = u0.iter().map(|x| x + sigma * normal(&mut rng)).collect();
            let v = from_unit(&space, &u);
            ss.push(default.with_params(&v).with_context(|| name.to_string())?);
            vs.push(v);
        }
        let sc = ev.score_all(&ss, bar)?;
        evaluations += k;
        for i in 0..k {
            if sc[i].objective < best_s.objective {
                best_s = sc[i];
                best_v = vs[i].clone();
                best_spec = ss[i].clone();
            }
        }
    }
    Ok(Tuned {
        autoscaler: name.into(),
        spec: best_spec,
        default: default_score,
        tuned: best_s,
        params: space
            .iter()
            .zip(d0.iter().zip(&best_v))
            .map(|(p, (&a, &b))| ParamValue {
                name: p.name.clone(),
                default: a,
                tuned: b,
            })
            .collect(),
        evaluations,
    })
}

/// Runs the whole tuning of `a`.
pub fn tune(a: &TuneArgs) -> Result<TunedFile> {
    tune_with(a).map(|(f, _)| f)
}

/// Runs the whole tuning of `a` and also returns the evaluator (with its run count).
pub fn tune_with(a: &TuneArgs) -> Result<(TunedFile, Evaluator)> {
    if a.budget == 0 {
        bail!("--budget must be at least 1");
    }
    let names: Vec<String> = match &a.autoscaler {
        Some(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
        None => RULES.iter().map(|s| s.to_string()).collect(),
    };
    let ev = Evaluator::new(a)?;
    let mut defaults = Vec::new();
    for n in &names {
        let spec = match parse_autoscaler(n, &ev.base.pools.gpu, ev.base.slo)
            .with_context(|| format!("--autoscaler {n}"))?
        {
            Some(ScalerSpec::Rule(r)) if !r.param_space().is_empty() => r,
            _ => bail!(
                "--autoscaler {n}: not a rule-based autoscaler with parameters (expected {})",
                RULES.join(", ")
            ),
        };
        defaults.push((n.clone(), spec));
    }
    let bar = progress((a.budget * names.len()) as u64, "candidates");
    let mut tuned = Vec::new();
    for (i, (n, spec)) in defaults.iter().enumerate() {
        tuned.push(tune_spec(
            &ev,
            n,
            spec,
            a.budget,
            a.seed.wrapping_add(i as u64),
            &bar,
        )?);
    }
    bar.finish_and_clear();
    let f = TunedFile {
        workload: ev.scenario.name.clone(),
        scale: ev.scenario.scale,
        speedup: a.speedup,
        slo_miss_target: ev.objective.target,
        penalty: ev.objective.penalty,
        budget: a.budget,
        seeds: a.seeds,
        seed: a.seed,
        tuned,
    };
    Ok((f, ev))
}

/// Renders the default-vs-tuned table (markdown).
pub fn render(f: &TunedFile) -> String {
    let mut o = format!(
        "Workload {} (scale {:.3}, speedup {}), {} seeds, budget {} candidates, SLO-miss target {:.1} %.\n\
         Objective = GPU-hours + {:.1} x max(0, SLO miss - target).\n\n",
        f.workload,
        f.scale,
        f.speedup,
        f.seeds,
        f.budget,
        f.slo_miss_target * 100.0,
        f.penalty
    );
    o += "| autoscaler | | SLO miss (%) | GPU-hours | objective |\n|---|---|---|---|---|\n";
    for t in &f.tuned {
        for (which, s) in [("default", t.default), ("tuned", t.tuned)] {
            o += &format!(
                "| {} | {which} | {:.2} | {:.3} | {:.3} |\n",
                t.autoscaler,
                s.slo_miss * 100.0,
                s.gpu_hours,
                s.objective
            );
        }
    }
    o += "\n| autoscaler | parameter | default | tuned |\n|---|---|---|---|\n";
    for t in &f.tuned {
        for p in &t.params {
            o += &format!(
                "| {} | {} | {:.4} | {:.4} |\n",
                t.autoscaler, p.name, p.default, p.tuned
            );
        }
    }
    o
}

/// Runs the subcommand.
pub fn run(a: &TuneArgs) -> Result<()> {
    let f = tune(a)?;
    // The table first, so an unwritable --out loses nothing that was measured.
    print!("{}", render(&f));
    if let Some(out) = &a.out {
        let text = serde_json::to_string_pretty(&f)?;
        std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Vec<Param> {
        AutoscalerSpec::Knative(kis_autoscale::KpaConfig::default()).param_space()
    }

    #[test]
    fn unit_round_trip_respects_log_and_ranges() {
        let s = space();
        let v = from_unit(&s, &[0.0, 0.5, 1.0, 0.25, 0.75, 0.1]);
        assert!((v[0] - 0.5).abs() < 1e-9);
        assert!((v[2] - 300.0).abs() < 1e-9);
        let u = to_unit(&s, &v);
        for (a, b) in u.iter().zip([0.0, 0.5, 1.0, 0.25, 0.75, 0.1]) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn latin_hypercube_has_one_point_per_stratum() {
        let mut rng = Pcg64::seed_from_u64(1);
        let pts = latin_hypercube(&mut rng, 8, 3);
        for j in 0..3 {
            let mut bins: Vec<usize> = pts.iter().map(|p| (p[j] * 8.0) as usize).collect();
            bins.sort();
            assert_eq!(bins, (0..8).collect::<Vec<_>>());
        }
    }

    #[test]
    fn default_values_are_the_shorthands() {
        let k = AutoscalerSpec::Knative(kis_autoscale::KpaConfig::default());
        let v = current_values(&k);
        assert_eq!(v.len(), k.param_space().len());
        assert_eq!(k.with_params(&v).unwrap(), k);
    }
}
