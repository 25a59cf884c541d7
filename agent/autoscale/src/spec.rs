//! `AutoscalerSpec`: every autoscaler the simulator can run, as serde config with validation that
//! names the offending field, a builder, and the tunable parameter space for `kis-agent tune`.

use serde::{Deserialize, Serialize};

use crate::Autoscaler;
use crate::fixed::{Fixed, StaticBasis};
use crate::forecast::{Forecast, ForecastConfig};
use crate::hpa::{ExternalTarget, Hpa, HpaConfig, MetricSpec, ScalingRules};
// Defined beside the HPA they configure (the HPA must not import this module); kept here too.
pub use crate::hpa::{TARGET_REPLICAS_METRIC, external_target_hpa, hpa_metrics};
use crate::keda::{Keda, KedaConfig};
use crate::kpa::{Kpa, KpaConfig};

/// Every autoscaler the simulator can run (`{"kind": "hpa", ...}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AutoscalerSpec {
    /// The stock HPA v2 (CPU Utilization 80 % unless `metrics` says otherwise).
    Hpa(HpaConfig),
    /// KEDA ScaledObject with one Prometheus trigger (operator + the HPA it creates).
    Keda(KedaConfig),
    /// Knative KPA.
    Knative(KpaConfig),
    /// Always `replicas` (the paper's GPU-only 1, CPU-only 3).
    Fixed {
        /// The replica count.
        replicas: u32,
    },
    /// Always `replicas`, a count the caller provisioned at the peak or the mean load.
    Static {
        /// The replica count.
        replicas: u32,
        /// What it was provisioned for (labels only).
        basis: StaticBasis,
    },
    /// HPA on External `kis-replicas`, AverageValue 1, tolerance 0 (unless `tolerance` is
    /// set): how kis-adapter + the stock HPA follow a policy. `metrics` must be left empty.
    ExternalTarget(HpaConfig),
    /// Forecast the rate one cold start ahead, size the pool at a target utilisation, and publish
    /// the count to an external-target HPA (see `forecast`).
    Forecast(Box<ForecastConfig>),
}

impl Default for AutoscalerSpec {
    fn default() -> Self {
        AutoscalerSpec::Hpa(HpaConfig::default())
    }
}

/// An invalid configuration value, naming the field (`hpa.behavior.scale_down.policies[0].period`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid autoscaler config: `{field}` {problem}")]
pub struct ConfigError {
    /// The field's path (`hpa.behavior.scale_down.policies[0].period`).
    pub field: String,
    /// What is wrong, with the bound and the value.
    pub problem: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// One tunable parameter: searched in `[lo, hi]`, on a log scale if `log`, rounded if `integer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Dotted path of the field in the spec (`hpa.tolerance`).
    pub name: String,
    /// Lower end of the search range.
    pub lo: f64,
    /// Upper end of the search range.
    pub hi: f64,
    /// Search on a log scale.
    pub log: bool,
    /// Round to whole numbers.
    pub integer: bool,
}

impl Param {
    fn new(name: &str, lo: f64, hi: f64, log: bool, integer: bool) -> Self {
        Param {
            name: name.into(),
            lo,
            hi,
            log,
            integer,
        }
    }
}

