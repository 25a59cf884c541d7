//! Fitting a `kis-service-profile/v1` to measured levels: batch times from Triton's statistics
//! deltas, a log-normal spread from the reference level, and the per-request overhead found by a
//! fixed-point iteration on kis-sim itself ([`fit_overheads`]).

use anyhow::{Result, bail};
use kis_loadgen::kserve::ModelConfig;
use kis_sim::{
    BatchPoint, Device, Dist, Histogram, PROFILE_SCHEMA, PoolConfig, Pools, RatePoint,
    ServiceProfile, SimConfig, Workload,
};
use kis_traffic::{ArrivalKind, ShapeSpec};

use super::render::{hostname, level_name};
use super::{Level, Options};

/// Levels below this many executions of a batch size are too thin to fit (a handful of stray batches).
const MIN_BATCHES: u64 = 20;

/// Log-normal coefficient of variation whose mean and 95th percentile are `mean` and `p95`.
pub fn lognormal_cv(mean: f64, p95: f64) -> f64 {
    if !(mean > 0.0 && p95 > mean) {
        return 0.0;
    }
    // p95 / mean = exp(1.645 s - s^2 / 2): solve for the smaller root s.
    let r = (p95 / mean).ln();
    let z = 1.644_853_6;
    let disc = z * z - 2.0 * r;
    let s = if disc > 0.0 { z - disc.sqrt() } else { z };
    ((s * s).exp() - 1.0).sqrt()
}

/// Every level's executions pooled per batch size: `(size, executions, mean ms)` by size, the
/// mean being total time / executions.
pub fn pooled_batches<'a>(levels: impl IntoIterator<Item = &'a Level>) -> Vec<(u32, u64, f64)> {
    let mut pooled: Vec<(u32, u64, f64)> = Vec::new();
    for l in levels {
        for &(s, c, mean_ms) in &l.batches {
            match pooled.iter_mut().find(|p| p.0 == s) {
                Some(p) => {
                    p.1 += c;
                    p.2 += mean_ms * c as f64;
                }
                None => pooled.push((s, c, mean_ms * c as f64)),
            }
        }
    }
    pooled.sort_by_key(|p| p.0);
    for p in &mut pooled {
        p.2 /= p.1.max(1) as f64;
    }
    pooled
}

/// What a calibration measured, and where and when: the fit's input.
#[derive(Clone, Copy)]
pub(super) struct Measured<'a> {
    /// Model name.
    pub(super) model: &'a str,
    /// Triton's server version string.
    pub(super) version: &'a str,
    /// The model's scheduling configuration.
    pub(super) config: &'a ModelConfig,
    /// Every level, in the order run.
    pub(super) levels: &'a [Level],
    /// The calibration's options.
    pub(super) options: &'a Options,
    /// When it started (UTC).
    pub(super) started: &'a str,
    /// The 1-minute load average at the start.
    pub(super) load: &'a str,
}

