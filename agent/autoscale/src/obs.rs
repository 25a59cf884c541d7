//! The policy's observation and action mask, built only from what a live cluster exposes: the
//! scraped [`PoolView`]s (Prometheus + apiserver), a short history of arrival and completion rates
//! from counters, and the agent's own current target per pool. The simulator's environment, the
//! trainer, the evaluation harness and the agent's live mode all call this one builder, so a policy
//! sees the same vector in simulation and in a cluster.
//!
//! Every feature is normalised by configured capacity ([`Capacity`]), never by the workload (its
//! peak rate or its end are unknown in a cluster). No feature reads the future: the builder only gets
//! values as of the last scrape and counters up to now.
//!
//! The spec is versioned ([`OBS_SPEC_VERSION`]); a trained policy records [`ObsSet::spec_id`] and
//! must refuse to run against another one.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::view::PoolView;

/// Version of the observation spec (feature order, definitions and normalisation). Bump on any
/// change of either set.
pub const OBS_SPEC_VERSION: u32 = 1;

/// Sizes of the multi-discrete action `MultiDiscrete([5, 5, 3])`: GPU delta, CPU delta, placement.
pub const ACTION_DIMS: [usize; 3] = [5, 5, 3];

/// Length of the flat action mask: 5 GPU deltas (−2..=2), 5 CPU deltas (−2..=2), 3 placements.
pub const MASK_LEN: usize = 13;

/// Largest replica change of one action, either way.
pub const MAX_DELTA: i64 = 2;

/// Control steps of rate history the builder keeps (the paper's trend and variance windows).
pub const HISTORY_LEN: usize = 5;

/// Feature names of [`ObsSet::Default`], in order.
pub const DEFAULT_NAMES: [&str; 18] = [
    "arrival_rate",
    "completion_rate",
    "arrival_trend",
    "ready_load",
    "queue",
    "in_flight",
    "p95",
    "gpu_spec",
    "gpu_ready",
    "gpu_starting",
    "gpu_target",
    "gpu_util",
    "cpu_spec",
    "cpu_ready",
    "cpu_starting",
    "cpu_target",
    "cpu_util",
    "gpu_headroom",
];

/// Feature names of [`ObsSet::Paper`], in order (the KIS-S paper's 10-feature state).
pub const PAPER_NAMES: [&str; 10] = [
    "n_replicas",
    "gpu_util",
    "p95",
    "throughput",
    "cpu_util",
    "mem_util",
    "delta_p95",
    "delta_throughput",
    "t_norm",
    "pattern_id",
];

/// A named observation set. Feature definitions: the crate README's "Observation" section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObsSet {
    /// Rates, queue and in-flight, latency, and per pool spec / Ready / starting / target /
    /// utilisation, plus the GPU headroom (18 features).
    #[default]
    Default,
    /// The paper's 10 features, with the documented differences where a cluster cannot compute one
    /// as the paper defines it.
    Paper,
}

impl ObsSet {
    /// Feature names in order.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            ObsSet::Default => &DEFAULT_NAMES,
            ObsSet::Paper => &PAPER_NAMES,
        }
    }

    /// Number of features.
    pub fn dim(self) -> usize {
        self.names().len()
    }

    /// `"default-v1"`, `"paper-v1"`: what a policy records as the spec it was trained with.
    pub fn spec_id(self) -> String {
        let name = match self {
            ObsSet::Default => "default",
            ObsSet::Paper => "paper",
        };
        format!("{name}-v{OBS_SPEC_VERSION}")
    }

    /// The set named by a [`ObsSet::spec_id`]; `None` for another version or an unknown name.
    pub fn from_spec_id(id: &str) -> Option<Self> {
        [ObsSet::Default, ObsSet::Paper]
            .into_iter()
            .find(|s| s.spec_id() == id)
    }
}