impl AutoscalerSpec {
    /// Short label for tables and plots (`hpa-cpu`, `hpa-queue_len`, `keda`, `fixed-3`, ...).
    pub fn label(&self) -> String {
        match self {
            AutoscalerSpec::Hpa(c) => match c.metrics.as_slice() {
                [] | [MetricSpec::CpuUtilization { .. }] => "hpa-cpu".into(),
                [MetricSpec::External { name, .. }] => format!("hpa-{name}"),
                _ => "hpa".into(),
            },
            AutoscalerSpec::Keda(c) => format!("keda-{}", c.metric),
            AutoscalerSpec::Knative(_) => "knative-kpa".into(),
            AutoscalerSpec::Fixed { replicas } => format!("fixed-{replicas}"),
            AutoscalerSpec::Static { replicas, basis } => {
                let b = match basis {
                    StaticBasis::Peak => "peak",
                    StaticBasis::Mean => "mean",
                };
                format!("static-{b}-{replicas}")
            }
            AutoscalerSpec::ExternalTarget(_) => "external-target".into(),
            AutoscalerSpec::Forecast(_) => "forecast".into(),
        }
    }

    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            AutoscalerSpec::Hpa(c) => validate_hpa("hpa", c),
            AutoscalerSpec::ExternalTarget(c) => {
                if !c.metrics.is_empty() {
                    return Err(ConfigError::new(
                        "external-target.metrics",
                        format!(
                            "is fixed to External `{TARGET_REPLICAS_METRIC}` AverageValue 1; leave it out"
                        ),
                    ));
                }
                validate_hpa("external-target", &external_target_hpa(c))
            }
            AutoscalerSpec::Keda(c) => validate_keda(c),
            AutoscalerSpec::Knative(c) => validate_kpa(c),
            AutoscalerSpec::Fixed { .. } | AutoscalerSpec::Static { .. } => Ok(()),
            AutoscalerSpec::Forecast(c) => validate_forecast(c),
        }
    }

    /// Validates and builds a fresh autoscaler (no history).
    pub fn build(&self) -> Result<Box<dyn Autoscaler>, ConfigError> {
        self.validate()?;
        let label = self.label();
        Ok(match self {
            AutoscalerSpec::Hpa(c) => Box::new(Hpa::new(label, c)),
            AutoscalerSpec::ExternalTarget(c) => Box::new(Hpa::new(label, &external_target_hpa(c))),
            AutoscalerSpec::Keda(c) => Box::new(Keda::new(label, c)),
            AutoscalerSpec::Knative(c) => Box::new(Kpa::new(label, c)),
            AutoscalerSpec::Fixed { replicas } | AutoscalerSpec::Static { replicas, .. } => {
                Box::new(Fixed::new(label, *replicas))
            }
            AutoscalerSpec::Forecast(c) => Box::new(Forecast::new(label, c)),
        })
    }
}

fn finite_in(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v < lo || v > hi {
        let want = if hi == f64::MAX {
            format!("must be a finite number >= {lo}")
        } else {
            format!("must be within [{lo}, {hi}]")
        };
        return Err(ConfigError::new(field, format!("{want}, got {v}")));
    }
    Ok(())
}

fn positive(field: &str, v: f64) -> Result<(), ConfigError> {
    if !v.is_finite() || v <= 0.0 {
        return Err(ConfigError::new(field, format!("must be > 0, got {v}")));
    }
    Ok(())
}

fn validate_rules(field: &str, r: &ScalingRules) -> Result<(), ConfigError> {
    // Upstream validation: window 0..=3600 s, period 1..=1800 s, value > 0, at least one policy.
    finite_in(
        &format!("{field}.stabilization_window"),
        r.stabilization_window,
        0.0,
        3600.0,
    )?;
    if r.policies.is_empty() {
        return Err(ConfigError::new(
            format!("{field}.policies"),
            "must hold at least one policy",
        ));
    }
    for (i, p) in r.policies.iter().enumerate() {
        finite_in(
            &format!("{field}.policies[{i}].period"),
            p.period,
            1.0,
            1800.0,
        )?;
        if p.value == 0 {
            return Err(ConfigError::new(
                format!("{field}.policies[{i}].value"),
                "must be > 0",
            ));
        }
    }
    if let Some(t) = r.tolerance {
        finite_in(&format!("{field}.tolerance"), t, 0.0, f64::MAX)?;
    }
    Ok(())
}

