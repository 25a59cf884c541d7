//! The agent's own `/metrics`: decisions by pool and source, fallbacks by reason, publish
//! errors, the last targets (published, rule, policy), every observation feature, and the
//! decision latency.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::safety::Reason;

type Labels = Vec<(String, String)>;

/// Every metric `kis-agent live` exports (prefix `kis_agent`).
pub struct Metrics {
    registry: Registry,
    /// Decisions by pool and source (rule, policy, max, fallback, hold).
    pub decisions: Family<Labels, Counter>,
    /// Decisions that went to the rule, by reason.
    pub fallbacks: Family<Labels, Counter>,
    /// Failed publishes by pool.
    pub publish_errors: Family<Labels, Counter>,
    /// Last targets by pool and kind (published, rule, policy).
    pub targets: Family<Labels, Gauge<f64, AtomicU64>>,
    /// The last observation, by feature name.
    pub observation: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Seconds from the start of a period to its targets published.
    pub latency: Histogram,
}

/// Bucket bounds of the decision latency, seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers everything; fallback reasons start at 0 so a dashboard sees every series.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kis_agent");
        let m = Metrics {
            registry: Registry::default(),
            decisions: Family::default(),
            fallbacks: Family::default(),
            publish_errors: Family::default(),
            targets: Family::default(),
            observation: Family::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
        };
        registry.register(
            "decisions",
            "Decisions by pool and source",
            m.decisions.clone(),
        );
        registry.register(
            "fallbacks",
            "Decisions that went to the rule, by reason",
            m.fallbacks.clone(),
        );
        registry.register(
            "publish_errors",
            "Failed publishes to kis-adapter, by pool",
            m.publish_errors.clone(),
        );
        registry.register(
            "target_replicas",
            "Last targets by pool and kind (published, rule, policy)",
            m.targets.clone(),
        );
        registry.register(
            "observation",
            "The last observation the policy read, by feature",
            m.observation.clone(),
        );
        registry.register(
            "decision_seconds",
            "From the start of a period to its targets published",
            m.latency.clone(),
        );
        for r in Reason::ALL {
            let _ = m.fallbacks.get_or_create(&l(&[("reason", r.as_str())]));
        }
        Metrics { registry, ..m }
    }

    /// Counts a decision.
    pub fn decision(&self, pool: &str, source: &str) {
        self.decisions
            .get_or_create(&l(&[("pool", pool), ("source", source)]))
            .inc();
    }

    /// Counts a fallback.
    pub fn fallback(&self, reason: Reason) {
        self.fallbacks
            .get_or_create(&l(&[("reason", reason.as_str())]))
            .inc();
    }

    /// Counts a failed publish.
    pub fn publish_error(&self, pool: &str) {
        self.publish_errors
            .get_or_create(&l(&[("pool", pool)]))
            .inc();
    }

    /// Sets a target gauge.
    pub fn target(&self, pool: &str, kind: &str, v: f64) {
        self.targets
            .get_or_create(&l(&[("pool", pool), ("kind", kind)]))
            .set(v);
    }

    /// Sets the observation gauges.
    pub fn observe(&self, names: &[&str], obs: &[f32]) {
        for (n, v) in names.iter().zip(obs) {
            self.observation
                .get_or_create(&l(&[("feature", n)]))
                .set(*v as f64);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// Serves `/metrics` on `listener` until the task is dropped (kis-loadgen's exposition server).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    kis_loadgen::metrics::serve_text(listener, Arc::new(move || metrics.render())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.decision("cpu", "policy");
        m.fallback(Reason::Stale);
        m.publish_error("cpu");
        m.target("cpu", "published", 3.0);
        m.observe(&["queue", "p95"], &[0.25, 0.5]);
        m.latency.observe(0.02);
        let s = m.render();
        for want in [
            "kis_agent_decisions_total{pool=\"cpu\",source=\"policy\"} 1",
            "kis_agent_fallbacks_total{reason=\"stale\"} 1",
            "kis_agent_fallbacks_total{reason=\"query_failed\"} 0",
            "kis_agent_publish_errors_total{pool=\"cpu\"} 1",
            "kis_agent_target_replicas{pool=\"cpu\",kind=\"published\"} 3",
            "kis_agent_observation{feature=\"queue\"} 0.25",
            "kis_agent_decision_seconds_count 1",
        ] {
            assert!(s.contains(want), "{want} missing in\n{s}");
        }
    }
}
