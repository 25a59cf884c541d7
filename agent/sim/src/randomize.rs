//! Domain randomisation for training: every episode's cluster and workload drawn from its reset
//! seed (shape and its parameters, or a window of a training / validation trace at a random
//! speed-up; rate scale; cold-start and warm-up times; GPU capacity; initial replicas; service-time
//! jitter). Held-out traces are refused when the settings are checked.

use std::path::PathBuf;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use kis_traffic::ShapeSpec;
use kis_traffic::trace::Bin;

use crate::config::SimConfig;
use crate::split::{SPLIT, ensure_not_held_out};
use crate::{Error, Result};

/// Seed stream of the randomisation draws (independent of the simulation's own streams).
const STREAM: u64 = 0xd0_4a15_7a11;

/// What `Randomization::load` is a fraction of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBasis {
    /// The workload's mean rate, as a fraction of the base config's largest fleet (whatever GPUs
    /// the episode draws): the first scenarios' setting.
    #[default]
    FleetMean,
    /// The workload's busiest `PEAK_WINDOW` seconds, as a fraction of the episode's own usable
    /// fleet (its drawn GPUs): how `evaluate` scales every trace (busiest minute at 80 %).
    EpisodePeak,
}

/// Window of [`LoadBasis::EpisodePeak`], simulated seconds (`evaluate` scales by its busiest minute).
pub const PEAK_WINDOW: f64 = 60.0;

/// What each episode may vary. Ranges are `[low, high]`, drawn uniformly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Randomization {
    /// Episode length in seconds (synthetic shapes and trace windows last this long).
    pub episode_seconds: f64,
    /// Training / validation traces to replay windows of; held-out ones are refused.
    pub traces: Vec<PathBuf>,
    /// Probability that an episode replays a trace window instead of a synthetic shape (when
    /// `traces` is non-empty).
    pub trace_fraction: f64,
    /// Trace speed-up (trace seconds per simulated second).
    pub speedup: [f64; 2],
    /// Offered load as a fraction of capacity (before `rate_scale`), in the sense of `load_basis`.
    pub load: [f64; 2],
    /// What `load` measures: the mean against the largest fleet (default) or the busiest minute
    /// against the episode's fleet.
    pub load_basis: LoadBasis,
    /// Multiplies the whole workload's rate.
    pub rate_scale: [f64; 2],
    /// Multiplies the image pull and model load times (the cold start).
    pub cold_start_scale: [f64; 2],
    /// Multiplies the warm-up time.
    pub warmup_scale: [f64; 2],
    /// GPUs in the cluster (one per node; the CPU cores are spread so their total stays).
    pub gpus: [u32; 2],
    /// Initial replicas of the GPU pool (clamped to its [min, max]).
    pub gpu_replicas: [u32; 2],
    /// Initial replicas of the CPU pool (clamped to its [min, max]).
    pub cpu_replicas: [u32; 2],
    /// Each pool's service times are multiplied by a factor in [1 − j, 1 + j].
    pub profile_jitter: f64,
}

impl Default for Randomization {
    fn default() -> Self {
        Randomization {
            episode_seconds: 300.0,
            traces: Vec::new(),
            trace_fraction: 0.5,
            speedup: [1.0, 60.0],
            load: [0.2, 0.7],
            load_basis: LoadBasis::FleetMean,
            rate_scale: [0.8, 1.25],
            cold_start_scale: [0.5, 2.0],
            warmup_scale: [0.5, 2.0],
            gpus: [1, 4],
            gpu_replicas: [1, 3],
            cpu_replicas: [1, 4],
            profile_jitter: 0.15,
        }
    }
}

/// A trace read once, with the stretch of it that may be used.
#[derive(Debug)]
pub(crate) struct TraceData {
    path: PathBuf,
    bins: Vec<Bin>,
    lo: f64,
    hi: f64,
}

impl TraceData {
    /// Mean rate over trace time `[a, b)` (bins step-held).
    fn mean(&self, a: f64, b: f64) -> f64 {
        let i0 = self.bins.partition_point(|x| x.t <= a).saturating_sub(1);
        let mut sum = 0.0;
        for (i, bin) in self.bins.iter().enumerate().skip(i0) {
            let next = self.bins.get(i + 1).map_or(self.hi.max(bin.t), |n| n.t);
            let (s, e) = (bin.t.max(a), next.min(b));
            if s >= b {
                break;
            }
            if e > s {
                sum += bin.rate * (e - s);
            }
        }
        if b > a { sum / (b - a) } else { 0.0 }
    }
}

