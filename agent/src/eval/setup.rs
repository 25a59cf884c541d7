//! Set-ups: what scales the pools in a run. Rule-based autoscalers, static provisioning, the
//! forecaster and the oracle run inside the simulator; a [`PolicySetup`] runs through the RL
//! environment. [`run_one`] runs either kind on a scenario with a seed; the seeds are the same for
//! every set-up, so results are paired by seed.
//!
//! The KARB treatments ([`karb_treatments`]) are the four stages of the reference architecture's
//! evaluation plan as named set-ups: the CPU-based HPA; the HPA on service metrics (queue length and
//! p95); KEDA scaling on the queue with the HPA's default stabilisation (`behavior: {}`); and the full
//! stack, the same KEDA set-up on a cluster that starts with one node and adds nodes through the node
//! autoscaler after its provisioning delay.

use anyhow::{Result, bail};
use kis_autoscale::{
    AutoscalerSpec, Behavior, ExternalTarget, HpaConfig, KedaConfig, MetricSpec, StaticBasis,
};
use kis_sim::scaler::replicas_for_rate;
use kis_sim::{ClusterConfig, NodeAutoscaler, ScalerSpec, SimConfig, Simulation, Summary};
use serde::Serialize;

use super::policy::{PolicySetup, run_episode};
use super::workload::Scenario;
use crate::cli::ScenarioArgs;
use crate::scenario::{apply_scenario, paper_testbed, parse_autoscaler};

/// The base config of `compare`, `tune` and `evaluate` for these cluster and profile flags: 16 one-GPU nodes, the
/// KIS-S GPU profile, GPU pool from 1 replica up to 16, no CPU pool.
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

/// One autoscaling set-up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Label in the table.
    pub label: String,
    /// GPU pool initial replicas and autoscaler.
    pub gpu: (u32, Option<ScalerSpec>),
    /// CPU pool initial replicas and autoscaler.
    pub cpu: (u32, Option<ScalerSpec>),
    /// The cluster, when it differs from the base (the full-stack treatment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// A policy run through the RL environment instead of the autoscalers above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySetup>,
}

impl Setup {
    /// The GPU pool from one replica under `spec`, no CPU pool.
    pub fn gpu(label: impl Into<String>, replicas: u32, spec: Option<ScalerSpec>) -> Self {
        Setup {
            label: label.into(),
            gpu: (replicas, spec),
            cpu: (0, None),
            cluster: None,
            policy: None,
        }
    }

    /// A policy on the GPU pool (from one replica, the CPU pool held at 0).
    pub fn policy(p: PolicySetup) -> Self {
        Setup {
            label: format!("policy:{}", p.name),
            policy: Some(p),
            ..Setup::gpu("", 1, None)
        }
    }

    /// True for the set-ups that see the future (excluded from verdicts' baselines).
    pub fn is_oracle(&self) -> bool {
        matches!(self.gpu.1, Some(ScalerSpec::Oracle(_)))
    }
}

fn rule(r: AutoscalerSpec) -> Option<ScalerSpec> {
    Some(ScalerSpec::Rule(r))
}

/// The paper's fixed GPU-only 1 replica.
pub fn fixed_gpu_1() -> Setup {
    Setup::gpu(
        "fixed-gpu-1 (paper GPU-only)",
        1,
        rule(AutoscalerSpec::Fixed { replicas: 1 }),
    )
}

/// Static provisioning sized by the oracle's rule for `rate` (`basis` names it).
pub fn static_for(base: &SimConfig, basis: StaticBasis, rate: f64) -> Setup {
    let gpu = &base.pools.gpu;
    let n = replicas_for_rate(gpu, base.slo, rate, 0.01, 1, gpu.max_replicas);
    let name = match basis {
        StaticBasis::Peak => "peak",
        StaticBasis::Mean => "mean",
    };
    Setup::gpu(
        format!("static-{name} ({n})"),
        n,
        rule(AutoscalerSpec::Static { replicas: n, basis }),
    )
}

/// `compare`'s set-ups for a scenario whose rate peaks at `peak` and averages `mean`.
pub fn compare_setups(base: &SimConfig, peak: f64, mean: f64) -> Result<Vec<Setup>> {
    let mut v = vec![
        fixed_gpu_1(),
        Setup {
            label: "fixed-cpu-3 (paper CPU-only)".into(),
            gpu: (0, None),
            cpu: (3, rule(AutoscalerSpec::Fixed { replicas: 3 })),
            cluster: None,
            policy: None,
        },
        static_for(base, StaticBasis::Peak, peak),
        static_for(base, StaticBasis::Mean, mean),
    ];
    for name in [
        "hpa-cpu",
        "hpa-queue",
        "keda",
        "knative",
        "forecast",
        "oracle",
    ] {
        v.push(Setup::gpu(
            name,
            1,
            parse_autoscaler(name, &base.pools.gpu, base.slo)?,
        ));
    }
    Ok(v)
}