/// Configured capacity the features are normalised by, and the bounds the action mask enforces.
/// Index 0 is the GPU pool, 1 the CPU pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Least replicas per pool the agent may ask for.
    pub min_replicas: [u32; 2],
    /// Most replicas per pool the agent may ask for.
    pub max_replicas: [u32; 2],
    /// Req/s one Ready replica of each pool serves with all its instances busy (configured, e.g.
    /// from the measured service profile).
    pub replica_rate: [f64; 2],
    /// GPUs the GPU pool can ever get (allocatable GPUs in the cluster, node autoscaler included).
    pub gpus: u32,
    /// Latency objective, seconds.
    pub slo: f64,
    /// Period of the paper set's `t_norm` (the paper's 300 s episode), seconds.
    pub horizon: f64,
}

impl Capacity {
    /// Req/s the largest allowed fleet serves: Σ usable max replicas × replica rate.
    pub fn max_rate(&self) -> f64 {
        let hi = [self.upper(0), self.upper(1)];
        (hi[0] as f64 * self.replica_rate[0] + hi[1] as f64 * self.replica_rate[1]).max(1e-9)
    }

    /// Most replicas pool `i` can usefully have: its max, and for the GPU pool the GPUs (more GPU
    /// pods would stay Pending). Never below the min.
    pub fn upper(&self, i: usize) -> u32 {
        let hi = if i == 0 {
            self.max_replicas[0].min(self.gpus)
        } else {
            self.max_replicas[1]
        };
        hi.max(self.min_replicas[i])
    }

    /// The new target of pool `i` after `delta`: clamped to [min, [`Capacity::upper`]]. The one
    /// place the environment and the live mode apply an action's delta.
    pub fn apply_delta(&self, i: usize, target: u32, delta: i64) -> u32 {
        if delta == 0 {
            // Holding is always allowed, even from outside the bounds (a scenario may start there).
            return target;
        }
        (target as i64 + delta).clamp(self.min_replicas[i] as i64, self.upper(i) as i64) as u32
    }

    /// Which of the 13 action components are allowed from `target`: a non-zero delta is masked
    /// when it would leave [min, [`Capacity::upper`]] (where [`Capacity::apply_delta`] would clamp
    /// it); delta 0 and every placement are always allowed.
    pub fn action_mask(&self, target: [u32; 2]) -> [bool; MASK_LEN] {
        let mut m = [true; MASK_LEN];
        for i in 0..2 {
            for k in 0..5 {
                let d = k as i64 - MAX_DELTA;
                let t = target[i] as i64 + d;
                m[i * 5 + k] =
                    d == 0 || (t >= self.min_replicas[i] as i64 && t <= self.upper(i) as i64);
            }
        }
        m
    }
}

/// One control step of the rate history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSample {
    /// End of the step, seconds.
    pub t: f64,
    /// Requests arriving at the Service per second over the step (`increase(arrivals[step]) / step`).
    pub arrival_rate: f64,
    /// Requests completed per second over the step.
    pub completion_rate: f64,
    /// The p95 latency the builder saw at the end of the step (for Δp95).
    pub p95: Option<f64>,
}

/// The last [`HISTORY_LEN`] control steps, built from cumulative counters as Prometheus scrapes
/// them (`kis_requests_total`-style arrival and completion counters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateHistory {
    last: Option<(f64, f64, f64)>,
    samples: VecDeque<StepSample>,
}

impl RateHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything (a new episode).
    pub fn clear(&mut self) {
        self.last = None;
        self.samples.clear();
    }

    /// Feeds the counters at time `t` (totals since any fixed origin) and the p95 seen then. The
    /// first call only sets the baseline; each later one with a later `t` adds a step (one with the
    /// same `t`, no new scrape, only updates the p95).
    pub fn push_counters(&mut self, t: f64, arrivals: f64, completions: f64, p95: Option<f64>) {
        if let Some((t0, a0, c0)) = self.last {
            let dt = t - t0;
            if dt <= 0.0 {
                // No new scrape since the last step: nothing to add.
                if let Some(s) = self.samples.back_mut() {
                    s.p95 = p95;
                }
                return;
            }
            let rate = |x: f64| x.max(0.0) / dt;
            if self.samples.len() == HISTORY_LEN {
                self.samples.pop_front();
            }
            self.samples.push_back(StepSample {
                t,
                arrival_rate: rate(arrivals - a0),
                completion_rate: rate(completions - c0),
                p95,
            });
        } else if let Some(s) = self.samples.back_mut() {
            s.p95 = p95;
        }
        self.last = Some((t, arrivals, completions));
    }

    /// The history of a scraped series: `(t, arrivals_total, completions_total, p95)` rows at the
    /// control-step boundaries, oldest first, as a Prometheus range query at the step returns them.
    pub fn from_series(rows: &[(f64, f64, f64, Option<f64>)]) -> Self {
        let mut h = Self::new();
        for &(t, a, c, p) in rows {
            h.push_counters(t, a, c, p);
        }
        h
    }

    /// The kept steps, oldest first.
    pub fn samples(&self) -> &VecDeque<StepSample> {
        &self.samples
    }
}

