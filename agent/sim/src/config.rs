//! Simulation configuration (serde, JSON or TOML) with defaults, and its validation, which names the
//! offending field.

use serde::{Deserialize, Deserializer, Serialize};

use kis_traffic::{ArrivalKind, ShapeSpec};

use crate::dist::Dist;
use crate::profile::ServiceProfile;
use crate::{Error, Result};
use kis_autoscale::AutoscalerSpec;

/// Everything one simulated run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of every random draw (arrivals, service times, start-up delays, routing).
    #[serde(default)]
    pub seed: u64,
    /// The offered load.
    pub workload: Workload,
    /// How the Service spreads requests over Ready replicas.
    #[serde(default)]
    pub routing: Routing,
    /// The two Deployments.
    pub pools: Pools,
    /// Nodes and their capacity.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// How metrics are scraped and windowed, as a Prometheus would.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Latency objective in seconds; a request slower than this counts as an SLO miss.
    #[serde(default = "default_slo")]
    pub slo: f64,
    /// After the workload ends, keep running (no new arrivals) until every request has finished,
    /// for at most `drain_limit` seconds.
    #[serde(default)]
    pub drain: bool,
    /// Upper bound of the drain phase in seconds.
    #[serde(default = "default_drain_limit")]
    pub drain_limit: f64,
    /// Keep a time series row per scrape interval (costs memory proportional to duration).
    #[serde(default)]
    pub record_series: bool,
}

fn default_slo() -> f64 {
    0.5
}
fn default_drain_limit() -> f64 {
    3600.0
}

/// The offered load: a shared kis-traffic shape, an arrival process and a rate scale factor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Rate shape over time (the same definition kis-loadgen uses).
    pub shape: ShapeSpec,
    /// Poisson (default) or uniformly spaced arrivals.
    #[serde(default = "default_arrivals")]
    pub arrivals: ArrivalKind,
    /// Multiplies the shape's rate.
    #[serde(default = "one")]
    pub scale: f64,
}

fn default_arrivals() -> ArrivalKind {
    ArrivalKind::Poisson
}
fn one() -> f64 {
    1.0
}

/// Load-balancing policy of the Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Round robin over every Ready pod (IPVS `rr`); the two pools are interleaved by smooth weighted
    /// round robin on their pod counts times `weight`.
    #[default]
    RoundRobin,
    /// The Ready endpoint with the fewest outstanding requests (a mesh's least-request policy).
    LeastOutstanding,
}

/// The GPU and CPU Deployments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pools {
    /// The GPU Deployment (each pod takes one GPU).
    pub gpu: PoolConfig,
    /// The CPU Deployment.
    pub cpu: PoolConfig,
}

/// One Deployment of Triton replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// spec.replicas at t = 0 (those pods start Ready when they fit the cluster).
    pub replicas: u32,
    /// Measured service times.
    pub profile: ServiceProfile,
    /// Model instances per replica (Triton `instance_group.count`): batches executing at once.
    #[serde(default = "one_u32")]
    pub instances: u32,
    /// Dynamic batcher's largest batch (1 = no batching).
    #[serde(default = "one_u32")]
    pub max_batch: u32,
    /// Dynamic batcher's `max_queue_delay` in seconds: how long the oldest request may wait for a
    /// fuller batch while an instance is free.
    #[serde(default)]
    pub max_queue_delay: f64,
    /// Most requests waiting in one replica's queue; more are rejected. Absent = unbounded.
    #[serde(default)]
    pub queue_limit: Option<u32>,
    /// Start-up phases after the pod is scheduled.
    #[serde(default)]
    pub startup: Startup,
    /// terminationGracePeriodSeconds: in-flight requests of a removed pod that are not done by then are
    /// killed (and counted).
    #[serde(default = "default_grace")]
    pub grace_period: f64,
    /// CPU cores requested by each pod (for scheduling and for CPU utilisation).
    #[serde(default = "default_cpu_request")]
    pub cpu_request: f64,
    /// Routing weight of each of this pool's pods relative to the other pool's.
    #[serde(default = "one")]
    pub weight: f64,
    /// The autoscaler of this Deployment; absent = replicas stay fixed.
    #[serde(default)]
    pub autoscaler: Option<ScalerSpec>,
    /// Least and most replicas the policy environment may ask for.
    #[serde(default = "one_u32")]
    pub min_replicas: u32,
    /// See `min_replicas`.
    #[serde(default = "default_max_replicas")]
    pub max_replicas: u32,
}

