//! Building simulation configs: reading config and profile files, the default scenarios, autoscaler
//! shorthands and trace names. Errors name the file and the field.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kis_autoscale::forecast::exact_n_hpa;
use kis_autoscale::{
    AutoscalerSpec, ExternalTarget, ForecastConfig, HpaConfig, KedaConfig, KpaConfig, MetricSpec,
};
use kis_sim::profiles::{kis_s_cpu, kis_s_gpu};
use kis_sim::{OracleConfig, PoolConfig, Pools, ScalerSpec, ServiceProfile, SimConfig, Workload};
use kis_traffic::{ArrivalKind, Pattern, ShapeSpec};

use crate::cli::{ScenarioArgs, SimulateArgs};
use crate::files::read_toml_or_json;

/// Reads a simulation config: TOML for `.toml`, JSON otherwise.
pub fn load_config(path: &Path) -> Result<SimConfig> {
    let cfg: SimConfig = read_toml_or_json(path, "config")?;
    cfg.validate()
        .with_context(|| format!("config {}", path.display()))?;
    Ok(cfg)
}

/// Reads a service-time profile (JSON) and validates it.
pub fn load_profile(path: &Path) -> Result<ServiceProfile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read profile {}", path.display()))?;
    let p: ServiceProfile =
        serde_json::from_str(&text).map_err(|e| anyhow!("profile {}: {e}", path.display()))?;
    p.validate("profile")
        .with_context(|| format!("profile {}", path.display()))?;
    Ok(p)
}

/// The KIS-S testbed: one node with one GPU, 3 GPU replicas (so 1 Running, 2 Pending) and 3 CPU
/// replicas with the paper's measured latencies, fixed replica counts, the default spike.
pub fn paper_testbed() -> SimConfig {
    let mut cfg = SimConfig::new(
        Workload::new(ShapeSpec::default_for(Pattern::Spike), ArrivalKind::Poisson),
        Pools {
            gpu: PoolConfig::new(3, kis_s_gpu()),
            cpu: PoolConfig::new(3, kis_s_cpu()),
        },
    );
    cfg.record_series = true;
    cfg
}

/// Applies the shared cluster/profile flags.
pub fn apply_scenario(cfg: &mut SimConfig, a: &ScenarioArgs) -> Result<()> {
    if let Some(p) = &a.gpu_profile {
        cfg.pools.gpu.profile = load_profile(p)?;
    }
    if let Some(p) = &a.cpu_profile {
        cfg.pools.cpu.profile = load_profile(p)?;
    }
    if let Some(s) = a.slo {
        cfg.slo = s;
    }
    if let Some(n) = a.nodes {
        cfg.cluster.nodes = n;
    }
    if let Some(g) = a.gpus_per_node {
        cfg.cluster.gpus_per_node = g;
    }
    Ok(())
}

/// Resolves a trace name: an existing path, else a file in `<shared>/traces/`.
pub fn resolve_trace(name: &str) -> Result<PathBuf> {
    let p = PathBuf::from(name);
    if p.is_file() {
        return Ok(p);
    }
    let shared = kis_traffic::shared_dir().ok_or_else(|| {
        anyhow!(
            "--trace {name}: not a file, and no shared/traces folder found (set KIS_SHARED_DIR)"
        )
    })?;
    let q = shared.join("traces").join(name);
    if q.is_file() {
        Ok(q)
    } else {
        bail!(
            "--trace {name}: no such file here or in {}",
            shared.join("traces").display()
        )
    }
}

/// Requests per second one replica of `pool` serves at batch 1 with all instances busy.
pub fn replica_capacity(pool: &PoolConfig) -> f64 {
    pool.instances as f64 / pool.profile.mean_batch_time(1).max(1e-9)
}