fn validate_hpa(p: &str, c: &HpaConfig) -> Result<(), ConfigError> {
    if c.max_replicas == 0 {
        return Err(ConfigError::new(
            format!("{p}.max_replicas"),
            "must be >= 1",
        ));
    }
    if c.min_replicas > c.max_replicas {
        return Err(ConfigError::new(
            format!("{p}.min_replicas"),
            format!(
                "must be <= max_replicas ({}), got {}",
                c.max_replicas, c.min_replicas
            ),
        ));
    }
    if c.min_replicas == 0 {
        // Upstream: minReplicas 0 only with the HPAScaleToZero gate and an Object/External metric.
        let has_external = c
            .metrics
            .iter()
            .any(|m| matches!(m, MetricSpec::External { .. }));
        if !c.scale_to_zero || !has_external {
            return Err(ConfigError::new(
                format!("{p}.min_replicas"),
                "may be 0 only with scale_to_zero (the HPAScaleToZero gate) and an External metric",
            ));
        }
    }
    for (i, m) in c.metrics.iter().enumerate() {
        let f = format!("{p}.metrics[{i}]");
        match m {
            MetricSpec::CpuUtilization {
                average_utilization,
            } => {
                if *average_utilization == 0 {
                    return Err(ConfigError::new(
                        format!("{f}.average_utilization"),
                        "must be > 0",
                    ));
                }
            }
            MetricSpec::External { name, target } => {
                if name.is_empty() {
                    return Err(ConfigError::new(format!("{f}.name"), "must not be empty"));
                }
                let (ExternalTarget::AverageValue(v) | ExternalTarget::Value(v)) = target;
                positive(&format!("{f}.target.value"), *v)?;
            }
        }
    }
    positive(&format!("{p}.sync_period"), c.sync_period)?;
    if let Some(t) = c.tolerance {
        finite_in(&format!("{p}.tolerance"), t, 0.0, f64::MAX)?;
    }
    finite_in(
        &format!("{p}.cpu_initialization_period"),
        c.cpu_initialization_period,
        0.0,
        f64::MAX,
    )?;
    finite_in(
        &format!("{p}.initial_readiness_delay"),
        c.initial_readiness_delay,
        0.0,
        f64::MAX,
    )?;
    finite_in(
        &format!("{p}.cpu_metric_window"),
        c.cpu_metric_window,
        0.0,
        f64::MAX,
    )?;
    finite_in(
        &format!("{p}.downscale_stabilization"),
        c.downscale_stabilization,
        0.0,
        f64::MAX,
    )?;
    if let Some(b) = &c.behavior {
        validate_rules(&format!("{p}.behavior.scale_up"), &b.scale_up)?;
        validate_rules(&format!("{p}.behavior.scale_down"), &b.scale_down)?;
    }
    Ok(())
}

fn validate_forecast(c: &ForecastConfig) -> Result<(), ConfigError> {
    positive("forecast.replica_capacity", c.replica_capacity)?;
    finite_in(
        "forecast.target_utilization",
        c.target_utilization,
        0.01,
        1.0,
    )?;
    finite_in("forecast.lead", c.lead, 0.0, 86_400.0)?;
    finite_in("forecast.alpha", c.alpha, 0.001, 1.0)?;
    finite_in("forecast.beta", c.beta, 0.0, 1.0)?;
    finite_in("forecast.gamma", c.gamma, 0.0, 1.0)?;
    if let Some(season) = c.season {
        finite_in("forecast.season", season, 2.0 * c.hpa.sync_period, f64::MAX)?;
    }
    finite_in(
        "forecast.scale_down_delay",
        c.scale_down_delay,
        0.0,
        f64::MAX,
    )?;
    positive("forecast.backlog_drain", c.backlog_drain)?;
    if !c.hpa.metrics.is_empty() {
        return Err(ConfigError::new(
            "forecast.hpa.metrics",
            format!("is fixed to External `{TARGET_REPLICAS_METRIC}` AverageValue 1; leave it out"),
        ));
    }
    validate_hpa("forecast.hpa", &external_target_hpa(&c.hpa))
}