fn one_u32() -> u32 {
    1
}
fn default_grace() -> f64 {
    30.0
}
fn default_cpu_request() -> f64 {
    2.0
}
fn default_max_replicas() -> u32 {
    10
}

/// Start-up phases of a scheduled pod; the pod turns Ready after all three.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Startup {
    /// Image pull.
    #[serde(default = "default_pull")]
    pub image_pull: Dist,
    /// Model load into the server.
    #[serde(default = "default_load")]
    pub model_load: Dist,
    /// Warm-up until the readiness probe passes.
    #[serde(default = "default_warmup")]
    pub warmup: Dist,
}

// Defaults sum to the 30 s readiness initialDelay of the original deployment (kis-s-original §1.3).
fn default_pull() -> Dist {
    Dist::constant(15.0)
}
fn default_load() -> Dist {
    Dist::constant(5.0)
}
fn default_warmup() -> Dist {
    Dist::constant(10.0)
}

impl Default for Startup {
    fn default() -> Self {
        Startup {
            image_pull: default_pull(),
            model_load: default_load(),
            warmup: default_warmup(),
        }
    }
}

impl Startup {
    /// Start-up that takes no time (pods Ready as soon as scheduled).
    pub fn instant() -> Self {
        Startup {
            image_pull: Dist::constant(0.0),
            model_load: Dist::constant(0.0),
            warmup: Dist::constant(0.0),
        }
    }

    /// Mean total start-up time.
    pub fn mean(&self) -> f64 {
        self.image_pull.mean() + self.model_load.mean() + self.warmup.mean()
    }
}

/// Cluster capacity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Nodes at t = 0.
    #[serde(default = "one_u32")]
    pub nodes: u32,
    /// GPUs per node (a GPU pod needs one whole GPU).
    #[serde(default = "one_u32")]
    pub gpus_per_node: u32,
    /// Allocatable CPU cores per node.
    #[serde(default = "default_cpus")]
    pub cpus_per_node: f64,
    /// Optional node autoscaler (scale-up only).
    #[serde(default)]
    pub node_autoscaler: Option<NodeAutoscaler>,
}

fn default_cpus() -> f64 {
    32.0
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nodes: 1,
            gpus_per_node: 1,
            cpus_per_node: default_cpus(),
            node_autoscaler: None,
        }
    }
}

/// Adds nodes while pods are Pending for lack of capacity, after a provisioning delay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAutoscaler {
    /// Most nodes in the cluster.
    pub max_nodes: u32,
    /// Time from the decision to a schedulable node.
    #[serde(default = "default_provision")]
    pub provision_delay: Dist,
}

fn default_provision() -> Dist {
    Dist::constant(120.0)
}

/// Prometheus-like metric collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Scrape interval in seconds: autoscalers only see values as of the last scrape.
    #[serde(default = "default_scrape")]
    pub scrape_interval: f64,
    /// `rate()` / utilisation window in seconds.
    #[serde(default = "default_window")]
    pub rate_window: f64,
    /// Window of the p95 latency metric in seconds.
    #[serde(default = "default_window")]
    pub latency_window: f64,
    /// Window of the per-pod CPU (and GPU) utilisation the autoscalers read, seconds, rounded to
    /// whole scrape intervals (at least one). Default 15 s: metrics-server's default
    /// `--metric-resolution`; it serves the CPU rate between its two latest kubelet scrapes, so the
    /// HPA sees a window of one resolution (15 s; 30 s when a scrape is missed).
    #[serde(default = "default_cpu_window")]
    pub cpu_window: f64,
}