/// The four treatments of the KARB evaluation plan (see the module docs).
pub fn karb_treatments(base: &SimConfig) -> Result<Vec<Setup>> {
    let gpu = &base.pools.gpu;
    let max = gpu.max_replicas;
    let hpa_service = HpaConfig {
        min_replicas: 1,
        max_replicas: max,
        metrics: vec![
            MetricSpec::External {
                name: "queue_len".into(),
                target: ExternalTarget::AverageValue(2.0),
            },
            MetricSpec::External {
                name: "p95_latency".into(),
                target: ExternalTarget::Value(0.5 * base.slo),
            },
        ],
        behavior: Some(Behavior::default()),
        ..HpaConfig::default()
    };
    let keda_queue = KedaConfig {
        metric: "queue_len".into(),
        threshold: 2.0,
        min_replica_count: 1,
        max_replica_count: max,
        behavior: Some(Behavior::default()),
        ..KedaConfig::default()
    };
    // The full stack starts with the nodes its first replica needs and grows to the base cluster.
    let nodes_per_pod = 1;
    let full_cluster = ClusterConfig {
        nodes: nodes_per_pod,
        node_autoscaler: Some(NodeAutoscaler {
            max_nodes: base.cluster.nodes.max(1),
            provision_delay: kis_sim::Dist::constant(120.0),
        }),
        ..base.cluster.clone()
    };
    let mut full = Setup::gpu(
        "karb-4-full-stack (KEDA queue + node autoscaler, 120 s)",
        1,
        rule(AutoscalerSpec::Keda(keda_queue.clone())),
    );
    full.cluster = Some(full_cluster);
    Ok(vec![
        Setup::gpu(
            "karb-1-cpu-hpa",
            1,
            parse_autoscaler("hpa-cpu", gpu, base.slo)?,
        ),
        Setup::gpu(
            "karb-2-hpa-service (queue + p95)",
            1,
            rule(AutoscalerSpec::Hpa(hpa_service)),
        ),
        Setup::gpu(
            "karb-3-keda-queue (HPA stabilisation)",
            1,
            rule(AutoscalerSpec::Keda(keda_queue)),
        ),
        full,
    ])
}

/// Keeps the set-ups whose label starts with one of `only` (comma-separated); an error if none is left.
pub fn filter_setups(mut v: Vec<Setup>, only: Option<&str>) -> Result<Vec<Setup>> {
    if let Some(only) = only {
        let want: Vec<&str> = only.split(',').map(str::trim).collect();
        v.retain(|s| want.iter().any(|w| s.label.starts_with(w)));
        if v.is_empty() {
            bail!("--only {only}: matches none of the autoscalers");
        }
    }
    Ok(v)
}

/// The rule-based autoscalers with parameters (`tune`'s default list, `evaluate`'s rules).
pub const RULES: [&str; 5] = ["hpa-cpu", "hpa-queue", "keda", "knative", "forecast"];

/// The config of one run of `setup` on `sc` with `seed`.
pub fn run_config(base: &SimConfig, sc: &Scenario, setup: &Setup, seed: u64) -> Result<SimConfig> {
    let mut cfg = base.clone();
    cfg.seed = seed;
    cfg.workload.shape = sc.shape.clone();
    cfg.workload.scale = sc.scale;
    cfg.pools.gpu.replicas = setup.gpu.0;
    cfg.pools.gpu.autoscaler = setup.gpu.1.clone();
    cfg.pools.cpu.replicas = setup.cpu.0;
    cfg.pools.cpu.autoscaler = setup.cpu.1.clone();
    if let Some(c) = &setup.cluster {
        cfg.cluster = c.clone();
    }
    if setup.is_oracle() {
        // The oracle starts from the size its first window needs; everyone else from 1 replica.
        let p = sc.profile(seed)?;
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
    Ok(cfg)
}

/// One run of `setup` on `sc` with `seed`.
pub fn run_one(base: &SimConfig, sc: &Scenario, setup: &Setup, seed: u64) -> Result<Summary> {
    let cfg = run_config(base, sc, setup, seed)?;
    match &setup.policy {
        Some(p) => {
            let mut policy = (p.make.0)();
            // The GPU pool is the one under evaluation, as for every rule set-up: no CPU replicas.
            run_episode(cfg, policy.as_mut(), seed, setup.cpu.0 == 0)
        }
        None => Ok(Simulation::new(cfg)?.run()),
    }
}
