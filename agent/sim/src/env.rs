//! The simulator as a reinforcement-learning environment: `reset(seed)` / `step(action)` with a
//! multi-discrete action, an action mask, a bounded reward and the observation of
//! [`kis_autoscale::obs`] (the same builder the live mode uses, fed the same scraped views).
//!
//! The action does not set replicas directly: it moves each pool's target, which is published as the
//! External metric `kis-replicas` and followed by the stock HPA (AverageValue 1, tolerance 0, and the
//! scenario's [`ExternalHpa`] behaviour: by default the exact-N recipe, no stabilisation window), as
//! kis-adapter + HPA do in a cluster, sync period included. Many environments at once:
//! [`crate::vec_env::VecEnv`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use kis_autoscale::obs::{self, Capacity, MASK_LEN, ObsInput, ObsSet, RateHistory};
use kis_autoscale::{Behavior, HpaConfig, PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy};
use kis_traffic::{ArrivalKind, Pattern, ShapeSpec};

use crate::config::{PoolConfig, Pools, SimConfig, Workload};
use crate::profiles::{kis_s_cpu, kis_s_gpu};
use crate::randomize::{Randomization, TraceData};
use crate::scaler::{AutoscalerSpec, Pool, ScalerSpec, TARGET_REPLICAS_METRIC};
use crate::sim::{Simulation, Totals};
use crate::{Error, Result};

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
    /// Reward of the step, in [−(α + γ + δ + κ), β] (see [`RewardConfig`]).
    pub reward: f64,
    /// Terminal state.
    pub terminated: bool,
    /// Cut by the time limit.
    pub truncated: bool,
    /// Allowed actions from the new state ([`Capacity::action_mask`] layout).
    pub mask: [bool; MASK_LEN],
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
    /// Requests of the cohort scored in this step: those that arrived in
    /// [previous end − slo, end − slo) (the last step also scores its final `slo` seconds).
    pub cohort: u64,
    /// Fraction of the cohort that missed the SLO (late, rejected, killed or never served), in
    /// [0, 1]; 0 for an empty cohort.
    pub slo_miss: f64,
    /// GPU busy fraction over the step.
    pub gpu_util: f64,
    /// Targets the policy asked for (after the clamp).
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

    /// The three categorical indices (inverse of [`Action::from_indices`]).
    pub fn indices(&self) -> [usize; 3] {
        [
            (self.gpu_delta.clamp(-2, 2) + 2) as usize,
            (self.cpu_delta.clamp(-2, 2) + 2) as usize,
            match self.placement {
                Placement::PreferGpu => 0,
                Placement::Balanced => 1,
                Placement::PreferCpu => 2,
            },
        ]
    }
}

/// Reward `−α·latency + β·GPU util − γ·replica overhead − δ·SLO misses − κ·cost`, per step, every
/// term in [0, 1] before its weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    /// Weight of the latency term, min(p95 / SLO, `latency_cap`) / `latency_cap`.
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// p95 / SLO at which the latency term saturates at 1.
    #[serde(default = "d_latency_cap")]
    pub latency_cap: f64,
    /// Weight of the GPU busy fraction.
    #[serde(default = "d_beta")]
    pub beta: f64,
    /// Weight of (GPU + CPU replicas) / (GPU + CPU max replicas), capped at 1.
    #[serde(default = "d_gamma")]
    pub gamma: f64,
    /// Weight of the step cohort's SLO-miss fraction beyond `slo_allowance`.
    #[serde(default = "d_delta")]
    pub slo_violation: f64,
    /// Miss fraction the SLO term forgives: it weighs max(0, miss − allowance). `evaluate`'s
    /// objective forgives 1 % (its penalty is 100 × full-pool GPU-hours × max(0, miss − 1 %)).
    #[serde(default)]
    pub slo_allowance: f64,
    /// Weight of the step's cost relative to its most expensive possible value (capped at 1).
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
fn d_latency_cap() -> f64 {
    5.0
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

/// The reward's terms of one step, each in [0, 1] before its weight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RewardTerms {
    /// min(p95 / SLO, cap) / cap (0 with no completion).
    pub latency: f64,
    /// GPU busy fraction.
    pub gpu_util: f64,
    /// (GPU + CPU replicas) / (GPU + CPU max).
    pub overhead: f64,
    /// The cohort's SLO-miss fraction.
    pub slo_miss: f64,
    /// Cost / most expensive possible cost of the step.
    pub cost: f64,
}

