//! The simulated side of a validation run: the testbed's GPU pool in kis-sim with the profile
//! calibrated on the testbed, the measured pod start-up, the same seeded arrivals, and the loop
//! `kis-agent live` runs on the testbed rebuilt on the simulator: every control period the rule
//! decides on the pool's view as of the last scrape, the target is clamped as `live` clamps it
//! and published as the External `kis-replicas`, which an external-target HPA with
//! deploy/v1.20/hpa-gpu.yaml's behaviour and the testbed's sync period executes. Pure.

use anyhow::{Context, Result};
use kis_autoscale::{AutoscalerSpec, HpaConfig, Pool, TARGET_REPLICAS_METRIC};
use kis_loadgen::kserve::ModelConfig;
use kis_sim::{
    ClusterConfig, Dist, PoolConfig, Pools, SeriesRow, ServiceProfile, SimConfig, Simulation,
    Startup, Summary, Workload,
};
use kis_traffic::{ArrivalKind, Profile, ShapeSpec};

/// The testbed's `--horizontal-pod-autoscaler-sync-period` (kis-e2e's `ControlPlaneConfig`).
pub const TESTBED_HPA_SYNC_S: f64 = 2.0;
/// How often the testbed's Prometheus scrapes the Pods.
pub const TESTBED_SCRAPE_S: f64 = 1.0;
/// deploy/v1.20/hpa-gpu.yaml's `maxReplicas`.
pub const HPA_MAX_REPLICAS: u32 = 8;
/// deploy/serving/triton.yaml: the GPU Pods' CPU request and termination grace period.
const CPU_REQUEST: f64 = 0.5;
const GRACE_S: f64 = 40.0;

/// What the simulated run is built from.
#[derive(Clone, Debug)]
pub struct SimSetup {
    /// The profile calibrated on the testbed.
    pub profile: ServiceProfile,
    /// What Triton reported about the emulated model (instances, batching).
    pub model: ModelConfig,
    /// Spec change to Ready of one Pod, seconds: the measured samples (an empirical distribution).
    pub startup: Vec<f64>,
    /// Emulated GPUs on the node.
    pub gpus: u32,
    /// The rule `live` runs.
    pub rule: AutoscalerSpec,
    /// What `live` may publish: [min, max].
    pub bounds: (u32, u32),
    /// The agent's period, seconds.
    pub period: f64,
    /// Seconds from the start of the load to the agent's first decision in it (the live run's
    /// phase, so both sides decide at the same moments).
    pub phase: f64,
    /// The SLO, seconds.
    pub slo: f64,
    /// How long answers are waited for after the schedule (kis-loadgen's grace), seconds.
    pub drain: f64,
}

/// A simulated run's results.
#[derive(Clone, Debug)]
pub struct SimRun {
    /// The summary (p95, SLO misses, arrivals, completions).
    pub summary: Summary,
    /// One row per scrape (1 s): offered load, spec and Ready replicas, p95.
    pub series: Vec<SeriesRow>,
    /// (t, target) of every decision.
    pub decisions: Vec<(f64, u32)>,
    /// (t, spec, Ready) whenever either changed (read every [`SAMPLE_S`]).
    pub replicas: Vec<(f64, u32, u32)>,
}

/// The external-target HPA of deploy/v1.20/hpa-gpu.yaml on the testbed's controller-manager:
/// `kis-replicas` AverageValue 1, min 1, max 8, tolerance 0, windows 0, up +1000 % and down
/// −100 % per 15 s (kis-sim's exact-N behaviour), synced every 2 s.
pub fn testbed_hpa() -> HpaConfig {
    HpaConfig {
        min_replicas: 1,
        max_replicas: HPA_MAX_REPLICAS,
        behavior: kis_sim::env::exact_n_behavior(),
        sync_period: TESTBED_HPA_SYNC_S,
        tolerance: Some(0.0),
        ..HpaConfig::default()
    }
}