/// Everything the builder reads at one decision time.
#[derive(Clone, Copy, Debug)]
pub struct ObsInput<'a> {
    /// The GPU pool as scraped now.
    pub gpu: &'a PoolView,
    /// The CPU pool as scraped now.
    pub cpu: &'a PoolView,
    /// The agent's own current target per pool (GPU, CPU): what it last published.
    pub target: [u32; 2],
    /// Rates of the last control steps.
    pub history: &'a RateHistory,
}

impl ObsInput<'_> {
    /// The larger of the two pools' windowed p95 (an upper bound on the Service's p95).
    pub fn p95(&self) -> Option<f64> {
        combined_p95(self.gpu.p95_latency, self.cpu.p95_latency)
    }
}

/// The p95 the builder reads from the two pools' windowed p95s: the larger one (finite only).
pub fn combined_p95(gpu: Option<f64>, cpu: Option<f64>) -> Option<f64> {
    match (gpu, cpu) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
    .filter(|v| v.is_finite())
}

fn unit(x: f64) -> f32 {
    if x.is_finite() {
        x.clamp(0.0, 1.0) as f32
    } else {
        0.0
    }
}

/// Maps a signed change in [−1, 1] (clamped) to [0, 1], 0.5 = no change.
fn signed(x: f64) -> f64 {
    if x.is_finite() {
        0.5 * (x.clamp(-1.0, 1.0) + 1.0)
    } else {
        0.5
    }
}