/// Builds the profile from the measured levels.
pub(super) fn fit(m: &Measured<'_>) -> Result<ServiceProfile> {
    let Measured {
        model,
        config,
        levels,
        options: o,
        ..
    } = *m;
    let pooled = pooled_batches(levels);
    let mut kept: Vec<(u32, f64)> = pooled
        .iter()
        .filter(|p| p.1 >= MIN_BATCHES)
        .map(|p| (p.0, p.2))
        .collect();
    if kept.is_empty() {
        // Short runs: keep whatever was seen rather than fail.
        kept = pooled.iter().map(|p| (p.0, p.2)).collect();
    }
    if kept.is_empty() {
        bail!(
            "the server reported no batch statistics for {model:?} (is the statistics extension on?)"
        );
    }
    // Reference level for the part outside the batch: the light open-loop level when there is one
    // (requests alone, the regime of moderate open-loop traffic: threads wake per request), else the
    // lowest closed-loop level. Its latency is wait + batch + network with one request at a time; its
    // log-normal spread is shared by the batch time and the network time as two independent parts
    // with the same cv (the statistics give means only, not the split).
    let combined = open_levels(levels);
    let low = combined.first().unwrap_or(&levels[0]);
    let svc_sd = lognormal_cv(low.service_mean_ms, low.service_p95_ms) * low.service_mean_ms;
    // With one request at a time a dynamic batcher always waits its full delay (the batch never
    // fills), and the simulator charges exactly that; Triton's queue time beyond it (scheduling
    // overhead) belongs to the part outside the batch, so it goes into the network term.
    let alone = low.open_rate_rps.is_some() || low.concurrency == 1;
    let sim_wait_ms = if alone && config.sim_max_batch() > 1 {
        config.max_queue_delay.unwrap_or(0.0) * 1e3
    } else {
        low.server_queue_ms
    };
    // The batch-1 time the simulator will draw is the pooled mean (mostly hot closed-loop batches);
    // what the reference level spent beyond it (e.g. colder compute between sparse requests) is
    // outside the modelled batch, so it is charged to the network term too. The simulator then
    // reproduces the reference level's mean latency by construction.
    let b1_ms = if kept[0].0 == 1 {
        kept[0].1
    } else {
        low.server_compute_ms
    };
    let network_ms = (low.service_mean_ms - b1_ms - sim_wait_ms).max(0.0);
    let b1 = kept[0].1.max(1e-6);
    let cv = round4((svc_sd / (b1 * b1 + network_ms * network_ms).sqrt()).min(2.0));
    let batches: Vec<BatchPoint> = kept
        .iter()
        .map(|&(size, mean_ms)| BatchPoint {
            size,
            latency: Dist::Lognormal {
                mean: round9(mean_ms * 1e-3),
                cv,
            },
        })
        .collect();
    let opens: Vec<&Level> = combined.iter().collect();
    let mut profile = ServiceProfile {
        schema: PROFILE_SCHEMA.to_string(),
        device: Device::Cpu,
        description: String::new(),
        batches,
        network: (network_ms > 0.0).then(|| Dist::Lognormal {
            mean: round9(network_ms * 1e-3),
            cv,
        }),
        network_by_rate: Vec::new(),
        network_rate_window: None,
        cpu_idle_cores: 0.0,
        cpu_busy_cores_per_instance: 1.0,
    };
    let network_txt = if opens.is_empty() {
        format!(
            "network = the {} level's client mean latency minus the fitted batch-1 time and the batcher's delay \
             (a log-normal with the batches' cv)",
            level_name(low)
        )
    } else {
        let mut points = fit_overheads(&profile, config, &opens, o.seed)?;
        profile.network = Some(points[0].dist.clone());
        if points.len() > 1 {
            profile.network_by_rate = std::mem::take(&mut points);
        }
        "network = per open-loop rate, a quantile table fitted so that kis-sim running these batches at that Poisson rate \
             reproduces the level's client latency quantiles (min, p50, p90, p95, and p99 / p99.9 where the level has 500 / 5,000 answers; \
             the top point adds the level's max - last quantile); `network` is the lowest rate's table, `network_by_rate` all of them \
             (interpolated on the replica's 1 s rate estimate)"
            .to_string()
    };
    profile.description = describe(m, low, &network_txt);
    profile.validate("profile")?;
    Ok(profile)
}

/// One level per open-loop rate, ascending: each figure's median over the rounds.
fn open_levels(levels: &[Level]) -> Vec<Level> {
    let mut rates: Vec<f64> = levels.iter().filter_map(|l| l.open_rate_rps).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    rates
        .iter()
        .map(|&r| {
            let runs: Vec<&Level> = levels
                .iter()
                .filter(|l| l.open_rate_rps == Some(r))
                .collect();
            median_level(&runs)
        })
        .collect()
}