fn validate_keda(c: &KedaConfig) -> Result<(), ConfigError> {
    if c.metric.is_empty() {
        return Err(ConfigError::new("keda.metric", "must not be empty"));
    }
    positive("keda.threshold", c.threshold)?;
    finite_in(
        "keda.activation_threshold",
        c.activation_threshold,
        0.0,
        f64::MAX,
    )?;
    positive("keda.polling_interval", c.polling_interval)?;
    finite_in("keda.cooldown_period", c.cooldown_period, 0.0, f64::MAX)?;
    finite_in(
        "keda.initial_cooldown_period",
        c.initial_cooldown_period,
        0.0,
        f64::MAX,
    )?;
    if c.max_replica_count == 0 {
        return Err(ConfigError::new("keda.max_replica_count", "must be >= 1"));
    }
    if c.min_replica_count > c.max_replica_count {
        return Err(ConfigError::new(
            "keda.min_replica_count",
            format!(
                "must be <= max_replica_count ({}), got {}",
                c.max_replica_count, c.min_replica_count
            ),
        ));
    }
    positive("keda.hpa_sync_period", c.hpa_sync_period)?;
    finite_in("keda.hpa_tolerance", c.hpa_tolerance, 0.0, f64::MAX)?;
    if let Some(b) = &c.behavior {
        validate_rules("keda.behavior.scale_up", &b.scale_up)?;
        validate_rules("keda.behavior.scale_down", &b.scale_down)?;
    }
    Ok(())
}

fn validate_kpa(c: &KpaConfig) -> Result<(), ConfigError> {
    positive("knative.target_concurrency", c.target_concurrency)?;
    // Knative accepts 1..=100 percent for container-concurrency-target-percentage.
    finite_in(
        "knative.target_utilization",
        c.target_utilization,
        0.01,
        1.0,
    )?;
    // Knative: stable window 6 s ..= 1 h.
    finite_in("knative.stable_window", c.stable_window, 6.0, 3600.0)?;
    finite_in(
        "knative.panic_window_percentage",
        c.panic_window_percentage,
        1.0,
        100.0,
    )?;
    finite_in(
        "knative.panic_threshold_percentage",
        c.panic_threshold_percentage,
        110.0,
        1000.0,
    )?;
    if !(c.max_scale_up_rate.is_finite() && c.max_scale_up_rate > 1.0) {
        return Err(ConfigError::new(
            "knative.max_scale_up_rate",
            format!("must be > 1, got {}", c.max_scale_up_rate),
        ));
    }
    if !(c.max_scale_down_rate.is_finite() && c.max_scale_down_rate > 1.0) {
        return Err(ConfigError::new(
            "knative.max_scale_down_rate",
            format!("must be > 1, got {}", c.max_scale_down_rate),
        ));
    }
    finite_in(
        "knative.scale_to_zero_grace_period",
        c.scale_to_zero_grace_period,
        0.0,
        f64::MAX,
    )?;
    if c.max_scale != 0 && c.min_scale > c.max_scale {
        return Err(ConfigError::new(
            "knative.min_scale",
            format!(
                "must be <= max_scale ({}), got {}",
                c.max_scale, c.min_scale
            ),
        ));
    }
    positive("knative.tick", c.tick)
}