/// The simulation config of one run: the GPU pool from one Ready replica.
pub fn sim_config(s: &SimSetup, shape: ShapeSpec, seed: u64) -> SimConfig {
    let mut gpu = PoolConfig::new(1, s.profile.clone());
    gpu.instances = s.model.instances.max(1);
    gpu.max_batch = s.model.sim_max_batch();
    gpu.max_queue_delay = s.model.max_queue_delay.unwrap_or(0.0);
    gpu.startup = Startup {
        image_pull: startup_dist(&s.startup),
        model_load: Dist::constant(0.0),
        warmup: Dist::constant(0.0),
    };
    gpu.cpu_request = CPU_REQUEST;
    gpu.grace_period = GRACE_S;
    gpu.min_replicas = s.bounds.0;
    gpu.max_replicas = s.bounds.1;
    // The HPA is set at its phase by [`simulate`].
    let cpu = PoolConfig::new(0, s.profile.clone());
    let mut cfg = SimConfig::new(
        Workload::new(shape, ArrivalKind::Poisson),
        Pools { gpu, cpu },
    );
    cfg.cluster = ClusterConfig {
        nodes: 1,
        gpus_per_node: s.gpus,
        cpus_per_node: 16.0,
        node_autoscaler: None,
    };
    cfg.metrics.scrape_interval = TESTBED_SCRAPE_S;
    // `live --scrape-interval 2s` queries rate() over four of them.
    cfg.metrics.rate_window = 8.0;
    cfg.metrics.latency_window = 8.0;
    // kis-sim draws arrivals from `seed ^ ARRIVAL_STREAM`: the arrivals kis-loadgen drew with `seed`.
    cfg.seed = seed ^ kis_sim::ARRIVAL_STREAM;
    cfg.slo = s.slo;
    cfg.drain = true;
    cfg.drain_limit = s.drain;
    cfg.record_series = true;
    cfg
}

/// The measured start-up times as a distribution (one sample: a constant).
fn startup_dist(samples: &[f64]) -> Dist {
    let mut v: Vec<f64> = samples
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => Dist::constant(0.0),
        1 => Dist::constant(v[0]),
        _ => Dist::Empirical { samples: v },
    }
}

/// How often the simulated pool's spec and Ready counts are read, seconds (the live side is
/// sampled every 250 ms).
pub const SAMPLE_S: f64 = 0.1;

