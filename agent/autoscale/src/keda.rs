//! KEDA `ScaledObject` with one Prometheus trigger: the operator's activation / scale-to-zero loop
//! composed with the HPA that KEDA creates for 1..N.

use serde::{Deserialize, Serialize};

use crate::hpa::Behavior;

/// A ScaledObject with one `prometheus` trigger. Defaults are KEDA's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KedaConfig {
    /// What the trigger's PromQL query returns: an External metric name read with
    /// [`crate::PoolView::external_metric`] (`queue_len`, `request_rate`, ...).
    pub metric: String,
    /// Trigger `threshold`: the HPA target (AverageValue by default).
    pub threshold: f64,
    /// Trigger `activationThreshold`: active iff value > this (KEDA default 0).
    pub activation_threshold: f64,
    /// Trigger `metricType`; `AverageValue` (KEDA default) or `Value`.
    pub metric_type: KedaMetricType,
    /// `pollingInterval`, seconds (30).
    pub polling_interval: f64,
    /// `cooldownPeriod`, seconds (300): inactive this long before scaling to zero.
    pub cooldown_period: f64,
    /// `minReplicaCount` (0).
    pub min_replica_count: u32,
    /// `maxReplicaCount` (100).
    pub max_replica_count: u32,
    /// `advanced.horizontalPodAutoscalerConfig.behavior` (HPA defaults).
    pub behavior: Behavior,
    /// Sync period of the HPA that KEDA creates, seconds (15).
    pub hpa_sync_period: f64,
    /// Tolerance of that HPA (0.1).
    pub hpa_tolerance: f64,
}

impl Default for KedaConfig {
    fn default() -> Self {
        KedaConfig {
            metric: "queue_len".into(),
            threshold: 5.0,
            activation_threshold: 0.0,
            metric_type: KedaMetricType::AverageValue,
            polling_interval: 30.0,
            cooldown_period: 300.0,
            min_replica_count: 0,
            max_replica_count: 100,
            behavior: Behavior::default(),
            hpa_sync_period: 15.0,
            hpa_tolerance: 0.1,
        }
    }
}

/// Trigger `metricType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KedaMetricType {
    #[default]
    AverageValue,
    Value,
}