fn range(field: &str, r: [f64; 2], positive: bool) -> Result<()> {
    let ok = r[0].is_finite() && r[1].is_finite() && r[0] <= r[1] && r[0] >= 0.0;
    if !ok || (positive && r[0] <= 0.0) {
        return Err(Error::invalid(
            format!("randomize.{field}"),
            format!(
                "must be [low, high] with 0 {} low <= high, got {r:?}",
                if positive { "<" } else { "<=" }
            ),
        ));
    }
    Ok(())
}

impl Randomization {
    /// Checks the ranges, reads the traces and refuses held-out ones.
    pub(crate) fn load(&self) -> Result<Arc<Vec<TraceData>>> {
        if !(self.episode_seconds.is_finite() && self.episode_seconds > 0.0) {
            return Err(Error::invalid(
                "randomize.episode_seconds",
                format!("must be finite and > 0, got {}", self.episode_seconds),
            ));
        }
        range("speedup", self.speedup, true)?;
        range("load", self.load, true)?;
        range("rate_scale", self.rate_scale, true)?;
        range("cold_start_scale", self.cold_start_scale, false)?;
        range("warmup_scale", self.warmup_scale, false)?;
        range("trace_fraction", [self.trace_fraction; 2], false)?;
        if !(0.0..1.0).contains(&self.profile_jitter) {
            return Err(Error::invalid(
                "randomize.profile_jitter",
                format!("must be in [0, 1), got {}", self.profile_jitter),
            ));
        }
        for (f, r) in [
            ("gpus", self.gpus),
            ("gpu_replicas", self.gpu_replicas),
            ("cpu_replicas", self.cpu_replicas),
        ] {
            if r[0] > r[1] {
                return Err(Error::invalid(
                    format!("randomize.{f}"),
                    format!("must be [low, high] with low <= high, got {r:?}"),
                ));
            }
        }
        let mut out = Vec::new();
        for path in &self.traces {
            let bins = kis_traffic::trace::read(path).map_err(Error::Workload)?;
            let end = bins.last().map_or(0.0, |b| b.t)
                + if bins.len() > 1 {
                    bins[bins.len() - 1].t - bins[bins.len() - 2].t
                } else {
                    1.0
                };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let (lo, hi) = SPLIT
                .iter()
                .find(|e| e.file == name)
                .and_then(|e| e.usable)
                .map_or((0.0, end), |(lo, hi, _)| (lo, hi.min(end)));
            ensure_not_held_out(path, lo, Some(hi - lo))?;
            out.push(TraceData {
                path: path.clone(),
                bins,
                lo,
                hi,
            });
        }
        Ok(Arc::new(out))
    }

    /// `base` with this episode's draws applied. `max_rate` is the largest fleet's capacity in
    /// req/s (the load levels are fractions of it).
    pub(crate) fn apply(
        &self,
        base: &SimConfig,
        traces: &[TraceData],
        max_rate: f64,
        seed: u64,
    ) -> SimConfig {
        let mut rng = Pcg64Mcg::seed_from_u64(seed ^ STREAM);
        let mut sc = base.clone();
        let mean = max_rate * uniform(&mut rng, self.load);
        let use_trace = !traces.is_empty() && rng.random::<f64>() < self.trace_fraction;
        sc.workload.shape = if use_trace {
            let t = &traces[rng.random_range(0..traces.len())];
            self.trace_window(t, mean, &mut rng)
        } else {
            synthetic(self.episode_seconds, mean, &mut rng)
        };
        sc.workload.scale = uniform(&mut rng, self.rate_scale);
        let cold = uniform(&mut rng, self.cold_start_scale);
        let warm = uniform(&mut rng, self.warmup_scale);
        let jit = self.profile_jitter;
        for p in [&mut sc.pools.gpu, &mut sc.pools.cpu] {
            p.startup.image_pull = p.startup.image_pull.scaled(cold);
            p.startup.model_load = p.startup.model_load.scaled(cold);
            p.startup.warmup = p.startup.warmup.scaled(warm);
            p.profile = p
                .profile
                .with_service_scaled(uniform(&mut rng, [1.0 - jit, 1.0 + jit]));
        }
        let g = rng.random_range(self.gpus[0]..=self.gpus[1]);
        let total_cpus = sc.cluster.cpus_per_node * sc.cluster.nodes as f64;
        sc.cluster.nodes = g.max(1);
        sc.cluster.gpus_per_node = u32::from(g > 0);
        sc.cluster.cpus_per_node = total_cpus / sc.cluster.nodes as f64;
        if let Some(na) = sc.cluster.node_autoscaler.as_mut() {
            na.max_nodes = na.max_nodes.max(sc.cluster.nodes);
        }
        let draw = |rng: &mut Pcg64Mcg, r: [u32; 2], lo: u32, hi: u32| {
            rng.random_range(r[0]..=r[1]).clamp(lo, hi.max(lo))
        };
        let (gp, cp) = (&sc.pools.gpu, &sc.pools.cpu);
        let gr = draw(
            &mut rng,
            self.gpu_replicas,
            gp.min_replicas,
            gp.max_replicas,
        );
        let cr = draw(
            &mut rng,
            self.cpu_replicas,
            cp.min_replicas,
            cp.max_replicas,
        );
        sc.pools.gpu.replicas = gr;
        sc.pools.cpu.replicas = cr;
        if self.load_basis == LoadBasis::EpisodePeak {
            // Rescale so the busiest minute is the drawn fraction of this episode's fleet (the
            // shape above was built at the mean `max_rate · load`; only its form is kept).
            let fleet = episode_fleet_rate(&sc);
            if let Ok(p) = sc.workload.shape.build(seed) {
                let peak = peak_rate_over(&p, PEAK_WINDOW);
                if peak > 0.0 && fleet > 0.0 {
                    sc.workload.scale *= fleet * (mean / max_rate.max(1e-9)) / peak;
                }
            }
        }
        sc
    }