fn default_scrape() -> f64 {
    15.0
}
fn default_window() -> f64 {
    60.0
}
fn default_cpu_window() -> f64 {
    15.0
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            scrape_interval: default_scrape(),
            rate_window: default_window(),
            latency_window: default_window(),
            cpu_window: default_cpu_window(),
        }
    }
}

fn positive(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be finite and > 0, got {v}"),
        ))
    }
}

fn nonneg(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be finite and >= 0, got {v}"),
        ))
    }
}

impl PoolConfig {
    /// A pool of `replicas` replicas with the given profile and default everything else.
    pub fn new(replicas: u32, profile: ServiceProfile) -> Self {
        PoolConfig {
            replicas,
            profile,
            instances: 1,
            max_batch: 1,
            max_queue_delay: 0.0,
            queue_limit: None,
            startup: Startup::default(),
            grace_period: default_grace(),
            cpu_request: default_cpu_request(),
            weight: 1.0,
            autoscaler: None,
            min_replicas: 1,
            max_replicas: default_max_replicas(),
        }
    }

    /// Requests per second one Ready replica serves at batch 1 with all its instances busy.
    pub fn replica_capacity(&self) -> f64 {
        self.instances as f64 / self.profile.mean_batch_time(1).max(1e-9)
    }

    fn validate(&self, f: &str) -> Result<()> {
        self.profile.validate(&format!("{f}.profile"))?;
        if self.instances == 0 {
            return Err(Error::invalid(
                format!("{f}.instances"),
                "must be >= 1, got 0",
            ));
        }
        if self.max_batch == 0 {
            return Err(Error::invalid(
                format!("{f}.max_batch"),
                "must be >= 1, got 0",
            ));
        }
        if self.max_batch > 4096 {
            return Err(Error::invalid(
                format!("{f}.max_batch"),
                format!("must be <= 4096, got {}", self.max_batch),
            ));
        }
        nonneg(&format!("{f}.max_queue_delay"), self.max_queue_delay)?;
        nonneg(&format!("{f}.grace_period"), self.grace_period)?;
        nonneg(&format!("{f}.cpu_request"), self.cpu_request)?;
        nonneg(&format!("{f}.weight"), self.weight)?;
        self.startup
            .image_pull
            .validate(&format!("{f}.startup.image_pull"))?;
        self.startup
            .model_load
            .validate(&format!("{f}.startup.model_load"))?;
        self.startup
            .warmup
            .validate(&format!("{f}.startup.warmup"))?;
        if self.min_replicas > self.max_replicas {
            return Err(Error::invalid(
                format!("{f}.min_replicas"),
                format!(
                    "must be <= max_replicas ({}), got {}",
                    self.max_replicas, self.min_replicas
                ),
            ));
        }
        Ok(())
    }
}

impl Workload {
    /// A workload with scale 1.
    pub fn new(shape: ShapeSpec, arrivals: ArrivalKind) -> Self {
        Workload {
            shape,
            arrivals,
            scale: 1.0,
        }
    }
}

impl SimConfig {
    /// A run with default cluster, metrics, SLO and seed 0.
    pub fn new(workload: Workload, pools: Pools) -> Self {
        SimConfig {
            seed: 0,
            workload,
            routing: Routing::default(),
            pools,
            cluster: ClusterConfig::default(),
            metrics: MetricsConfig::default(),
            slo: default_slo(),
            drain: false,
            drain_limit: default_drain_limit(),
            record_series: false,
        }
    }

    /// GPUs the cluster can ever offer: its nodes' (or the node autoscaler's largest cluster's).
    pub fn gpu_capacity(&self) -> u32 {
        let c = &self.cluster;
        let nodes = c
            .node_autoscaler
            .as_ref()
            .map_or(c.nodes, |n| n.max_nodes.max(c.nodes));
        nodes.saturating_mul(c.gpus_per_node)
    }