impl RewardConfig {
    /// The weighted sum of `t`: `−α·latency + β·util − γ·overhead − δ·max(0, miss − allowance) −
    /// κ·cost`.
    pub fn combine(&self, t: &RewardTerms) -> f64 {
        let miss = (t.slo_miss - self.slo_allowance).max(0.0);
        -self.alpha * t.latency + self.beta * t.gpu_util
            - self.gamma * t.overhead
            - self.slo_violation * miss
            - self.cost * t.cost
    }
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            alpha: d_alpha(),
            latency_cap: d_latency_cap(),
            beta: d_beta(),
            gamma: d_gamma(),
            slo_violation: d_delta(),
            slo_allowance: 0.0,
            cost: 0.0,
            gpu_hour_price: d_gpu_price(),
            cpu_hour_price: d_cpu_price(),
        }
    }
}

/// The HPA each pool's target goes through: `kis-replicas` AverageValue 1, tolerance 0, and this
/// behaviour. Default: the exact-N recipe (shared/reference/external-metrics-adapter.md §3.6), the
/// same behaviour deploy/'s HPAs carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalHpa {
    /// `spec.behavior`; `null` = none, the controller's legacy path with its 300 s scale-down
    /// stabilisation (a scale-down then never takes effect in a 300 s episode).
    #[serde(default = "exact_n_behavior")]
    pub behavior: Option<Behavior>,
    /// `--horizontal-pod-autoscaler-sync-period`, seconds.
    #[serde(default = "d_sync")]
    pub sync_period: f64,
}

fn d_sync() -> f64 {
    15.0
}

/// The exact-N `behavior`: tolerance 0 and no stabilisation window both ways, scale-up by up to
/// +1000 % and scale-down by up to −100 % per 15 s, so a published N is reached at the next sync.
pub fn exact_n_behavior() -> Option<Behavior> {
    let rules = |value| ScalingRules {
        stabilization_window: 0.0,
        select_policy: SelectPolicy::Max,
        policies: vec![ScalingPolicy {
            kind: PolicyKind::Percent,
            value,
            period: 15.0,
        }],
        tolerance: Some(0.0),
    };
    Some(Behavior {
        scale_up: rules(1000),
        scale_down: rules(100),
    })
}

impl Default for ExternalHpa {
    fn default() -> Self {
        ExternalHpa {
            behavior: exact_n_behavior(),
            sync_period: d_sync(),
        }
    }
}

/// Environment settings (a scenario): the cluster, the step, the reward, the observation set, the
/// HPA behaviour and, for training, the domain randomisation.
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
    /// The observation set.
    #[serde(default)]
    pub obs: ObsSet,
    /// The HPA the targets go through.
    #[serde(default)]
    pub hpa: ExternalHpa,
    /// Period of the paper set's `t_norm`, seconds.
    #[serde(default = "d_horizon")]
    pub horizon: f64,
    /// Draw each episode's cluster and workload from its seed (training). Overrides `shapes`.
    #[serde(default)]
    pub randomize: Option<Randomization>,
}

fn d_step() -> f64 {
    30.0
}
fn d_horizon() -> f64 {
    300.0
}

/// Named scenarios ([`EnvConfig::named`]).
pub const SCENARIOS: [&str; 2] = ["default", "kis-s-testbed"];

impl EnvConfig {
    /// Settings around `sim` with the defaults.
    pub fn new(sim: SimConfig) -> Self {
        EnvConfig {
            sim,
            step_seconds: d_step(),
            reward: RewardConfig::default(),
            shapes: Vec::new(),
            terminate_reject_fraction: None,
            obs: ObsSet::default(),
            hpa: ExternalHpa::default(),
            horizon: d_horizon(),
            randomize: None,
        }
    }

