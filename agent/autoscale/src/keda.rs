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
    /// `initialCooldownPeriod`, seconds (0): after creation, how long before a never-active
    /// target may be scaled to zero.
    pub initial_cooldown_period: f64,
    /// `minReplicaCount` (0).
    pub min_replica_count: u32,
    /// `maxReplicaCount` (100).
    pub max_replica_count: u32,
    /// `advanced.horizontalPodAutoscalerConfig.behavior`; `None` = not set (the HPA's legacy
    /// normalisation, see [`crate::HpaConfig::behavior`]).
    pub behavior: Option<Behavior>,
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
            initial_cooldown_period: 0.0,
            min_replica_count: 0,
            max_replica_count: 100,
            behavior: None,
            hpa_sync_period: 15.0,
            hpa_tolerance: 0.1,
        }
    }
}

/// Trigger `metricType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KedaMetricType {
    /// The metric divided by the replica count (KEDA's default).
    #[default]
    AverageValue,
    /// The metric as a whole.
    Value,
}

// === impl Keda ===

use crate::hpa::{ExternalTarget, Hpa, HpaConfig, MetricSpec, set_condition};
use crate::{Autoscaler, PoolView, ScalerStatus};

/// Slack for comparing a call time with a loop's due time (float sums of periods).
const EPS: f64 = 1e-9;

/// KEDA for one ScaledObject: the operator loop (every `polling_interval`: activation from zero,
/// scale to zero after `cooldown_period`) and the HPA it owns (every `hpa_sync_period`: 1..N on the
/// same metric with target = `threshold`).
#[derive(Clone, Debug)]
pub struct Keda {
    name: String,
    cfg: KedaConfig,
    hpa: Hpa,
    period: f64,
    next_poll: Option<f64>,
    next_sync: Option<f64>,
    last_active: Option<f64>,
    /// The ScaledObject's creation time: the first call.
    created: Option<f64>,
    active: bool,
    last_scale_time: Option<f64>,
}

impl Keda {
    /// A ScaledObject for `cfg` (assumed validated).
    pub fn new(name: impl Into<String>, cfg: &KedaConfig) -> Self {
        let name = name.into();
        let hpa = Hpa::new(format!("keda-hpa-{name}"), &keda_hpa(cfg));
        Keda {
            period: gcd_period(cfg.polling_interval, cfg.hpa_sync_period),
            name,
            cfg: cfg.clone(),
            hpa,
            next_poll: None,
            next_sync: None,
            last_active: None,
            created: None,
            active: false,
            last_scale_time: None,
        }
    }

    /// The operator's `RequestScale` for one poll.
    fn poll(&mut self, now: f64, replicas: u32, value: Option<f64>) -> u32 {
        let created = *self.created.get_or_insert(now);
        self.active = value.is_some_and(|v| v > self.cfg.activation_threshold);
        let min = self.cfg.min_replica_count;
        if self.active {
            self.last_active = Some(now);
            if replicas == 0 {
                // scaleFromZeroOrIdle: to minReplicaCount if > 0, else 1; the HPA takes over.
                return min.max(1);
            }
            replicas
        } else if value.is_none() {
            // A scaler error with no fallback configured: KEDA only marks the ScaledObject not
            // Ready and leaves the replicas alone.
            replicas
        } else if replicas > 0 && min == 0 {
            // scaleToZeroOrIdle: once the last activity is older than the cooldown, or, if there
            // never was any, once the initial cooldown after creation has passed.
            let free = match self.last_active {
                Some(t) => t + self.cfg.cooldown_period < now,
                None => created + self.cfg.initial_cooldown_period < now,
            };
            if free { 0 } else { replicas }
        } else if replicas < min {
            min
        } else {
            replicas
        }
    }
}

/// The HPA KEDA creates: minReplicas = max(minReplicaCount, 1), one External metric with the
/// trigger's threshold as target.
pub fn keda_hpa(cfg: &KedaConfig) -> HpaConfig {
    let target = match cfg.metric_type {
        KedaMetricType::AverageValue => ExternalTarget::AverageValue(cfg.threshold),
        KedaMetricType::Value => ExternalTarget::Value(cfg.threshold),
    };
    HpaConfig {
        min_replicas: cfg.min_replica_count.max(1),
        max_replicas: cfg.max_replica_count.max(1),
        metrics: vec![MetricSpec::External {
            name: cfg.metric.clone(),
            target,
        }],
        behavior: cfg.behavior.clone(),
        sync_period: cfg.hpa_sync_period,
        tolerance: Some(cfg.hpa_tolerance),
        ..HpaConfig::default()
    }
}

/// The largest period (whole milliseconds, at least 1 ms) that both loops' periods are multiples
/// of, so that calling at that period lands on every due time of both.
fn gcd_period(a: f64, b: f64) -> f64 {
    let (mut x, mut y) = ((a * 1000.0).round() as u64, (b * 1000.0).round() as u64);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    x.max(1) as f64 / 1000.0
}

/// Advances a loop's due time; true if it is due at `now`.
fn due(next: &mut Option<f64>, now: f64, period: f64) -> bool {
    match *next {
        Some(t) if now + EPS < t => false,
        Some(t) => {
            // Skip missed beats rather than firing a burst after a gap.
            let mut t = t + period;
            while t <= now + EPS {
                t += period;
            }
            *next = Some(t);
            true
        }
        None => {
            *next = Some(now + period);
            true
        }
    }
}

impl Autoscaler for Keda {
    fn name(&self) -> &str {
        &self.name
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn decide(&mut self, view: &PoolView) -> u32 {
        let now = view.now;
        let mut replicas = view.spec_replicas;
        if due(&mut self.next_poll, now, self.cfg.polling_interval) {
            replicas = self.poll(now, replicas, view.external_metric(&self.cfg.metric));
        }
        if due(&mut self.next_sync, now, self.cfg.hpa_sync_period) {
            // The HPA reads the scale subresource after the operator wrote it.
            let mut v = view.clone();
            v.spec_replicas = replicas;
            replicas = self.hpa.decide(&v);
        }
        if replicas != view.spec_replicas {
            self.last_scale_time = Some(now);
        }
        replicas
    }

    fn status(&self) -> Option<ScalerStatus> {
        let mut s = self.hpa.status().unwrap_or_default();
        s.last_scale_time = self.last_scale_time;
        let (reason, msg) = if self.active {
            (
                "ScalerActive",
                "Scaling is performed because triggers are active",
            )
        } else {
            (
                "ScalerNotActive",
                "Scaling is not performed because triggers are not active",
            )
        };
        set_condition(&mut s.conditions, "Active", self.active, reason, msg.into());
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_of_periods() {
        assert_eq!(gcd_period(30.0, 15.0), 15.0);
        assert_eq!(gcd_period(20.0, 15.0), 5.0);
        assert_eq!(gcd_period(15.0, 15.0), 15.0);
    }

    #[test]
    fn due_fires_on_schedule_and_skips_gaps() {
        let mut next = None;
        assert!(due(&mut next, 0.0, 30.0));
        assert!(!due(&mut next, 15.0, 30.0));
        assert!(due(&mut next, 30.0, 30.0));
        // A 100 s gap fires once, then the next beat is the first multiple after now.
        assert!(due(&mut next, 130.0, 30.0));
        assert_eq!(next, Some(150.0));
    }
}