/// Runs one validation scenario in kis-sim: `rates` (built once from the shared seed, as
/// kis-loadgen builds them) under the rule's loop. The HPA's first sync is at
/// `hpa_phase + sync`, then every sync (the live controller's phase, read off the live run).
pub fn simulate(
    s: &SimSetup,
    shape: ShapeSpec,
    rates: Profile,
    seed: u64,
    hpa_phase: f64,
) -> Result<SimRun> {
    let cfg = sim_config(s, shape, seed);
    let mut sim = Simulation::with_rates(cfg, rates).context("kis-sim config")?;
    let mut rule = s
        .rule
        .build()
        .map_err(|e| anyhow::anyhow!("the rule: {e}"))?;
    let hpa = AutoscalerSpec::ExternalTarget(testbed_hpa())
        .build()
        .map_err(|e| anyhow::anyhow!("the HPA: {e}"))?;
    let mut hpa = Some(hpa);
    // Before the load the agent had decided on an idle pool: one replica.
    sim.set_external(Pool::Gpu, TARGET_REPLICAS_METRIC, Some(1.0));
    let mut decisions = Vec::new();
    let mut replicas = vec![(0.0, 1, 1)];
    let end = sim.end();
    let hpa_at = hpa_phase.rem_euclid(TESTBED_HPA_SYNC_S);
    let mut next_decision = s.phase.max(0.0);
    let mut next_sample = SAMPLE_S;
    loop {
        let hpa_due = if hpa.is_some() { hpa_at } else { f64::INFINITY };
        let t = next_decision.min(next_sample).min(hpa_due);
        if t >= end {
            break;
        }
        sim.run_until(t);
        if t == hpa_due {
            if let Some(h) = hpa.take() {
                sim.set_autoscaler(Pool::Gpu, h);
            }
        } else if t == next_decision {
            let view = sim.view(Pool::Gpu);
            let target = rule.decide(&view).clamp(s.bounds.0.max(1), s.bounds.1);
            sim.set_external(Pool::Gpu, TARGET_REPLICAS_METRIC, Some(f64::from(target)));
            decisions.push((t, target));
            next_decision += s.period;
        } else {
            let now = (
                t,
                sim.spec_replicas(Pool::Gpu),
                sim.ready_replicas(Pool::Gpu),
            );
            if replicas
                .last()
                .is_none_or(|l: &(f64, u32, u32)| (l.1, l.2) != (now.1, now.2))
            {
                replicas.push(now);
            }
            next_sample += SAMPLE_S;
        }
    }
    let summary = sim.run();
    Ok(SimRun {
        summary,
        series: sim.series().to_vec(),
        decisions,
        replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kis_sim::Device;

    fn setup(rule: &str) -> SimSetup {
        SimSetup {
            profile: ServiceProfile::single(Device::Gpu, Dist::constant(0.077)),
            model: ModelConfig {
                max_batch_size: 8,
                max_queue_delay: Some(0.002),
                instances: 1,
            },
            startup: vec![4.0, 5.0, 6.0],
            gpus: 3,
            rule: serde_json::from_str(rule).unwrap(),
            bounds: (1, 16),
            period: 5.0,
            phase: 1.0,
            slo: 0.5,
            drain: 15.0,
        }
    }

    #[test]
    fn the_loop_scales_the_pool_through_the_published_target_and_replays_the_arrivals() {
        let s = setup(super::super::args::DEFAULT_RULE);
        let shape = crate::fidelity::shape_spec("spike", 4.0, 30.0, 90.0).unwrap();
        let rates = shape.build(7).unwrap();
        let want = rates.arrivals(ArrivalKind::Poisson, 7).count() as u64;
        let r = simulate(&s, shape, rates, 7, 0.5).unwrap();
        assert_eq!(r.summary.arrivals, want, "the seeded arrivals are replayed");
        assert!(r.summary.conserved());
        // A 30 req/s peak on ~13 req/s replicas: the rule asks for more, the HPA follows, and
        // the third GPU bounds the Ready count.
        let max_spec = r.series.iter().map(|x| x.gpu_spec).max().unwrap();
        let max_ready = r.series.iter().map(|x| x.gpu_ready).max().unwrap();
        assert!(max_spec >= 3, "{max_spec}");
        assert!((2..=3).contains(&max_ready), "{max_ready}");
        assert_eq!(r.decisions[0].0, 1.0);
        assert!(r.decisions.windows(2).all(|w| w[1].0 - w[0].0 == 5.0));
        // Spec follows the published target within the HPA's sync: never before a decision.
        let first_up = r.replicas.iter().find(|x| x.1 > 1).unwrap().0;
        let first_ask = r.decisions.iter().find(|d| d.1 > 1).unwrap().0;
        assert!(
            first_up >= first_ask && first_up <= first_ask + TESTBED_HPA_SYNC_S + SAMPLE_S,
            "asked at {first_ask}, spec up at {first_up}"
        );
        // ... at the HPA's phase: syncs at 0.5 + 2k.
        let k = (first_up - 0.5) / TESTBED_HPA_SYNC_S;
        assert!(
            (k - k.round()).abs() * TESTBED_HPA_SYNC_S <= SAMPLE_S + 1e-9,
            "{first_up}"
        );
        // Ready follows spec after the start-up (4-6 s).
        let first_ready = r.replicas.iter().find(|x| x.2 > 1).unwrap().0;
        assert!(
            (4.0..=6.0 + SAMPLE_S + 1e-9).contains(&(first_ready - first_up)),
            "{first_ready}"
        );
    }

    #[test]
    fn startup_samples_become_a_distribution() {
        assert_eq!(startup_dist(&[]), Dist::constant(0.0));
        assert_eq!(startup_dist(&[3.0]), Dist::constant(3.0));
        assert_eq!(
            startup_dist(&[5.0, f64::NAN, 3.0]),
            Dist::Empirical {
                samples: vec![3.0, 5.0]
            }
        );
    }
}