    /// Checks every value; the error names the first offending field.
    pub fn validate(&self) -> Result<()> {
        positive("slo", self.slo)?;
        nonneg("drain_limit", self.drain_limit)?;
        positive("workload.scale", self.workload.scale)?;
        self.pools.gpu.validate("pools.gpu")?;
        self.pools.cpu.validate("pools.cpu")?;
        let c = &self.cluster;
        if c.nodes == 0 && c.node_autoscaler.is_none() {
            return Err(Error::invalid(
                "cluster.nodes",
                "must be >= 1 without a node autoscaler, got 0",
            ));
        }
        positive("cluster.cpus_per_node", c.cpus_per_node)?;
        if let Some(na) = &c.node_autoscaler {
            if na.max_nodes < c.nodes {
                return Err(Error::invalid(
                    "cluster.node_autoscaler.max_nodes",
                    format!(
                        "must be >= cluster.nodes ({}), got {}",
                        c.nodes, na.max_nodes
                    ),
                ));
            }
            na.provision_delay
                .validate("cluster.node_autoscaler.provision_delay")?;
        }
        let m = &self.metrics;
        positive("metrics.scrape_interval", m.scrape_interval)?;
        positive("metrics.cpu_window", m.cpu_window)?;
        for (name, v) in [
            ("metrics.rate_window", m.rate_window),
            ("metrics.latency_window", m.latency_window),
        ] {
            if !(v.is_finite() && v >= m.scrape_interval) {
                return Err(Error::invalid(
                    name,
                    format!(
                        "must be >= metrics.scrape_interval ({}), got {v}",
                        m.scrape_interval
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Any autoscaler a pool can run: `{"kind":"oracle", ...}` or any kis-autoscale kind
/// (`{"kind":"hpa", ...}`, `keda`, `knative`, `fixed`, `static`, `external-target`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScalerSpec {
    /// The perfect-foresight oracle.
    Oracle(OracleConfig),
    /// A rule-based autoscaler from kis-autoscale.
    Rule(AutoscalerSpec),
}

impl<'de> Deserialize<'de> for ScalerSpec {
    // Dispatch on `kind` by hand: an untagged derive would hide the real field error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        if v.get("kind").and_then(|k| k.as_str()) == Some("oracle") {
            OracleConfig::deserialize(v)
                .map(ScalerSpec::Oracle)
                .map_err(D::Error::custom)
        } else {
            AutoscalerSpec::deserialize(v)
                .map(ScalerSpec::Rule)
                .map_err(D::Error::custom)
        }
    }
}

impl ScalerSpec {
    /// Short label for tables.
    pub fn label(&self) -> String {
        match self {
            ScalerSpec::Oracle(_) => "oracle".into(),
            ScalerSpec::Rule(r) => r.label(),
        }
    }
}

/// Settings of the perfect-foresight oracle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    /// Always `"oracle"`.
    pub kind: OracleKind,
    /// Fraction of the total offered load this pool must carry.
    #[serde(default = "one")]
    pub share: f64,
    /// Decision period in seconds.
    #[serde(default = "default_period")]
    pub period: f64,
    /// Allowed probability that a request's queueing wait exceeds its budget (SLO minus twice the
    /// mean service time), approximating each replica as an M/G/c queue (c = its instances) fed an
    /// equal share of the rate: Erlang C with Kingman's variability correction of the tail.
    #[serde(default = "default_miss")]
    pub miss_probability: f64,
    /// Fewest replicas.
    #[serde(default = "one_u32")]
    pub min_replicas: u32,
    /// Most replicas.
    #[serde(default = "default_max")]
    pub max_replicas: u32,
}

/// The tag value of [`OracleConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OracleKind {
    /// `"oracle"`.
    Oracle,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            kind: OracleKind::Oracle,
            share: 1.0,
            period: default_period(),
            miss_probability: default_miss(),
            min_replicas: 1,
            max_replicas: default_max(),
        }
    }
}

fn default_period() -> f64 {
    5.0
}
fn default_miss() -> f64 {
    0.01
}
fn default_max() -> u32 {
    100
}
