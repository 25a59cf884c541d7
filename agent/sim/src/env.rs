//! The simulator as a reinforcement-learning environment: `reset(seed)` / `step(action)` with the paper's
//! 10-feature observation normalised to [0, 1], its multi-discrete action and an explicit reward, plus a
//! [`VecEnv`] that steps many environments on all cores.
//!
//! The action does not set replicas directly: it moves each pool's target, which is published as the
//! External metric `kis-replicas` and followed by the stock HPA (AverageValue 1, tolerance 0),
//! exactly as kis-adapter + HPA do in a cluster, sync period and stabilisation included.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use kis_autoscale::HpaConfig;
use kis_traffic::ShapeSpec;

use crate::config::SimConfig;
use crate::scaler::{AutoscalerSpec, Pool, PoolView, ScalerSpec, TARGET_REPLICAS_METRIC};
use crate::sim::Simulation;
use crate::{Error, Result};

/// Number of observation features.
pub const OBS_DIM: usize = 10;

/// Names of the observation features, in order.
pub const OBS_NAMES: [&str; OBS_DIM] = [
    "cpu_util",
    "queue",
    "gpu_util",
    "p95",
    "throughput",
    "gpu_replicas",
    "cpu_replicas",
    "load_trend",
    "load_variance",
    "t_norm",
];

/// An observation: [`OBS_NAMES`] in order, each in [0, 1].
pub type Obs = [f64; OBS_DIM];

/// A reinforcement-learning environment.
pub trait Env {
    /// Observation type.
    type Obs;
    /// Action type.
    type Action;
    /// Starts a new episode.
    fn reset(&mut self, seed: u64) -> Self::Obs;
    /// Applies `action` and advances one step.
    fn step(&mut self, action: Self::Action) -> Step<Self::Obs>;
}

/// Result of one step. `truncated` (time limit: the workload ended) still bootstraps V(s');
/// `terminated` (the episode failed irrecoverably) does not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step<O> {
    /// Observation after the step.
    pub obs: O,
    /// Reward of the step.
    pub reward: f64,
    /// Terminal state.
    pub terminated: bool,
    /// Cut by the time limit.
    pub truncated: bool,
    /// Raw values behind the reward.
    pub info: StepInfo,
}

/// Un-normalised values of a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// Simulated time at the end of the step.
    pub t: f64,
    /// p95 latency of requests completed in the step, seconds.
    pub p95: Option<f64>,
    /// Requests offered in the step.
    pub arrivals: u64,
    /// Fraction of the step's arrivals that missed the SLO (slow, rejected or killed).
    pub slo_miss: f64,
    /// GPU busy fraction over the step.
    pub gpu_util: f64,
    /// Targets the policy asked for.
    pub target: [u32; 2],
    /// spec.replicas after the step (GPU, CPU).
    pub replicas: [u32; 2],
    /// Cost of the step in the configured unit.
    pub cost: f64,
}

/// Where the Service should prefer to send requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// GPU pods weigh 2, CPU pods 1.
    PreferGpu,
    /// Every Ready pod weighs the same.
    #[default]
    Balanced,
    /// CPU pods weigh 2, GPU pods 1.
    PreferCpu,
}

/// The multi-discrete action: `MultiDiscrete([5, 5, 3])`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Change of the GPU target, −2..=2.
    pub gpu_delta: i8,
    /// Change of the CPU target, −2..=2.
    pub cpu_delta: i8,
    /// Routing preference.
    pub placement: Placement,
}

impl Action {
    /// From the three categorical indices (0..5, 0..5, 0..3); out-of-range indices are clamped.
    pub fn from_indices(i: [usize; 3]) -> Self {
        Action {
            gpu_delta: i[0].min(4) as i8 - 2,
            cpu_delta: i[1].min(4) as i8 - 2,
            placement: match i[2] {
                0 => Placement::PreferGpu,
                1 => Placement::Balanced,
                _ => Placement::PreferCpu,
            },
        }
    }
}

/// Reward `−α·latency + β·GPU util − γ·replica overhead − δ·SLO misses − κ·cost`, per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    /// Weight of the latency term, p95 / SLO (capped at 5).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Weight of the GPU busy fraction.
    #[serde(default = "d_beta")]
    pub beta: f64,
    /// Weight of (GPU + CPU replicas) / (GPU + CPU max replicas).
    #[serde(default = "d_gamma")]
    pub gamma: f64,
    /// Weight of the fraction of arrivals that missed the SLO.
    #[serde(default = "d_delta")]
    pub slo_violation: f64,
    /// Weight of the step's cost relative to its most expensive possible value.
    #[serde(default)]
    pub cost: f64,
    /// Price of one GPU replica-hour.
    #[serde(default = "d_gpu_price")]
    pub gpu_hour_price: f64,
    /// Price of one CPU replica-hour.
    #[serde(default = "d_cpu_price")]
    pub cpu_hour_price: f64,
}