/// Parses an autoscaler: a shorthand (see `--gpu-autoscaler`) or a JSON spec. None = fixed replicas.
pub fn parse_autoscaler(s: &str, pool: &PoolConfig, slo: f64) -> Result<Option<ScalerSpec>> {
    let max = pool.max_replicas;
    let hpa = |metrics: Vec<MetricSpec>| HpaConfig {
        min_replicas: 1,
        max_replicas: max,
        metrics,
        ..HpaConfig::default()
    };
    let rule = |r: AutoscalerSpec| Ok(Some(ScalerSpec::Rule(r)));
    let s = s.trim();
    if s.starts_with('{') {
        let spec: ScalerSpec =
            serde_json::from_str(s).map_err(|e| anyhow!("autoscaler spec {s}: {e}"))?;
        return Ok(Some(spec));
    }
    if let Some(n) = s.strip_prefix("fixed:") {
        let replicas = n
            .parse()
            .map_err(|_| anyhow!("autoscaler {s}: replicas must be a whole number, got {n:?}"))?;
        return rule(AutoscalerSpec::Fixed { replicas });
    }
    let cap = replica_capacity(pool);
    match s {
        "none" => Ok(None),
        "hpa-cpu" => rule(AutoscalerSpec::Hpa(hpa(Vec::new()))),
        // Two waiting requests per pod: Triton's queue metric through an External metric.
        "hpa-queue" => rule(AutoscalerSpec::Hpa(hpa(vec![MetricSpec::External {
            name: "queue_len".into(),
            target: ExternalTarget::AverageValue(2.0),
        }]))),
        // Windowed p95 against half the SLO, as a Value target.
        "hpa-p95" => rule(AutoscalerSpec::Hpa(hpa(vec![MetricSpec::External {
            name: "p95_latency".into(),
            target: ExternalTarget::Value(0.5 * slo),
        }]))),
        // KEDA on the request rate (an ingress metric keeps working at zero pods), 70 % of capacity.
        "keda" => rule(AutoscalerSpec::Keda(KedaConfig {
            metric: "request_rate".into(),
            threshold: 0.7 * cap,
            min_replica_count: 1,
            max_replica_count: max,
            ..KedaConfig::default()
        })),
        // Knative KPA with a container concurrency target of 2 per model instance.
        "knative" => rule(AutoscalerSpec::Knative(KpaConfig {
            target_concurrency: 2.0 * pool.instances as f64,
            min_scale: 1,
            max_scale: max,
            enable_scale_to_zero: false,
            ..KpaConfig::default()
        })),
        "external-target" => rule(AutoscalerSpec::ExternalTarget(hpa(Vec::new()))),
        // Holt forecast 60 s ahead (30 s cold start + the rate window's lag), sized at 70 %
        // utilisation, executed by an exact-N external-target HPA.
        "forecast" => rule(AutoscalerSpec::Forecast(Box::new(ForecastConfig {
            replica_capacity: cap,
            hpa: HpaConfig {
                min_replicas: 1,
                max_replicas: max,
                ..exact_n_hpa()
            },
            ..ForecastConfig::default()
        }))),
        "oracle" => Ok(Some(ScalerSpec::Oracle(OracleConfig {
            max_replicas: max,
            ..OracleConfig::default()
        }))),
        other => bail!(
            "unknown autoscaler {other:?} (expected none, fixed:N, hpa-cpu, hpa-queue, hpa-p95, keda, knative, forecast, oracle, external-target or a JSON spec)"
        ),
    }
}

/// The config `simulate` runs: the file (or the paper testbed), then the flags.
pub fn simulate_config(a: &SimulateArgs) -> Result<SimConfig> {
    let mut cfg = match &a.config {
        Some(p) => load_config(p)?,
        None => paper_testbed(),
    };
    apply_scenario(&mut cfg, &a.scenario)?;
    if let Some(p) = a.pattern {
        cfg.workload.shape = if p == Pattern::Trace {
            let name = a
                .trace
                .as_deref()
                .ok_or_else(|| anyhow!("--pattern trace needs --trace FILE"))?;
            ShapeSpec::Trace {
                path: resolve_trace(name)?,
                scale: 1.0,
                speedup: 1.0,
                offset: 0.0,
                limit: None,
            }
        } else {
            ShapeSpec::default_for(p)
        };
    } else if let Some(name) = &a.trace {
        cfg.workload.shape = ShapeSpec::Trace {
            path: resolve_trace(name)?,
            scale: 1.0,
            speedup: 1.0,
            offset: 0.0,
            limit: None,
        };
    }
    if let Some(sp) = a.speedup {
        match &mut cfg.workload.shape {
            ShapeSpec::Trace { speedup, .. } => *speedup = sp,
            _ => bail!("--speedup only applies to --pattern trace"),
        }
    }
    if let Some(d) = a.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds, got {d}");
        }
        cfg.workload.shape = cfg.workload.shape.clone().with_duration(d);
    }
    if let Some(s) = a.scale {
        cfg.workload.scale = s;
    }
    if let Some(k) = a.arrivals {
        cfg.workload.arrivals = k;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(n) = a.gpu_replicas {
        cfg.pools.gpu.replicas = n;
    }
    if let Some(n) = a.cpu_replicas {
        cfg.pools.cpu.replicas = n;
    }
    let slo = cfg.slo;
    if let Some(s) = &a.gpu_autoscaler {
        cfg.pools.gpu.autoscaler =
            parse_autoscaler(s, &cfg.pools.gpu, slo).context("--gpu-autoscaler")?;
    }
    if let Some(s) = &a.cpu_autoscaler {
        cfg.pools.cpu.autoscaler =
            parse_autoscaler(s, &cfg.pools.cpu, slo).context("--cpu-autoscaler")?;
    }
    cfg.record_series = true;
    cfg.validate()?;
    Ok(cfg)
}
