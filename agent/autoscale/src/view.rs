//! What an autoscaler sees of one pool at decision time: the contract with the simulator
//! (and, later, with the agent's live mode, which builds the same view from Prometheus).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The paper's two Deployments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// The GPU Deployment.
    Gpu,
    /// The CPU Deployment.
    Cpu,
}

/// One pod as the metrics pipeline sees it at decision time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    /// Ready condition is True right now.
    pub ready: bool,
    /// Seconds, same clock as `PoolView::now`. Stands in for `pod.status.startTime`.
    pub created_at: f64,
    /// When it last became Ready (the Ready condition's lastTransitionTime while Ready).
    pub ready_since: Option<f64>,
    /// CPU usage / CPU request over the last scrape window; `None` = no sample yet.
    pub cpu_utilization: Option<f64>,
    /// Busy fraction of its GPU over the window (`None` for CPU pods).
    pub gpu_utilization: Option<f64>,
    /// Requests waiting in this pod.
    pub queue_len: u32,
    /// Waiting + executing.
    pub in_flight: u32,
}

/// The pool (one Deployment) as the autoscaler sees it at time `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolView {
    /// Which Deployment.
    pub pool: Pool,
    /// Seconds since the start of the run; autoscalers have no clock of their own.
    pub now: f64,
    /// Current Deployment `spec.replicas`.
    pub spec_replicas: u32,
    /// Existing pods (Pending, starting, Ready), not the terminating ones.
    pub pods: Vec<PodView>,
    /// Req/s arriving at this pool's Service, as a Prometheus `rate()` over its window.
    pub request_rate: f64,
    /// Mean in-flight requests over the window (Knative's metric).
    pub concurrency: f64,
    /// Seconds, windowed.
    pub p95_latency: Option<f64>,
    /// Total waiting in the pool.
    pub queue_len: f64,
    /// External metric values by name as an external-metrics adapter serves them; `None` = missing/stale.
    pub external: BTreeMap<String, Option<f64>>,
}

impl PoolView {
    /// The value of an External metric as the HPA (or a KEDA trigger) would read it.
    ///
    /// An entry in `external` wins (`None` there = the adapter has no fresh value). Otherwise the
    /// built-in names map to the view's own fields, so the simulator need not duplicate them:
    /// `queue_len`, `p95_latency`, `request_rate`, `concurrency`. Any other name is missing.
    pub fn external_metric(&self, name: &str) -> Option<f64> {
        if let Some(v) = self.external.get(name) {
            return *v;
        }
        match name {
            "queue_len" => Some(self.queue_len),
            "p95_latency" => self.p95_latency,
            "request_rate" => Some(self.request_rate),
            "concurrency" => Some(self.concurrency),
            _ => None,
        }
        .filter(|v| v.is_finite())
    }

    /// Pods whose Ready condition is True.
    pub fn ready_pods(&self) -> u32 {
        self.pods.iter().filter(|p| p.ready).count() as u32
    }

    /// A view with no pods and no load, for building test cases field by field.
    pub fn empty(pool: Pool, now: f64, spec_replicas: u32) -> Self {
        PoolView {
            pool,
            now,
            spec_replicas,
            pods: Vec::new(),
            request_rate: 0.0,
            concurrency: 0.0,
            p95_latency: None,
            queue_len: 0.0,
            external: BTreeMap::new(),
        }
    }
}

impl PodView {
    /// A pod that has been Ready since `ready_since` with the given CPU utilisation sample.
    pub fn ready(created_at: f64, ready_since: f64, cpu_utilization: Option<f64>) -> Self {
        PodView {
            ready: true,
            created_at,
            ready_since: Some(ready_since),
            cpu_utilization,
            gpu_utilization: None,
            queue_len: 0,
            in_flight: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_entry_overrides_builtin_and_none_means_missing() {
        let mut v = PoolView::empty(Pool::Gpu, 0.0, 1);
        v.queue_len = 7.0;
        assert_eq!(v.external_metric("queue_len"), Some(7.0));
        v.external.insert("queue_len".into(), None);
        assert_eq!(v.external_metric("queue_len"), None);
        assert_eq!(v.external_metric("kis-replicas"), None);
        v.external.insert("kis-replicas".into(), Some(3.0));
        assert_eq!(v.external_metric("kis-replicas"), Some(3.0));
        assert_eq!(v.external_metric("p95_latency"), None);
    }

    #[test]
    fn pool_serialises_lowercase() {
        assert_eq!(serde_json::to_string(&Pool::Gpu).unwrap(), "\"gpu\"");
    }
}
