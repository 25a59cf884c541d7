//! The adapter's own Prometheus metrics: requests, latencies, authentication/authorization
//! failures, publishes and target freshness (`kis_adapter_` prefix).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::store::Counts;

/// Labels of request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Matched route template.
    pub route: String,
    /// HTTP status code.
    pub code: u16,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    /// Matched route template.
    pub route: String,
}

/// Labels of failure counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Short reason kind.
    pub reason: String,
}

/// Labels of target gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    /// `fresh` or `stale`.
    pub state: String,
}

/// Labels of the watched-configuration metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigSource {
    /// `authentication` (extension-apiserver-authentication) or `targets` (--targets-configmap).
    pub source: String,
}

/// Labels of configuration load outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLoad {
    /// As in [`ConfigSource`].
    pub source: String,
    /// `ok`, `error` (bad content, previous kept) or `deleted`.
    pub result: String,
}

/// All metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route and code.
    pub requests: Family<RouteLabels, Counter>,
    /// Latency by route.
    pub latency: Family<RouteOnly, Histogram>,
    /// Authentication failures by reason.
    pub authn_failures: Family<Reason, Counter>,
    /// Authorization denials/errors by reason.
    pub authz_failures: Family<Reason, Counter>,
    /// Publishes by result.
    pub publishes: Family<Reason, Counter>,
    /// Age of the target at the time it was served.
    pub freshness: Histogram,
    /// Stored targets by state.
    pub targets: Family<State, Gauge>,
    /// Watched ConfigMap versions processed, by source and result.
    pub config_loads: Family<ConfigLoad, Counter>,
    /// Unix time of the last successfully applied version, by source.
    pub config_last_load: Family<ConfigSource, Gauge<f64, AtomicU64>>,
    /// How many times the configuration in force changed since start (1 = the start-up read),
    /// by source.
    pub config_generation: Family<ConfigSource, Gauge>,
    /// Connections open on the HTTPS port now.
    pub open_connections: Gauge,
    /// Connections closed by the adapter's limits, by reason (`max_connections`,
    /// `max_connections_per_client`, `handshake_timeout`, `header_timeout`, `idle_timeout`).
    pub connections_closed: Family<Reason, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kis_adapter");
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<RouteOnly, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let authn_failures = Family::<Reason, Counter>::default();
        let authz_failures = Family::<Reason, Counter>::default();
        let publishes = Family::<Reason, Counter>::default();
        let freshness = Histogram::new([1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0]);
        let targets = Family::<State, Gauge>::default();
        let config_loads = Family::<ConfigLoad, Counter>::default();
        let config_last_load = Family::<ConfigSource, Gauge<f64, AtomicU64>>::default();
        let config_generation = Family::<ConfigSource, Gauge>::default();
        let open_connections = Gauge::default();
        let connections_closed = Family::<Reason, Counter>::default();
        registry.register(
            "open_connections",
            "Connections open on the HTTPS port",
            open_connections.clone(),
        );
        registry.register(
            "connections_closed_by_limit",
            "Connections refused or closed by a connection limit or timeout, by reason",
            connections_closed.clone(),
        );
        registry.register(
            "requests",
            "HTTP requests by route and status code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency by route",
            latency.clone(),
        );
        registry.register(
            "authentication_failures",
            "Requests refused with 401",
            authn_failures.clone(),
        );
        registry.register(
            "authorization_failures",
            "Requests refused with 403 or a review error",
            authz_failures.clone(),
        );
        registry.register(
            "publishes",
            "Publish API calls by result",
            publishes.clone(),
        );
        registry.register(
            "target_freshness_seconds",
            "Age of targets when served",
            freshness.clone(),
        );
        registry.register("targets", "Stored targets by state", targets.clone());
        registry.register(
            "config_loads",
            "Versions of watched configuration (authentication ConfigMap, targets ConfigMap) processed, by result",
            config_loads.clone(),
        );
        registry.register(
            "config_last_load_timestamp_seconds",
            "Unix time of the last successfully applied configuration version",
            config_last_load.clone(),
        );
        registry.register(
            "config_generation",
            "Times the configuration in force changed since start (1 = the start-up read)",
            config_generation.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            authn_failures,
            authz_failures,
            publishes,
            freshness,
            targets,
            config_loads,
            config_last_load,
            config_generation,
            open_connections,
            connections_closed,
        }
    }

    /// Records one processed version of watched configuration `source`; `changed` when an `ok`
    /// version changed what is in force (the generation counts those).
    pub fn config_loaded(&self, source: &str, result: &str, changed: bool, now_unix: f64) {
        self.config_loads
            .get_or_create(&ConfigLoad {
                source: source.into(),
                result: result.into(),
            })
            .inc();
        if result == "ok" {
            let s = ConfigSource {
                source: source.into(),
            };
            self.config_last_load.get_or_create(&s).set(now_unix);
            if changed {
                self.config_generation.get_or_create(&s).inc();
            }
        }
    }

    /// Increments one labelled counter.
    pub fn count(family: &Family<Reason, Counter>, reason: &str) {
        family
            .get_or_create(&Reason {
                reason: reason.into(),
            })
            .inc();
    }

    /// Text exposition, after refreshing the target gauges.
    pub fn encode(&self, counts: Counts) -> String {
        self.targets
            .get_or_create(&State {
                state: "fresh".into(),
            })
            .set(counts.fresh as i64);
        self.targets
            .get_or_create(&State {
                state: "stale".into(),
            })
            .set(counts.stale as i64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