impl AutoscalerSpec {
    /// The parameters `kis-agent tune` may search, with their ranges. Ranges for metric targets
    /// are relative to the configured target (a decade either side, log scale), because a queue
    /// length and a p95 in seconds live on different scales.
    pub fn param_space(&self) -> Vec<Param> {
        match self {
            AutoscalerSpec::Hpa(c) => {
                let mut ps: Vec<Param> = hpa_metrics(c)
                    .iter()
                    .enumerate()
                    .map(|(i, m)| match m {
                        MetricSpec::CpuUtilization { .. } => Param::new(
                            &format!("metrics[{i}].average_utilization"),
                            10.0,
                            100.0,
                            false,
                            true,
                        ),
                        MetricSpec::External { target, .. } => {
                            let (ExternalTarget::AverageValue(t) | ExternalTarget::Value(t)) =
                                target;
                            Param::new(
                                &format!("metrics[{i}].target.value"),
                                t / 10.0,
                                t * 10.0,
                                true,
                                false,
                            )
                        }
                    })
                    .collect();
                ps.push(Param::new("tolerance", 0.0, 0.3, false, false));
                if c.behavior.is_some() {
                    ps.push(Param::new(
                        "behavior.scale_up.stabilization_window",
                        0.0,
                        120.0,
                        false,
                        false,
                    ));
                    ps.push(Param::new(
                        "behavior.scale_down.stabilization_window",
                        0.0,
                        600.0,
                        false,
                        false,
                    ));
                } else {
                    ps.push(Param::new(
                        "downscale_stabilization",
                        0.0,
                        600.0,
                        false,
                        false,
                    ));
                }
                ps
            }
            AutoscalerSpec::Keda(c) => vec![
                Param::new(
                    "threshold",
                    c.threshold / 10.0,
                    c.threshold * 10.0,
                    true,
                    false,
                ),
                Param::new("activation_threshold", 0.0, c.threshold * 2.0, false, false),
                Param::new("polling_interval", 5.0, 60.0, false, true),
                Param::new("cooldown_period", 30.0, 600.0, false, false),
            ],
            AutoscalerSpec::Knative(_) => vec![
                Param::new("target_concurrency", 0.5, 200.0, true, false),
                Param::new("target_utilization", 0.3, 1.0, false, false),
                Param::new("stable_window", 6.0, 300.0, true, false),
                Param::new("panic_threshold_percentage", 110.0, 1000.0, true, false),
                Param::new("max_scale_down_rate", 1.1, 10.0, true, false),
                Param::new("scale_to_zero_grace_period", 0.0, 120.0, false, false),
            ],
            AutoscalerSpec::Forecast(c) => {
                let mut ps = vec![
                    Param::new("target_utilization", 0.3, 1.0, false, false),
                    Param::new("lead", 0.0, 300.0, false, false),
                    Param::new("alpha", 0.05, 1.0, true, false),
                    Param::new("beta", 0.0, 0.5, false, false),
                    Param::new("scale_down_delay", 0.0, 900.0, false, false),
                    Param::new("backlog_drain", 10.0, 300.0, true, false),
                ];
                if c.season.is_some() {
                    ps.push(Param::new("gamma", 0.0, 0.5, false, false));
                }
                ps
            }
            // Fixed and static counts come from the paper or the caller; the external target
            // follows a policy and has nothing of its own to tune.
            AutoscalerSpec::Fixed { .. }
            | AutoscalerSpec::Static { .. }
            | AutoscalerSpec::ExternalTarget(_) => Vec::new(),
        }
    }