    /// The default scenario, a cluster where both action heads matter: 4 nodes with one GPU and 16
    /// allocatable cores each; GPU pool (the KIS-S RTX 3080 profile) 1..=4 replicas, CPU pool (the
    /// KIS-S CPU profile, 2-core requests) 1..=10, starting at 1 + 2; the paper's spike (10 → 100
    /// req/s over 300 s, Poisson), which needs about 8 replicas at its peak; 30 s cold starts.
    pub fn default_cluster() -> Self {
        let mut gpu = PoolConfig::new(1, kis_s_gpu());
        gpu.max_replicas = 4;
        let mut cpu = PoolConfig::new(2, kis_s_cpu());
        cpu.max_replicas = 10;
        let mut sim = SimConfig::new(
            Workload::new(ShapeSpec::default_for(Pattern::Spike), ArrivalKind::Poisson),
            Pools { gpu, cpu },
        );
        sim.cluster.nodes = 4;
        sim.cluster.gpus_per_node = 1;
        sim.cluster.cpus_per_node = 16.0;
        EnvConfig::new(sim)
    }

    /// The KIS-S testbed: one node with one GPU (so GPU actions beyond 1 replica leave pods
    /// Pending and are masked), 3 + 3 initial replicas, the paper's profiles and spike.
    pub fn kis_s_testbed() -> Self {
        let sim = SimConfig::new(
            Workload::new(ShapeSpec::default_for(Pattern::Spike), ArrivalKind::Poisson),
            Pools {
                gpu: PoolConfig::new(3, kis_s_gpu()),
                cpu: PoolConfig::new(3, kis_s_cpu()),
            },
        );
        EnvConfig::new(sim)
    }

    /// A scenario by name: one of [`SCENARIOS`].
    pub fn named(name: &str) -> Result<Self> {
        match name {
            "default" => Ok(Self::default_cluster()),
            "kis-s-testbed" => Ok(Self::kis_s_testbed()),
            _ => Err(Error::invalid(
                "scenario",
                format!("unknown scenario {name:?}; known: {}", SCENARIOS.join(", ")),
            )),
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
        if !(self.reward.latency_cap.is_finite() && self.reward.latency_cap > 0.0) {
            return Err(Error::invalid(
                "reward.latency_cap",
                format!("must be finite and > 0, got {}", self.reward.latency_cap),
            ));
        }
        if !(0.0..1.0).contains(&self.reward.slo_allowance) {
            return Err(Error::invalid(
                "reward.slo_allowance",
                format!("must be in [0, 1), got {}", self.reward.slo_allowance),
            ));
        }
        if !(self.hpa.sync_period.is_finite() && self.hpa.sync_period > 0.0) {
            return Err(Error::invalid(
                "hpa.sync_period",
                format!("must be finite and > 0, got {}", self.hpa.sync_period),
            ));
        }
        self.sim.validate()
    }

    /// The observation's capacity for a run of `sim` (the episode's cluster), with the replica
    /// rates of the configured profiles (what a live agent is configured with, not the episode's
    /// jittered ones).
    pub fn capacity(&self, sim: &SimConfig) -> Capacity {
        let p = [&sim.pools.gpu, &sim.pools.cpu];
        let base = [&self.sim.pools.gpu, &self.sim.pools.cpu];
        Capacity {
            min_replicas: [p[0].min_replicas.max(1), p[1].min_replicas.max(1)],
            max_replicas: [p[0].max_replicas.max(1), p[1].max_replicas.max(1)],
            replica_rate: [base[0].replica_capacity(), base[1].replica_capacity()],
            gpus: sim.gpu_capacity(),
            slo: sim.slo,
            horizon: self.horizon,
        }
    }
}

/// One simulated cluster as an [`Env`].
pub struct SimEnv {
    cfg: EnvConfig,
    traces: Arc<Vec<TraceData>>,
    sim: Option<Simulation>,
    cap: Capacity,
    target: [u32; 2],
    history: RateHistory,
    prev: Totals,
    /// The observation at the end of a finished episode, taken before the extra `slo` seconds
    /// that score the last cohort.
    last_obs: Option<Vec<f32>>,
    /// The run's summary at the workload's end, before those extra seconds: what a rule-driven
    /// run of the same workload reports, so policies and rules are scored over the same time.
    end_summary: Option<crate::Summary>,
}

impl SimEnv {
    /// A new environment; call [`Env::reset`] before stepping. Reads (and checks against the split)
    /// the randomisation's traces.
    pub fn new(cfg: EnvConfig) -> Result<Self> {
        cfg.validate()?;
        let traces = match &cfg.randomize {
            Some(r) => r.load()?,
            None => Arc::new(Vec::new()),
        };
        Ok(Self::with_traces(cfg, traces))
    }