fn d_alpha() -> f64 {
    1.0
}
fn d_beta() -> f64 {
    0.5
}
fn d_gamma() -> f64 {
    0.3
}
fn d_delta() -> f64 {
    2.0
}
fn d_gpu_price() -> f64 {
    1.0
}
fn d_cpu_price() -> f64 {
    0.1
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            alpha: d_alpha(),
            beta: d_beta(),
            gamma: d_gamma(),
            slo_violation: d_delta(),
            cost: 0.0,
            gpu_hour_price: d_gpu_price(),
            cpu_hour_price: d_cpu_price(),
        }
    }
}

/// Environment settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// The simulated cluster; both pools' autoscalers are replaced by the external-target HPA.
    pub sim: SimConfig,
    /// Simulated seconds per step (the paper's action interval).
    #[serde(default = "d_step")]
    pub step_seconds: f64,
    /// Reward weights.
    #[serde(default)]
    pub reward: RewardConfig,
    /// If non-empty, each episode's shape is picked from these by the reset seed (else `sim.workload.shape`).
    #[serde(default)]
    pub shapes: Vec<ShapeSpec>,
    /// Terminate the episode when more than this fraction of a step's arrivals is rejected or killed.
    /// Absent: episodes only end by truncation.
    #[serde(default)]
    pub terminate_reject_fraction: Option<f64>,
}

fn d_step() -> f64 {
    30.0
}

impl EnvConfig {
    /// Settings around `sim` with the defaults.
    pub fn new(sim: SimConfig) -> Self {
        EnvConfig {
            sim,
            step_seconds: d_step(),
            reward: RewardConfig::default(),
            shapes: Vec::new(),
            terminate_reject_fraction: None,
        }
    }

    /// Checks the settings (and the simulation config).
    pub fn validate(&self) -> Result<()> {
        if !(self.step_seconds.is_finite() && self.step_seconds > 0.0) {
            return Err(Error::invalid(
                "step_seconds",
                format!("must be finite and > 0, got {}", self.step_seconds),
            ));
        }
        self.sim.validate()
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    arrivals: u64,
    bad: u64,
    rejected: u64,
    gpu_rs: f64,
    cpu_rs: f64,
    gpu_busy: f64,
    gpu_ready_s: f64,
}

/// One simulated cluster as an [`Env`].
pub struct SimEnv {
    cfg: EnvConfig,
    sim: Option<Simulation>,
    target: [u32; 2],
    loads: VecDeque<f64>,
    prev: Counters,
}

impl SimEnv {
    /// A new environment; call [`Env::reset`] before stepping.
    pub fn new(cfg: EnvConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(SimEnv {
            cfg,
            sim: None,
            target: [0, 0],
            loads: VecDeque::new(),
            prev: Counters::default(),
        })
    }

    /// The running simulation (None before the first reset).
    pub fn sim(&self) -> Option<&Simulation> {
        self.sim.as_ref()
    }

    fn build(&self, seed: u64) -> Result<Simulation> {
        let mut sc = self.cfg.sim.clone();
        sc.seed = seed;
        if !self.cfg.shapes.is_empty() {
            let i = (seed % self.cfg.shapes.len() as u64) as usize;
            sc.workload.shape = self.cfg.shapes[i].clone();
        }
        for p in [&mut sc.pools.gpu, &mut sc.pools.cpu] {
            let hpa = HpaConfig {
                min_replicas: p.min_replicas.max(1),
                max_replicas: p.max_replicas,
                ..HpaConfig::default()
            };
            p.autoscaler = Some(ScalerSpec::Rule(AutoscalerSpec::ExternalTarget(hpa)));
        }
        Simulation::new(sc)
    }

    fn counters(sim: &Simulation) -> Counters {
        let s = sim.summary();
        let gpu = s.pool(Pool::Gpu);
        let cpu = s.pool(Pool::Cpu);
        Counters {
            arrivals: s.arrivals,
            bad: gpu.over_slo + cpu.over_slo + s.rejected + s.killed,
            rejected: s.rejected + s.killed,
            gpu_rs: gpu.replica_seconds,
            cpu_rs: cpu.replica_seconds,
            gpu_busy: gpu.utilization * gpu.ready_replica_seconds,
            gpu_ready_s: gpu.ready_replica_seconds,
        }
    }