/// The profile's `description`: where, when and how it was measured, and how it was fitted.
fn describe(m: &Measured<'_>, low: &Level, network_txt: &str) -> String {
    let Measured {
        model,
        version,
        config,
        levels,
        options: o,
        started,
        load,
    } = *m;
    let level_txt: Vec<String> = levels
        .iter()
        .map(|l| {
            format!(
                "{}: {:.1} req/s, latency mean {:.2} ms p95 {:.2} ms",
                level_name(l),
                l.throughput_rps,
                l.service_mean_ms,
                l.service_p95_ms
            )
        })
        .collect();
    format!(
        "{version}, model {model} (max_batch_size {}, dynamic batching {}, {} instance(s), KIND_CPU). \
         Measured by kis-agent calibrate on {started} on host {} ({} cores, 1-min load average {load} at start), \
         kis-loadgen in-process on the same host over loopback, closed loop with no think time at \
         concurrency {:?}, {:.0} s each after {:.0} s warm-up. Batch means are Triton statistics deltas \
         (compute_input + compute_infer + compute_output per execution, batch sizes with >= {MIN_BATCHES} executions); \
         open-loop levels {:?} req/s, {:.0} s each, in {} interleaved rounds (figures per rate: medians over the rounds); \
         the batches' log-normal cv is fitted to the {} level's client latency (mean, p95), shared by \
         batch and overhead time as independent parts; {network_txt}. \
         Levels: {}.",
        config.max_batch_size,
        config
            .max_queue_delay
            .map_or("off".to_string(), |d| format!("{:.0} us", d * 1e6)),
        config.instances,
        hostname(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.levels,
        o.duration,
        o.warmup,
        o.open_rates,
        o.open_duration,
        o.open_rounds,
        level_name(low),
        level_txt.join("; "),
    )
}

/// Fixed-point rounds of [`fit_overheads`]; the quantiles settle within a few (checked by the tests).
const FIT_ROUNDS: usize = 8;

/// Simulated requests per level and round (about 0.1 s of simulation each, release build).
const FIT_REQUESTS: f64 = 100_000.0;

/// The quantile ranks a level with `n` answers can support: its minimum stands for rank 1 / (n + 1)
/// (where the smallest of n draws falls on average; the simulation draws many more, so its own
/// minimum would not compare), then p50, p90, p95, and p99 / p99.9 with about 5 answers above them.
pub fn fit_ranks(n: u64) -> Vec<f64> {
    let mut r = vec![min_rank(n), 0.5, 0.9, 0.95];
    if n >= 500 {
        r.push(0.99);
    }
    if n >= 5000 {
        r.push(0.999);
    }
    r
}

/// The rank the minimum of `n` draws stands for.
fn min_rank(n: u64) -> f64 {
    1.0 / (n as f64 + 1.0)
}

/// A level's client latency at rank `p` (one of [`fit_ranks`]), seconds.
fn level_quantile(l: &Level, p: f64) -> f64 {
    let ms = match p {
        p if p == min_rank(l.ok) => l.service_min_ms,
        0.5 => l.service_p50_ms,
        0.9 => l.service_p90_ms,
        0.95 => l.service_p95_ms,
        0.99 => l.service_p99_ms,
        0.999 => l.service_p999_ms,
        _ => l.service_max_ms,
    };
    ms * 1e-3
}

/// A simulation of one replica of the calibrated model under `shape`.
pub fn sim_config(
    profile: &ServiceProfile,
    model: &ModelConfig,
    shape: ShapeSpec,
    arrivals: ArrivalKind,
    seed: u64,
) -> SimConfig {
    let mut cpu = PoolConfig::new(1, profile.clone());
    cpu.instances = model.instances.max(1);
    cpu.max_batch = model.sim_max_batch();
    cpu.max_queue_delay = model.max_queue_delay.unwrap_or(0.0);
    // The GPU pool is unused: the CPU fixture is the only server.
    let gpu = PoolConfig::new(0, profile.clone());
    let mut cfg = SimConfig::new(Workload::new(shape, arrivals), Pools { gpu, cpu });
    cfg.seed = seed;
    // kis-loadgen waits for in-flight answers after the schedule; so does the simulation.
    cfg.drain = true;
    cfg.drain_limit = 5.0;
    cfg.slo = 10.0;
    cfg
}

/// The latency histogram of one replica of `profile` under Poisson arrivals at `rate`.
fn simulate_latency(
    profile: &ServiceProfile,
    config: &ModelConfig,
    rate: f64,
    seed: u64,
) -> Result<Histogram> {
    let shape = ShapeSpec::Constant {
        rate,
        duration: FIT_REQUESTS / rate,
    };
    let cfg = sim_config(profile, config, shape, ArrivalKind::Poisson, seed);
    let mut sim = kis_sim::Simulation::new(cfg)?;
    sim.run();
    Ok(sim.latency())
}

/// Fits the per-request overhead at each open-loop level: one quantile table per level such that
/// kis-sim, running `base`'s batches on one replica configured as `config` under Poisson arrivals
/// at the level's rate, reproduces the level's client latency at the ranks of [`fit_ranks`].
///
/// The overhead cannot be observed per request (Triton's statistics give means only), so it is
/// found by a fixed-point iteration on the simulator itself: start from zero, simulate, move each
/// table value by the gap between the measured and the simulated latency quantile at its rank, keep
/// the table non-decreasing and non-negative, repeat. Every round simulates all levels with all
/// tables in place as `network_by_rate`, so the replica's noisy rate estimate (which blends
/// neighbouring tables) is part of the fit. The batch mix, the batcher's wait and queueing behind
/// a running batch at that rate are the simulator's, so whatever the real server spends beyond
/// them (thread wake-ups, HTTP, cold caches) lands in the overhead. The top point (rank 1) sits
/// the level's max − last quantile above the last fitted value. Deterministic for a given `seed`.
pub fn fit_overheads(
    base: &ServiceProfile,
    config: &ModelConfig,
    opens: &[&Level],
    seed: u64,
) -> Result<Vec<RatePoint>> {
    let ranks: Vec<Vec<f64>> = opens.iter().map(|l| fit_ranks(l.ok)).collect();
    let mut values: Vec<Vec<f64>> = ranks.iter().map(|r| vec![0.0; r.len()]).collect();
    let table = |values: &[Vec<f64>]| -> Vec<RatePoint> {
        opens
            .iter()
            .zip(&ranks)
            .zip(values)
            .map(|((l, r), v)| {
                let last = *r.last().unwrap_or(&0.5);
                let top = (level_quantile(l, 1.0) - level_quantile(l, last)).max(0.0);
                // Flat below the minimum's rank; the top point adds the measured max's excess.
                let mut probs = vec![0.0];
                probs.extend(r.iter().map(|&p| round9(p)));
                probs.push(1.0);
                let mut vals = vec![round9(v[0])];
                vals.extend(v.iter().map(|&x| round9(x)));
                vals.push(round9(v.last().copied().unwrap_or(0.0) + top));
                RatePoint {
                    rate_rps: l.open_rate_rps.unwrap_or(1.0),
                    dist: Dist::Quantiles {
                        probs,
                        values: vals,
                    },
                }
            })
            .collect()
    };
    for round in 0..FIT_ROUNDS {
        let mut p = base.clone();
        p.network = None;
        p.network_by_rate = table(&values);
        if p.network_by_rate.len() == 1 {
            p.network = Some(p.network_by_rate.remove(0).dist);
        }
        let mut worst: f64 = 0.0;
        for (i, l) in opens.iter().enumerate() {
            let rate = l.open_rate_rps.unwrap_or(1.0);
            let h = simulate_latency(&p, config, rate, seed.wrapping_add(round as u64))?;
            let mut floor: f64 = 0.0;
            for (k, &q) in ranks[i].iter().enumerate() {
                let gap = level_quantile(l, q) - h.quantile(q).unwrap_or(0.0);
                worst = worst.max(gap.abs() / level_quantile(l, q).max(1e-9));
                floor = (values[i][k] + gap).max(floor);
                values[i][k] = floor;
            }
        }
        tracing::debug!(round, worst_gap = worst, "overhead fit");
    }
    Ok(table(&values))
}

/// The median of `x` (the mean of the middle two for an even count); 0 when empty.
fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    match x.len() {
        0 => 0.0,
        n if n % 2 == 1 => x[n / 2],
        n => 0.5 * (x[n / 2 - 1] + x[n / 2]),
    }
}