    /// For [`crate::vec_env::VecEnv`]: `cfg` validated, traces read once for all.
    pub(crate) fn with_traces(cfg: EnvConfig, traces: Arc<Vec<TraceData>>) -> Self {
        let cap = cfg.capacity(&cfg.sim);
        SimEnv {
            cfg,
            traces,
            sim: None,
            cap,
            target: [0, 0],
            history: RateHistory::new(),
            prev: Totals::default(),
            last_obs: None,
            end_summary: None,
        }
    }

    /// The traces read for the randomisation (shared by a [`crate::vec_env::VecEnv`]'s envs).
    pub(crate) fn traces(&self) -> Arc<Vec<TraceData>> {
        self.traces.clone()
    }

    /// The summary at the end of the workload of a finished episode (before the extra `slo`
    /// seconds that score the last cohort): the figure to compare with a rule-driven run.
    pub fn end_summary(&self) -> Option<&crate::Summary> {
        self.end_summary.as_ref()
    }

    /// The settings.
    pub fn config(&self) -> &EnvConfig {
        &self.cfg
    }

    /// The observation set (its `names()`, `dim()`, `spec_id()`).
    pub fn obs_set(&self) -> ObsSet {
        self.cfg.obs
    }

    /// Observation length.
    pub fn obs_dim(&self) -> usize {
        self.cfg.obs.dim()
    }

    /// The running simulation (None before the first reset).
    pub fn sim(&self) -> Option<&Simulation> {
        self.sim.as_ref()
    }

    /// The current episode's capacity (bounds of the mask, normalisation of the observation).
    pub fn capacity(&self) -> &Capacity {
        &self.cap
    }

    /// The agent's current targets (GPU, CPU).
    pub fn target(&self) -> [u32; 2] {
        self.target
    }

    /// Allowed actions now.
    pub fn mask(&self) -> [bool; MASK_LEN] {
        self.cap.action_mask(self.target)
    }

    /// The simulation config of the episode with `seed`: randomised, or the shape picked from
    /// `shapes`, then both pools' autoscalers replaced by the external-target HPA.
    pub fn episode_config(&self, seed: u64) -> SimConfig {
        let mut sc = match &self.cfg.randomize {
            Some(r) => {
                let max_rate = self.cfg.capacity(&self.cfg.sim).max_rate();
                r.apply(&self.cfg.sim, &self.traces, max_rate, seed)
            }
            None => {
                let mut sc = self.cfg.sim.clone();
                if !self.cfg.shapes.is_empty() {
                    let i = (seed % self.cfg.shapes.len() as u64) as usize;
                    sc.workload.shape = self.cfg.shapes[i].clone();
                }
                sc
            }
        };
        sc.seed = seed;
        for p in [&mut sc.pools.gpu, &mut sc.pools.cpu] {
            let hpa = HpaConfig {
                min_replicas: p.min_replicas.max(1),
                max_replicas: p.max_replicas,
                behavior: self.cfg.hpa.behavior.clone(),
                sync_period: self.cfg.hpa.sync_period,
                ..HpaConfig::default()
            };
            p.autoscaler = Some(ScalerSpec::Rule(AutoscalerSpec::ExternalTarget(hpa)));
        }
        sc
    }

    /// Writes the observation of the current state into `out` (length [`SimEnv::obs_dim`]).
    ///
    /// # Panics
    /// Before the first reset.
    pub fn observe_into(&self, out: &mut [f32]) {
        if let Some(o) = &self.last_obs {
            out.copy_from_slice(o);
            return;
        }
        let sim = self
            .sim
            .as_ref()
            .expect("SimEnv::observe_into before reset");
        self.observe_sim(sim, out);
    }

    fn observe_sim(&self, sim: &Simulation, out: &mut [f32]) {
        let (g, c) = (sim.view(Pool::Gpu), sim.view(Pool::Cpu));
        let input = ObsInput {
            gpu: &g,
            cpu: &c,
            target: self.target,
            history: &self.history,
        };
        obs::observe(self.cfg.obs, &self.cap, &input, out);
    }