    fn observe(&mut self, sim: &Simulation, p95: Option<f64>, throughput: f64) -> Obs {
        let gv = sim.view(Pool::Gpu);
        let cv = sim.view(Pool::Cpu);
        let mean_util = |v: &PoolView, gpu: bool| {
            let xs: Vec<f64> = v
                .pods
                .iter()
                .filter(|p| p.ready)
                .filter_map(|p| {
                    if gpu {
                        p.gpu_utilization
                    } else {
                        p.cpu_utilization
                    }
                })
                .collect();
            if xs.is_empty() {
                0.0
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        };
        let peak = sim.profile().peak_rate().max(1e-9);
        let load = self.loads.back().copied().unwrap_or(0.0);
        let trend = if self.loads.len() >= 3 {
            let old = self.loads[self.loads.len() - 3];
            if old > 0.0 {
                ((load - old) / old).clamp(-1.0, 1.0)
            } else {
                0.0
            }
        } else {
            0.0
        };
        let variance = {
            let n = self.loads.len() as f64;
            let mean = self.loads.iter().sum::<f64>() / n.max(1.0);
            if mean > 0.0 {
                let var = self.loads.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                (var / mean).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let gmax = self.cfg.sim.pools.gpu.max_replicas.max(1) as f64;
        let cmax = self.cfg.sim.pools.cpu.max_replicas.max(1) as f64;
        let queue = gv.queue_len + cv.queue_len;
        let obs = [
            mean_util(&cv, false),
            queue / (queue + 10.0),
            mean_util(&gv, true),
            p95.map_or(0.0, |p| p / (2.0 * sim.config().slo)),
            throughput / peak,
            sim.spec_replicas(Pool::Gpu) as f64 / gmax,
            sim.spec_replicas(Pool::Cpu) as f64 / cmax,
            0.5 * (trend + 1.0),
            variance,
            sim.now() / sim.end().max(1e-9),
        ];
        obs.map(|x| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
    }
}

impl Env for SimEnv {
    type Obs = Obs;
    type Action = Action;

    /// Builds a fresh cluster from the seed (the config was validated in [`SimEnv::new`]; a shape that
    /// fails to build panics with its error, as it is a configuration bug).
    fn reset(&mut self, seed: u64) -> Obs {
        let mut sim = match self.build(seed) {
            Ok(s) => s,
            Err(e) => panic!("environment config cannot build a simulation: {e}"),
        };
        sim.track_step_latency();
        self.target = [sim.spec_replicas(Pool::Gpu), sim.spec_replicas(Pool::Cpu)];
        for (i, pool) in [Pool::Gpu, Pool::Cpu].into_iter().enumerate() {
            sim.set_external(pool, TARGET_REPLICAS_METRIC, Some(self.target[i] as f64));
        }
        self.loads.clear();
        self.prev = Self::counters(&sim);
        let obs = self.observe(&sim, None, 0.0);
        self.sim = Some(sim);
        obs
    }

    fn step(&mut self, action: Action) -> Step<Obs> {
        let Some(mut sim) = self.sim.take() else {
            panic!("SimEnv::step called before reset");
        };
        let pools = [&self.cfg.sim.pools.gpu, &self.cfg.sim.pools.cpu];
        for (i, d) in [action.gpu_delta, action.cpu_delta].into_iter().enumerate() {
            let t = (self.target[i] as i64 + d as i64)
                .clamp(pools[i].min_replicas as i64, pools[i].max_replicas as i64);
            self.target[i] = t as u32;
        }
        sim.set_external(
            Pool::Gpu,
            TARGET_REPLICAS_METRIC,
            Some(self.target[0] as f64),
        );
        sim.set_external(
            Pool::Cpu,
            TARGET_REPLICAS_METRIC,
            Some(self.target[1] as f64),
        );
        let (wg, wc) = match action.placement {
            Placement::PreferGpu => (2.0, 1.0),
            Placement::Balanced => (1.0, 1.0),
            Placement::PreferCpu => (1.0, 2.0),
        };
        sim.set_weight(Pool::Gpu, wg);
        sim.set_weight(Pool::Cpu, wc);

        let start = sim.now();
        let stop = (start + self.cfg.step_seconds).min(sim.end());
        sim.run_until(stop);
        let elapsed = (stop - start).max(1e-9);
        let c = Self::counters(&sim);
        let p = self.prev;
        self.prev = c;
        let lat = sim.take_step_latency();
        let arrivals = c.arrivals - p.arrivals;
        let completed_rate = lat.count() as f64 / elapsed;
        self.loads.push_back(arrivals as f64 / elapsed);
        if self.loads.len() > 5 {
            self.loads.pop_front();
        }
        let slo_miss = if arrivals > 0 {
            (c.bad - p.bad) as f64 / arrivals as f64
        } else {
            0.0
        };
        let rejected = if arrivals > 0 {
            (c.rejected - p.rejected) as f64 / arrivals as f64
        } else {
            0.0
        };
        let ready_s = c.gpu_ready_s - p.gpu_ready_s;
        let gpu_util = if ready_s > 0.0 {
            ((c.gpu_busy - p.gpu_busy) / ready_s).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let r = &self.cfg.reward;
        let cost = ((c.gpu_rs - p.gpu_rs) * r.gpu_hour_price
            + (c.cpu_rs - p.cpu_rs) * r.cpu_hour_price)
            / 3600.0;
        let gmax = pools[0].max_replicas as f64;
        let cmax = pools[1].max_replicas as f64;
        let max_cost = (gmax * r.gpu_hour_price + cmax * r.cpu_hour_price) * elapsed / 3600.0;
        let replicas = [sim.spec_replicas(Pool::Gpu), sim.spec_replicas(Pool::Cpu)];
        let p95 = lat.quantile(0.95);
        let latency_term = p95.map_or(0.0, |x| (x / sim.config().slo).min(5.0));
        let overhead = (replicas[0] + replicas[1]) as f64 / (gmax + cmax).max(1.0);
        let reward = -r.alpha * latency_term + r.beta * gpu_util
            - r.gamma * overhead
            - r.slo_violation * slo_miss
            - r.cost * if max_cost > 0.0 { cost / max_cost } else { 0.0 };
        let obs = self.observe(&sim, p95, completed_rate);
        let truncated = sim.now() >= sim.end();
        let terminated = self
            .cfg
            .terminate_reject_fraction
            .is_some_and(|f| arrivals > 0 && rejected > f);
        let info = StepInfo {
            t: sim.now(),
            p95,
            arrivals,
            slo_miss,
            gpu_util,
            target: self.target,
            replicas,
            cost,
        };
        self.sim = Some(sim);
        Step {
            obs,
            reward,
            terminated,
            truncated: truncated && !terminated,
            info,
        }
    }
}

/// Many environments stepped in parallel on scoped std threads (one chunk per core).
pub struct VecEnv {
    envs: Vec<SimEnv>,
}

impl VecEnv {
    /// `n` environments with the same settings.
    pub fn new(cfg: EnvConfig, n: usize) -> Result<Self> {
        let envs = (0..n)
            .map(|_| SimEnv::new(cfg.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(VecEnv { envs })
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// Resets environment `i` with `seeds[i]`.
    pub fn reset(&mut self, seeds: &[u64]) -> Vec<Obs> {
        assert_eq!(seeds.len(), self.envs.len(), "one seed per environment");
        let mut out = vec![[0.0; OBS_DIM]; self.envs.len()];
        let pairs: Vec<_> = self
            .envs
            .iter_mut()
            .zip(seeds)
            .zip(out.iter_mut())
            .collect();
        par_each(pairs, |((env, &seed), o)| *o = env.reset(seed));
        out
    }

    /// Steps environment `i` with `actions[i]`. Finished environments are not reset automatically:
    /// reset them (all together) when the caller's episode bookkeeping wants to.
    pub fn step(&mut self, actions: &[Action]) -> Vec<Step<Obs>> {
        assert_eq!(actions.len(), self.envs.len(), "one action per environment");
        let mut out: Vec<Option<Step<Obs>>> = vec![None; self.envs.len()];
        let pairs: Vec<_> = self
            .envs
            .iter_mut()
            .zip(actions)
            .zip(out.iter_mut())
            .collect();
        par_each(pairs, |((env, &a), o)| *o = Some(env.step(a)));
        out.into_iter().flatten().collect()
    }
}

/// Runs `f` over `items` split into one contiguous chunk per available core.
fn par_each<T: Send, F: Fn(T) + Sync>(items: Vec<T>, f: F) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(cores.max(1)).max(1);
    let mut items = items;
    std::thread::scope(|s| {
        while !items.is_empty() {
            let rest = items.split_off(chunk.min(items.len()));
            let mine = std::mem::replace(&mut items, rest);
            let f = &f;
            s.spawn(move || mine.into_iter().for_each(f));
        }
    });
}
