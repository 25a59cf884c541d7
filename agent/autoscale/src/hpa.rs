//! The stock HorizontalPodAutoscaler v2 controller (kube-controller-manager
//! `pkg/controller/podautoscaler`): metric proposals, tolerance, readiness handling,
//! stabilization windows, rate policies and min/max, as one pure state machine.

use serde::{Deserialize, Serialize};

/// `autoscaling/v2` HPA spec plus the controller-manager flags that shape its loop.
/// Defaults are the upstream defaults (see the crate README for sources).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaConfig {
    /// `spec.minReplicas` (upstream default 1). 0 needs `scale_to_zero` and an External metric.
    pub min_replicas: u32,
    /// `spec.maxReplicas` (required upstream; 10 here).
    pub max_replicas: u32,
    /// `spec.metrics`; empty = the upstream default, CPU Utilization 80 %.
    pub metrics: Vec<MetricSpec>,
    /// `spec.behavior`, defaulted as the API server does.
    pub behavior: Behavior,
    /// `--horizontal-pod-autoscaler-sync-period`, seconds.
    pub sync_period: f64,
    /// `--horizontal-pod-autoscaler-tolerance`; `None` = 0.1 (0 for the external-target autoscaler).
    pub tolerance: Option<f64>,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`, seconds.
    pub cpu_initialization_period: f64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`, seconds.
    pub initial_readiness_delay: f64,
    /// The metrics-server sample window, seconds (a CPU sample taken less than one window after the
    /// pod became Ready is ignored during the initialization period).
    pub cpu_metric_window: f64,
    /// The `HPAScaleToZero` alpha feature gate (off upstream).
    pub scale_to_zero: bool,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            min_replicas: 1,
            max_replicas: 10,
            metrics: Vec::new(),
            behavior: Behavior::default(),
            sync_period: 15.0,
            tolerance: None,
            cpu_initialization_period: 300.0,
            initial_readiness_delay: 30.0,
            cpu_metric_window: 15.0,
            scale_to_zero: false,
        }
    }
}

/// One entry of `spec.metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MetricSpec {
    /// `type: Resource`, `resource.name: cpu`, `target.type: Utilization`: integer percent of the
    /// CPU request, averaged over the pods.
    CpuUtilization { average_utilization: u32 },
    /// `type: External` with `target.type` `AverageValue` or `Value`. The value is read with
    /// [`crate::PoolView::external_metric`].
    External {
        name: String,
        target: ExternalTarget,
    },
}

/// `target` of an External metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum ExternalTarget {
    /// `averageValue`: the metric divided by the pod count.
    AverageValue(f64),
    /// `value`: the metric as a whole.
    Value(f64),
}

/// `spec.behavior`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::default_down(),
        }
    }
}

/// `HPAScalingRules`: one direction of `behavior`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRules {
    /// `stabilizationWindowSeconds` (0..=3600).
    pub stabilization_window: f64,
    #[serde(default)]
    pub select_policy: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
    /// Per-direction `tolerance` (KEP-4951 `HPAConfigurableTolerance`); `None` = the global one.
    #[serde(default)]
    pub tolerance: Option<f64>,
}

impl ScalingRules {
    /// Upstream scale-up default: no window, max of +100 % and +4 pods per 15 s.
    pub fn default_up() -> Self {
        ScalingRules {
            stabilization_window: 0.0,
            select_policy: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: 15.0,
                },
                ScalingPolicy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: 15.0,
                },
            ],
            tolerance: None,
        }
    }

    /// Upstream scale-down default: 300 s window, −100 % per 15 s.
    pub fn default_down() -> Self {
        ScalingRules {
            stabilization_window: 300.0,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period: 15.0,
            }],
            tolerance: None,
        }
    }
}

/// `selectPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (upstream default).
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `HPAScalingPolicy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    /// Pods, or percent of the replicas at the start of the period (> 0).
    pub value: u32,
    /// `periodSeconds` (1..=1800).
    pub period: f64,
}

/// `HPAScalingPolicy.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    Pods,
    Percent,
}