    fn observation(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.obs_dim()];
        self.observe_into(&mut v);
        v
    }

    /// Feeds the rate history the counters as of the last scrape (as Prometheus has them; before
    /// the first scrape, zeros at t = 0).
    fn push_history(&mut self, sim: &Simulation) {
        let s = sim.scraped_totals();
        self.history.push_counters(
            s.t,
            s.arrivals as f64,
            s.completed as f64,
            obs::combined_p95(sim.scraped_p95(Pool::Gpu), sim.scraped_p95(Pool::Cpu)),
        );
    }

    /// Starts episode `seed` without building the observation.
    ///
    /// # Panics
    /// When the episode's config cannot build a simulation (a configuration bug: the base config
    /// was validated in [`SimEnv::new`]).
    pub fn reset_state(&mut self, seed: u64) {
        let sc = self.episode_config(seed);
        self.cap = self.cfg.capacity(&sc);
        let mut sim = match Simulation::new(sc) {
            Ok(s) => s,
            Err(e) => panic!("environment config cannot build a simulation: {e}"),
        };
        sim.track_step_latency();
        sim.track_cohorts();
        self.target = [sim.spec_replicas(Pool::Gpu), sim.spec_replicas(Pool::Cpu)];
        for (i, pool) in [Pool::Gpu, Pool::Cpu].into_iter().enumerate() {
            sim.set_external(pool, TARGET_REPLICAS_METRIC, Some(self.target[i] as f64));
        }
        self.prev = sim.totals();
        self.last_obs = None;
        self.end_summary = None;
        self.history.clear();
        self.push_history(&sim);
        self.sim = Some(sim);
    }