/// Rounds of one open-loop rate as one level: every latency figure is its median over the rounds
/// (a disturbance on this shared machine hits one round, not the median); `ok` is the smallest
/// round's count, since the quantiles come from rounds of that size.
pub fn median_level(runs: &[&Level]) -> Level {
    let Some(first) = runs.first() else {
        panic!("median_level needs at least one run");
    };
    let m = |f: fn(&Level) -> f64| median(runs.iter().map(|l| f(l)).collect());
    Level {
        round: 0,
        ok: runs.iter().map(|l| l.ok).min().unwrap_or(0),
        errors: runs.iter().map(|l| l.errors).sum(),
        elapsed_s: runs.iter().map(|l| l.elapsed_s).sum(),
        throughput_rps: m(|l| l.throughput_rps),
        service_mean_ms: m(|l| l.service_mean_ms),
        service_p50_ms: m(|l| l.service_p50_ms),
        service_p90_ms: m(|l| l.service_p90_ms),
        service_p95_ms: m(|l| l.service_p95_ms),
        service_p99_ms: m(|l| l.service_p99_ms),
        service_p999_ms: m(|l| l.service_p999_ms),
        service_min_ms: m(|l| l.service_min_ms),
        service_max_ms: m(|l| l.service_max_ms),
        server_request_ms: m(|l| l.server_request_ms),
        server_queue_ms: m(|l| l.server_queue_ms),
        server_compute_ms: m(|l| l.server_compute_ms),
        network_ms: m(|l| l.network_ms),
        busy_fraction: m(|l| l.busy_fraction),
        batches: Vec::new(),
        ..(*first).clone()
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_fit_recovers_the_cv() {
        // Mean 10, cv 0.3: sigma^2 = ln(1.09), p95 = exp(mu + 1.645 sigma).
        let s2 = (1.0f64 + 0.09).ln();
        let mu = 10f64.ln() - s2 / 2.0;
        let p95 = (mu + 1.644_853_6 * s2.sqrt()).exp();
        assert!((lognormal_cv(10.0, p95) - 0.3).abs() < 1e-6);
        assert_eq!(lognormal_cv(10.0, 9.0), 0.0);
    }

    /// A level whose client latency is what kis-sim gives for `profile` at `rate` (a stand-in for a
    /// measured level: the fit must find an overhead that reproduces it).
    fn level_from_sim(profile: &ServiceProfile, config: &ModelConfig, rate: f64) -> Level {
        let h = simulate_latency(profile, config, rate, 99).unwrap();
        let q = |p: f64| h.quantile(p).unwrap() * 1e3;
        Level {
            concurrency: 0,
            open_rate_rps: Some(rate),
            round: 0,
            elapsed_s: 60.0,
            ok: h.count(),
            errors: 0,
            throughput_rps: rate,
            service_mean_ms: h.mean().unwrap() * 1e3,
            service_p50_ms: q(0.5),
            service_p90_ms: q(0.9),
            service_p95_ms: q(0.95),
            service_p99_ms: q(0.99),
            service_p999_ms: q(0.999),
            service_min_ms: q(0.0),
            service_max_ms: h.max().unwrap() * 1e3,
            server_request_ms: 0.0,
            server_queue_ms: 0.0,
            server_compute_ms: 0.0,
            network_ms: 0.0,
            busy_fraction: 0.0,
            batches: Vec::new(),
        }
    }

    #[test]
    fn overhead_fit_reproduces_the_measured_quantiles_at_each_rate() {
        let config = ModelConfig {
            max_batch_size: 16,
            max_queue_delay: Some(0.002),
            instances: 1,
        };
        let base = ServiceProfile {
            batches: vec![
                BatchPoint {
                    size: 1,
                    latency: Dist::Lognormal {
                        mean: 0.0013,
                        cv: 0.3,
                    },
                },
                BatchPoint {
                    size: 4,
                    latency: Dist::Lognormal {
                        mean: 0.004,
                        cv: 0.3,
                    },
                },
            ],
            ..ServiceProfile::single(Device::Cpu, Dist::constant(0.0))
        };
        // The "real" server: a slow, wide overhead at 20 req/s, a faster one at 150 req/s.
        let mut truth = base.clone();
        truth.network_by_rate = vec![
            RatePoint {
                rate_rps: 20.0,
                dist: Dist::Lognormal {
                    mean: 0.003,
                    cv: 0.6,
                },
            },
            RatePoint {
                rate_rps: 150.0,
                dist: Dist::Lognormal {
                    mean: 0.0015,
                    cv: 0.3,
                },
            },
        ];
        let levels: Vec<Level> = [20.0, 150.0]
            .iter()
            .map(|&r| level_from_sim(&truth, &config, r))
            .collect();
        let opens: Vec<&Level> = levels.iter().collect();
        let points = fit_overheads(&base, &config, &opens, 1).unwrap();
        assert_eq!(points.len(), 2);
        let mut fitted = base.clone();
        fitted.network_by_rate = points.clone();
        fitted.validate("fitted").unwrap();
        for (l, pt) in levels.iter().zip(&points) {
            let Dist::Quantiles { probs, .. } = &pt.dist else {
                panic!("{pt:?}")
            };
            assert_eq!(probs.len(), 8, "{probs:?}");
            assert_eq!(probs[2..], [0.5, 0.9, 0.95, 0.99, 0.999, 1.0]);
            let rate = l.open_rate_rps.unwrap();
            // Another seed than the fit's: the fitted profile reproduces the level's quantiles.
            let h = simulate_latency(&fitted, &config, rate, 5).unwrap();
            for (p, want) in [
                (0.5, l.service_p50_ms),
                (0.9, l.service_p90_ms),
                (0.95, l.service_p95_ms),
                (0.99, l.service_p99_ms),
            ] {
                let got = h.quantile(p).unwrap() * 1e3;
                assert!(
                    (got / want - 1.0).abs() < 0.03,
                    "{rate} req/s p{p}: fitted {got:.3} ms, measured {want:.3} ms"
                );
            }
            let mean = h.mean().unwrap() * 1e3;
            assert!(
                (mean / l.service_mean_ms - 1.0).abs() < 0.03,
                "{rate} req/s mean: {mean:.3} vs {:.3}",
                l.service_mean_ms
            );
        }
        // And the overhead found falls with the rate, as the truth's does.
        assert!(
            points[0].dist.mean() > 1.5 * points[1].dist.mean(),
            "{points:?}"
        );
        // Same inputs, same tables.
        assert_eq!(points, fit_overheads(&base, &config, &opens, 1).unwrap());
    }

    #[test]
    fn rounds_combine_by_median() {
        let config = ModelConfig {
            max_batch_size: 1,
            max_queue_delay: None,
            instances: 1,
        };
        let p = ServiceProfile::single(Device::Cpu, Dist::constant(0.002));
        let mut a = level_from_sim(&p, &config, 20.0);
        a.ok = 300;
        let mut b = a.clone();
        b.ok = 280;
        b.service_p95_ms = 40.0; // a disturbed round
        b.service_p50_ms = 1.0;
        let mut c = a.clone();
        c.service_p95_ms = a.service_p95_ms + 1.0;
        let m = median_level(&[&a, &b, &c]);
        assert_eq!(
            m.service_p95_ms, c.service_p95_ms,
            "the outlier round is ignored"
        );
        assert_eq!(m.service_p50_ms, a.service_p50_ms);
        assert_eq!(m.ok, 280, "ranks come from the smallest round");
        assert_eq!(m.open_rate_rps, Some(20.0));
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
    }

    #[test]
    fn ranks_follow_the_sample_size() {
        assert_eq!(fit_ranks(199), vec![0.005, 0.5, 0.9, 0.95]);
        assert_eq!(fit_ranks(600).last(), Some(&0.99));
        assert_eq!(fit_ranks(6000).last(), Some(&0.999));
    }
}