fn mean_util(v: &PoolView, gpu: bool) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for p in v.pods.iter().filter(|p| p.ready) {
        let u = if gpu {
            p.gpu_utilization
        } else {
            p.cpu_utilization
        };
        if let Some(u) = u {
            sum += u;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The paper's `pattern_id`, computed from the arrival-rate history (the paper uses the label of
/// the synthetic shape, which a cluster does not know): 0 steady, 1/3 rising, 2/3 falling,
/// 1 bursty (coefficient of variation over 0.5 without a monotone trend).
pub fn load_regime(h: &RateHistory) -> f64 {
    let xs: Vec<f64> = h.samples().iter().map(|s| s.arrival_rate).collect();
    if xs.len() < 2 {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let cv = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt() / mean;
    let slope = (xs[xs.len() - 1] - xs[0]) / mean;
    let monotone_up = xs.windows(2).all(|w| w[1] >= w[0]);
    let monotone_down = xs.windows(2).all(|w| w[1] <= w[0]);
    if slope > 0.2 && monotone_up {
        1.0 / 3.0
    } else if slope < -0.2 && monotone_down {
        2.0 / 3.0
    } else if cv > 0.5 {
        1.0
    } else if slope > 0.2 {
        1.0 / 3.0
    } else if slope < -0.2 {
        2.0 / 3.0
    } else {
        0.0
    }
}

/// Writes the observation of `set` into `out` (length [`ObsSet::dim`]); every value is in [0, 1].
///
/// # Panics
/// When `out` has the wrong length (a caller bug).
pub fn observe(set: ObsSet, cap: &Capacity, input: &ObsInput<'_>, out: &mut [f32]) {
    assert_eq!(out.len(), set.dim(), "observation buffer for {set:?}");
    match set {
        ObsSet::Default => observe_default(cap, input, out),
        ObsSet::Paper => observe_paper(cap, input, out),
    }
}

/// [`observe`] into a new vector.
pub fn observation(set: ObsSet, cap: &Capacity, input: &ObsInput<'_>) -> Vec<f32> {
    let mut v = vec![0.0; set.dim()];
    observe(set, cap, input, &mut v);
    v
}

fn observe_default(cap: &Capacity, x: &ObsInput<'_>, out: &mut [f32]) {
    let max_rate = cap.max_rate();
    let s = x.history.samples();
    let last = s.back();
    let arrival = last.map_or(0.0, |s| s.arrival_rate);
    let completion = last.map_or(0.0, |s| s.completion_rate);
    // Trend over the last three steps, as the paper's load_trend, but relative to capacity.
    let old = if s.len() >= 3 {
        s[s.len() - 3].arrival_rate
    } else {
        s.front().map_or(0.0, |s| s.arrival_rate)
    };
    let views = [x.gpu, x.cpu];
    let ready_rate: f64 = (0..2)
        .map(|i| views[i].ready_pods() as f64 * cap.replica_rate[i])
        .sum();
    let ready_load = if ready_rate > 0.0 {
        arrival / ready_rate / 2.0
    } else if arrival > 0.0 {
        1.0
    } else {
        0.0
    };
    // A queue of one SLO's worth of the largest fleet's throughput reads 0.5.
    let scale = max_rate * cap.slo;
    let queue = x.gpu.queue_len + x.cpu.queue_len;
    let in_flight: f64 = views
        .iter()
        .flat_map(|v| v.pods.iter())
        .map(|p| p.in_flight as f64)
        .sum();
    let mut f = vec![
        arrival / max_rate,
        completion / max_rate,
        signed((arrival - old) / max_rate),
        ready_load,
        queue / (queue + scale),
        in_flight / (in_flight + scale),
        x.p95().map_or(0.0, |p| p / (2.0 * cap.slo)),
    ];
    for (i, v) in views.iter().enumerate() {
        let max = cap.max_replicas[i].max(1) as f64;
        let ready = v.ready_pods();
        let starting = (v.pods.len() as u32).saturating_sub(ready);
        f.extend([
            v.spec_replicas as f64 / max,
            ready as f64 / max,
            starting as f64 / max,
            x.target[i] as f64 / max,
            mean_util(v, i == 0),
        ]);
    }
    let gmax = cap.max_replicas[0].max(1) as f64;
    f.push((cap.upper(0) as f64 - x.target[0] as f64) / gmax);
    for (o, v) in out.iter_mut().zip(f) {
        *o = unit(v);
    }
}

fn observe_paper(cap: &Capacity, x: &ObsInput<'_>, out: &mut [f32]) {
    let max_rate = cap.max_rate();
    let s = x.history.samples();
    let last = s.back();
    let prev = if s.len() >= 2 {
        s.get(s.len() - 2)
    } else {
        None
    };
    let tp = last.map_or(0.0, |s| s.completion_rate);
    let tp_prev = prev.map_or(tp, |s| s.completion_rate);
    let p95 = x.p95();
    let dp95 = match (p95, prev.and_then(|s| s.p95)) {
        (Some(a), Some(b)) => (a - b) / cap.slo,
        _ => 0.0,
    };
    let total_max = (cap.max_replicas[0] + cap.max_replicas[1]).max(1) as f64;
    let now = x.gpu.now;
    let f = [
        (x.gpu.spec_replicas + x.cpu.spec_replicas) as f64 / total_max,
        mean_util(x.gpu, true),
        p95.map_or(0.0, |p| p / (2.0 * cap.slo)),
        tp / max_rate,
        mean_util(x.cpu, false),
        // kis-sim has no memory model (Triton's footprint is flat once the model is loaded): 0 in
        // simulation and live alike, so a policy trained here sees the same value in a cluster.
        0.0,
        signed(dp95),
        signed((tp - tp_prev) / max_rate),
        if cap.horizon > 0.0 {
            now.rem_euclid(cap.horizon) / cap.horizon
        } else {
            0.0
        },
        load_regime(x.history),
    ];
    for (o, v) in out.iter_mut().zip(f) {
        *o = unit(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{PodView, Pool};

    fn cap() -> Capacity {
        Capacity {
            min_replicas: [1, 1],
            max_replicas: [6, 10],
            replica_rate: [12.0, 10.0],
            gpus: 4,
            slo: 0.5,
            horizon: 300.0,
        }
    }

    #[test]
    fn masks_match_the_clamp() {
        let c = cap();
        for g in 0..=8u32 {
            for cpu in 0..=12u32 {
                let m = c.action_mask([g, cpu]);
                assert!(m[10..].iter().all(|&b| b), "placements always allowed");
                for i in 0..2 {
                    let t = [g, cpu][i];
                    for k in 0..5 {
                        let d = k as i64 - MAX_DELTA;
                        let clamped = c.apply_delta(i, t, d) as i64 == t as i64 + d;
                        if d == 0 {
                            assert!(m[i * 5 + k]);
                            assert_eq!(c.apply_delta(i, t, 0), t, "holding never moves");
                        } else {
                            assert_eq!(m[i * 5 + k], clamped, "pool {i} target {t} delta {d}");
                        }
                    }
                }
            }
        }
        // The GPU ceiling is the GPUs, not max_replicas.
        assert_eq!(c.upper(0), 4);
        assert_eq!(c.action_mask([4, 1])[3..5], [false, false]);
        assert_eq!(c.action_mask([3, 1])[3..5], [true, false]);
    }

    #[test]
    fn history_from_counters_equals_from_series() {
        let rows = [
            (0.0, 0.0, 0.0, None),
            (30.0, 300.0, 290.0, Some(0.1)),
            (60.0, 900.0, 880.0, Some(0.2)),
        ];
        let h = RateHistory::from_series(&rows);
        let s: Vec<_> = h.samples().iter().collect();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].arrival_rate, 10.0);
        assert_eq!(s[1].arrival_rate, 20.0);
        assert_eq!(s[1].completion_rate, 590.0 / 30.0);
        let mut long = RateHistory::new();
        for i in 0..20 {
            long.push_counters(i as f64, i as f64, 0.0, None);
        }
        assert_eq!(long.samples().len(), HISTORY_LEN);
    }

    #[test]
    fn every_feature_in_unit_interval_and_names_match_dims() {
        let mut g = PoolView::empty(Pool::Gpu, 1234.0, 9);
        g.pods = vec![PodView::ready(0.0, 1.0, Some(3.0)); 9];
        g.queue_len = 1e9;
        g.p95_latency = Some(100.0);
        let c = PoolView::empty(Pool::Cpu, 1234.0, 0);
        let h = RateHistory::from_series(&[
            (0.0, 0.0, 0.0, None),
            (1.0, 1e9, 0.0, Some(1.0)),
            (2.0, 1e9, 1e9, Some(f64::NAN)),
        ]);
        for set in [ObsSet::Default, ObsSet::Paper] {
            let input = ObsInput {
                gpu: &g,
                cpu: &c,
                target: [50, 0],
                history: &h,
            };
            let o = observation(set, &cap(), &input);
            assert_eq!(o.len(), set.names().len());
            assert!(o.iter().all(|x| (0.0..=1.0).contains(x)), "{set:?}: {o:?}");
            assert_eq!(ObsSet::from_spec_id(&set.spec_id()), Some(set));
        }
        assert_eq!(ObsSet::from_spec_id("paper-v0"), None);
    }

    #[test]
    fn load_regime_classifies() {
        let hist = |xs: &[f64]| {
            let mut h = RateHistory::new();
            let mut total = 0.0;
            h.push_counters(0.0, 0.0, 0.0, None);
            for (i, x) in xs.iter().enumerate() {
                total += x;
                h.push_counters(i as f64 + 1.0, total, 0.0, None);
            }
            h
        };
        assert_eq!(load_regime(&hist(&[10.0, 10.0, 10.0])), 0.0);
        assert_eq!(load_regime(&hist(&[10.0, 20.0, 30.0])), 1.0 / 3.0);
        assert_eq!(load_regime(&hist(&[30.0, 20.0, 10.0])), 2.0 / 3.0);
        assert_eq!(load_regime(&hist(&[1.0, 50.0, 1.0, 50.0, 1.0])), 1.0);
    }
}