    /// Applies `action` and advances one step without building the observation: (reward,
    /// terminated, truncated, info).
    ///
    /// # Panics
    /// Before the first reset.
    pub fn advance(&mut self, action: Action) -> (f64, bool, bool, StepInfo) {
        let Some(mut sim) = self.sim.take() else {
            panic!("SimEnv::step called before reset");
        };
        for (i, d) in [action.gpu_delta, action.cpu_delta].into_iter().enumerate() {
            self.target[i] = self.cap.apply_delta(i, self.target[i], d as i64);
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
        let mut stop = (start + self.cfg.step_seconds).min(sim.end());
        // A workload end a rounding error past the step (a trace window's limit / speed-up) ends
        // the episode here rather than in a step of nanoseconds.
        if sim.end() - stop < 1e-6 * self.cfg.step_seconds {
            stop = sim.end();
        }
        sim.run_until(stop);
        let elapsed = (stop - start).max(1e-9);
        let (c, p) = (sim.totals(), self.prev);
        self.prev = c;
        let p95 = sim.step_latency().and_then(|h| h.quantile(0.95));
        sim.reset_step_latency();
        let arrivals = c.arrivals - p.arrivals;
        self.push_history(&sim);
        let rejected = (c.rejected + c.killed) - (p.rejected + p.killed);
        let ready_s = c.ready_replica_seconds[0] - p.ready_replica_seconds[0];
        let gpu_util = if ready_s > 0.0 {
            ((c.busy_seconds[0] - p.busy_seconds[0]) / ready_s).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let r = &self.cfg.reward;
        let cost = ((c.replica_seconds[0] - p.replica_seconds[0]) * r.gpu_hour_price
            + (c.replica_seconds[1] - p.replica_seconds[1]) * r.cpu_hour_price)
            / 3600.0;
        let (gmax, cmax) = (
            self.cap.max_replicas[0] as f64,
            self.cap.max_replicas[1] as f64,
        );
        let max_cost = (gmax * r.gpu_hour_price + cmax * r.cpu_hour_price) * elapsed / 3600.0;
        let replicas = [sim.spec_replicas(Pool::Gpu), sim.spec_replicas(Pool::Cpu)];
        let slo = sim.config().slo;
        let truncated = sim.now() >= sim.end();
        let terminated = self
            .cfg
            .terminate_reject_fraction
            .is_some_and(|f| arrivals > 0 && rejected as f64 / arrivals as f64 > f);
        // Score the cohort whose fate is known: arrivals up to `stop - slo`. At the episode's end,
        // run `slo` further (no new arrivals) so the last arrivals are scored too.
        let (cohort, met) = if truncated || terminated {
            let mut last = vec![0.0; self.obs_dim()];
            self.observe_sim(&sim, &mut last);
            self.last_obs = Some(last);
            self.end_summary = Some(sim.summary());
            sim.run_until(stop + slo);
            sim.take_cohort(stop)
        } else {
            sim.take_cohort(stop - slo)
        };
        let slo_miss = if cohort > 0 {
            (cohort - met.min(cohort)) as f64 / cohort as f64
        } else {
            0.0
        };
        let unit = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let latency_term = p95.map_or(0.0, |x| unit(x / slo / r.latency_cap));
        let overhead = unit((replicas[0] + replicas[1]) as f64 / (gmax + cmax).max(1.0));
        let cost_term = if max_cost > 0.0 {
            unit(cost / max_cost)
        } else {
            0.0
        };
        let reward = r.combine(&RewardTerms {
            latency: latency_term,
            gpu_util,
            overhead,
            slo_miss,
            cost: cost_term,
        });
        let info = StepInfo {
            t: stop,
            p95,
            arrivals,
            cohort,
            slo_miss,
            gpu_util,
            target: self.target,
            replicas,
            cost,
        };
        self.sim = Some(sim);
        (reward, terminated, truncated && !terminated, info)
    }
}

impl Env for SimEnv {
    type Obs = Vec<f32>;
    type Action = Action;

    /// Builds a fresh cluster from the seed; see [`SimEnv::reset_state`].
    fn reset(&mut self, seed: u64) -> Vec<f32> {
        self.reset_state(seed);
        self.observation()
    }

    fn step(&mut self, action: Action) -> Step<Vec<f32>> {
        let (reward, terminated, truncated, info) = self.advance(action);
        Step {
            obs: self.observation(),
            reward,
            terminated,
            truncated,
            mask: self.mask(),
            info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_behaviour_defaults_to_exact_n_and_null_means_legacy() {
        let h: ExternalHpa = serde_json::from_str("{}").unwrap();
        assert_eq!(h, ExternalHpa::default());
        let b = h.behavior.unwrap();
        assert_eq!(b.scale_down.stabilization_window, 0.0);
        assert_eq!(b.scale_down.tolerance, Some(0.0));
        let h: ExternalHpa = serde_json::from_str(r#"{"behavior": null}"#).unwrap();
        assert_eq!(h.behavior, None);
        let e = serde_json::from_str::<ExternalHpa>(r#"{"behaviour": null}"#).unwrap_err();
        assert!(e.to_string().contains("behaviour"), "{e}");
    }

    #[test]
    fn reward_combines_weighted_terms_and_forgives_the_allowance() {
        let t = RewardTerms {
            latency: 0.2,
            gpu_util: 0.6,
            overhead: 0.5,
            slo_miss: 0.05,
            cost: 0.4,
        };
        let r = RewardConfig::default();
        // −1·0.2 + 0.5·0.6 − 0.3·0.5 − 2·0.05 − 0·0.4
        assert!((r.combine(&t) - (-0.2 + 0.3 - 0.15 - 0.1)).abs() < 1e-12);
        let obj = RewardConfig {
            alpha: 0.0,
            beta: 0.0,
            gamma: 0.0,
            slo_violation: 10.0,
            slo_allowance: 0.01,
            cost: 0.1,
            ..RewardConfig::default()
        };
        // −10·(0.05 − 0.01) − 0.1·0.4
        assert!((obj.combine(&t) - (-0.4 - 0.04)).abs() < 1e-12);
        let within = RewardTerms {
            slo_miss: 0.008,
            ..t
        };
        assert!(
            (obj.combine(&within) + 0.04).abs() < 1e-12,
            "misses within 1 % are free"
        );
        let mut cfg = EnvConfig::default_cluster();
        cfg.reward.slo_allowance = 1.0;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("slo_allowance"), "{e}");
    }

    #[test]
    fn action_indices_round_trip() {
        for g in 0..5 {
            for c in 0..5 {
                for p in 0..3 {
                    assert_eq!(Action::from_indices([g, c, p]).indices(), [g, c, p]);
                }
            }
        }
    }
}