    fn trace_window(&self, t: &TraceData, mean: f64, rng: &mut Pcg64Mcg) -> ShapeSpec {
        let span = t.hi - t.lo;
        let speedup = uniform(rng, self.speedup)
            .min(span / self.episode_seconds)
            .max(1e-3);
        let limit = (self.episode_seconds * speedup).min(span);
        let offset = t.lo + rng.random::<f64>() * (span - limit).max(0.0);
        let m = t.mean(offset, offset + limit);
        let m = if m > 0.0 {
            m
        } else {
            t.mean(t.lo, t.hi).max(1e-9)
        };
        ShapeSpec::Trace {
            path: t.path.clone(),
            scale: mean / m,
            speedup,
            offset,
            limit: Some(limit),
        }
    }
}

/// Req/s of the episode's usable fleet: each pool's max replicas (the GPU pool's capped at the
/// cluster's GPUs) times its replica rate.
fn episode_fleet_rate(sc: &SimConfig) -> f64 {
    let g = &sc.pools.gpu;
    let c = &sc.pools.cpu;
    let gpus = g.max_replicas.min(sc.gpu_capacity()) as f64;
    gpus * g.replica_capacity() + c.max_replicas as f64 * c.replica_capacity()
}

/// Highest mean rate of `p` over any `window`-second span (stepped by a sixth of the window); the
/// whole profile's mean when it is shorter than the window.
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

fn uniform<R: RngExt>(rng: &mut R, r: [f64; 2]) -> f64 {
    r[0] + (r[1] - r[0]) * rng.random::<f64>()
}

/// A synthetic shape of mean rate about `mean`, lasting `duration`, parameters drawn.
fn synthetic<R: RngExt>(duration: f64, mean: f64, rng: &mut R) -> ShapeSpec {
    let low = |rng: &mut R, a: f64, b: f64| mean * uniform(rng, [a, b]);
    match rng.random_range(0..5u32) {
        0 => ShapeSpec::Constant {
            rate: mean,
            duration,
        },
        1 => {
            let a = low(rng, 0.2, 0.6);
            let (start, end) = if rng.random::<bool>() {
                (a, 2.0 * mean - a)
            } else {
                (2.0 * mean - a, a)
            };
            ShapeSpec::Ramp {
                start,
                end,
                steps: rng.random_range(5..=20),
                duration,
            }
        }
        2 => {
            let min = low(rng, 0.2, 0.8);
            ShapeSpec::Periodic {
                min,
                max: 2.0 * mean - min,
                cycles: uniform(rng, [0.5, 4.0]),
                duration,
            }
        }
        3 => {
            let min = low(rng, 0.2, 0.6);
            ShapeSpec::Random {
                min,
                max: 2.0 * mean - min,
                interval: [15.0, 30.0, 60.0][rng.random_range(0..3)],
                duration,
            }
        }
        _ => {
            let base = low(rng, 0.3, 0.7);
            ShapeSpec::Spike {
                base,
                peak: base * uniform(rng, [2.0, 5.0]),
                start: uniform(rng, [0.1, 0.5]),
                length: uniform(rng, [0.1, 0.4]),
                duration,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_window_mean_is_step_held() {
        let t = TraceData {
            path: PathBuf::from("x.csv"),
            bins: vec![
                Bin { t: 0.0, rate: 1.0 },
                Bin { t: 10.0, rate: 3.0 },
                Bin { t: 20.0, rate: 5.0 },
            ],
            lo: 0.0,
            hi: 30.0,
        };
        assert_eq!(t.mean(0.0, 30.0), 3.0);
        assert_eq!(t.mean(5.0, 15.0), 2.0);
        assert_eq!(t.mean(25.0, 30.0), 5.0);
    }
}