    /// This spec with the parameters of [`Self::param_space`] set to `values` (same order),
    /// validated. Values outside a parameter's range are an error naming it.
    pub fn with_params(&self, values: &[f64]) -> Result<AutoscalerSpec, ConfigError> {
        let space = self.param_space();
        if values.len() != space.len() {
            return Err(ConfigError::new(
                "params",
                format!("expected {} values, got {}", space.len(), values.len()),
            ));
        }
        let mut vals = Vec::with_capacity(values.len());
        for (p, &v) in space.iter().zip(values) {
            // A small slack absorbs the tuner's float round trips through log space.
            let slack = 1e-9 * (p.hi - p.lo).abs().max(1.0);
            if !v.is_finite() || v < p.lo - slack || v > p.hi + slack {
                return Err(ConfigError::new(
                    &p.name,
                    format!("must be within [{}, {}], got {v}", p.lo, p.hi),
                ));
            }
            let v = v.clamp(p.lo, p.hi);
            vals.push(if p.integer { v.round() } else { v });
        }
        let mut out = self.clone();
        match &mut out {
            AutoscalerSpec::Hpa(c) => {
                c.metrics = hpa_metrics(c);
                let n = c.metrics.len();
                for (m, &v) in c.metrics.iter_mut().zip(&vals) {
                    match m {
                        MetricSpec::CpuUtilization {
                            average_utilization,
                        } => *average_utilization = v as u32,
                        MetricSpec::External { target, .. } => {
                            let (ExternalTarget::AverageValue(t) | ExternalTarget::Value(t)) =
                                target;
                            *t = v;
                        }
                    }
                }
                c.tolerance = Some(vals[n]);
                match &mut c.behavior {
                    Some(b) => {
                        b.scale_up.stabilization_window = vals[n + 1];
                        b.scale_down.stabilization_window = vals[n + 2];
                    }
                    None => c.downscale_stabilization = vals[n + 1],
                }
            }
            AutoscalerSpec::Keda(c) => {
                c.threshold = vals[0];
                c.activation_threshold = vals[1];
                c.polling_interval = vals[2];
                c.cooldown_period = vals[3];
            }
            AutoscalerSpec::Knative(c) => {
                c.target_concurrency = vals[0];
                c.target_utilization = vals[1];
                c.stable_window = vals[2];
                c.panic_threshold_percentage = vals[3];
                c.max_scale_down_rate = vals[4];
                c.scale_to_zero_grace_period = vals[5];
            }
            AutoscalerSpec::Forecast(c) => {
                c.target_utilization = vals[0];
                c.lead = vals[1];
                c.alpha = vals[2];
                c.beta = vals[3];
                c.scale_down_delay = vals[4];
                c.backlog_drain = vals[5];
                if c.season.is_some() {
                    c.gamma = vals[6];
                }
            }
            AutoscalerSpec::Fixed { .. }
            | AutoscalerSpec::Static { .. }
            | AutoscalerSpec::ExternalTarget(_) => {}
        }
        out.validate()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_name_is_the_one_the_deployed_hpas_read() {
        // The simulated external-target HPA must read exactly what deploy/'s HPAs ask kis-adapter for.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
        for f in [
            "hpa-gpu.yaml",
            "hpa-cpu.yaml",
            "v1.20/hpa-gpu.yaml",
            "v1.20/hpa-cpu.yaml",
        ] {
            let text = std::fs::read_to_string(format!("{root}/{f}")).unwrap();
            let names: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("name: "))
                .filter(|n| n.starts_with("kis"))
                .collect();
            assert_eq!(names, [TARGET_REPLICAS_METRIC], "deploy/{f}");
        }
    }

    #[test]
    fn error_message_names_field_and_bound() {
        let e = AutoscalerSpec::Hpa(HpaConfig {
            tolerance: Some(-1.0),
            ..HpaConfig::default()
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid autoscaler config: `hpa.tolerance` must be a finite number >= 0, got -1"
        );
        let e = AutoscalerSpec::Knative(KpaConfig {
            target_utilization: 1.5,
            ..KpaConfig::default()
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid autoscaler config: `knative.target_utilization` must be within [0.01, 1], got 1.5"
        );
    }

    #[test]
    fn external_target_forces_metric_and_tolerance() {
        let h = external_target_hpa(&HpaConfig::default());
        assert_eq!(h.tolerance, Some(0.0));
        assert_eq!(
            h.metrics,
            vec![MetricSpec::External {
                name: TARGET_REPLICAS_METRIC.into(),
                target: ExternalTarget::AverageValue(1.0),
            }]
        );
        // An explicit tolerance is kept (to compare with a stock 0.1 cluster).
        let h = external_target_hpa(&HpaConfig {
            tolerance: Some(0.1),
            ..HpaConfig::default()
        });
        assert_eq!(h.tolerance, Some(0.1));
    }
}
