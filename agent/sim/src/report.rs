//! Results of a run: the summary (latency percentiles, SLO misses, replica-seconds, GPU-hours, scaling
//! actions, rejections) and the optional per-scrape time series.

use serde::{Deserialize, Serialize};

use crate::scaler::Pool;

/// Both pools in index order (0 = GPU, 1 = CPU).
pub const POOLS: [Pool; 2] = [Pool::Gpu, Pool::Cpu];

/// Index of a pool in [`POOLS`].
pub fn pool_index(p: Pool) -> usize {
    match p {
        Pool::Gpu => 0,
        Pool::Cpu => 1,
    }
}

/// Outcome of a run. Conservation: `arrivals == completed + rejected + killed + in_flight`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Seed of the run.
    pub seed: u64,
    /// Simulated time covered.
    pub simulated_seconds: f64,
    /// Requests offered.
    pub arrivals: u64,
    /// Requests answered.
    pub completed: u64,
    /// Requests refused: a full queue, or no Ready endpoint at all.
    pub rejected: u64,
    /// Of `rejected`, those that found no Ready endpoint.
    pub rejected_no_endpoint: u64,
    /// Requests dropped because their pod's grace period ran out.
    pub killed: u64,
    /// Requests still waiting or executing at the end.
    pub in_flight: u64,
    /// Seconds.
    pub mean_latency: Option<f64>,
    /// Seconds.
    pub p50: Option<f64>,
    /// Seconds.
    pub p95: Option<f64>,
    /// Seconds.
    pub p99: Option<f64>,
    /// Seconds.
    pub max_latency: Option<f64>,
    /// Mean time from arrival to the start of the request's batch, seconds.
    pub mean_wait: Option<f64>,
    /// The latency objective, seconds.
    pub slo: f64,
    /// Completed requests slower than the SLO / completed.
    pub over_slo_fraction: f64,
    /// (Slower than the SLO + rejected + killed + still in flight) / arrivals: every arrival not
    /// answered within the SLO by the end of the run. The backlog left at the end counts as missed
    /// (with `drain`, what is left after the bounded drain), so an overloaded pool cannot look good
    /// by leaving its queue unanswered.
    pub slo_miss_fraction: f64,
    /// GPU pool replica-seconds / 3600 (each GPU pod holds one GPU).
    pub gpu_hours: f64,
    /// Arrivals and events processed.
    pub events: u64,
    /// Per pool, GPU first.
    pub pools: Vec<PoolSummary>,
}

/// Per-pool results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolSummary {
    /// Which pool.
    pub pool: Pool,
    /// Name of its autoscaler.
    pub autoscaler: String,
    /// Requests routed to it.
    pub arrivals: u64,
    /// Answered.
    pub completed: u64,
    /// Refused with a full queue.
    pub rejected: u64,
    /// Dropped at a grace deadline.
    pub killed: u64,
    /// Still in the pool at the end.
    pub in_flight: u64,
    /// Completed slower than the SLO.
    pub over_slo: u64,
    /// Integral of pods holding node resources (starting, Ready, terminating).
    pub replica_seconds: f64,
    /// Integral of Ready pods.
    pub ready_replica_seconds: f64,
    /// `replica_seconds` / simulated seconds.
    pub mean_replicas: f64,
    /// Most pods at once.
    pub max_replicas: u32,
    /// spec.replicas at the end.
    pub final_replicas: u32,
    /// Changes of spec.replicas made by the autoscaler.
    pub scaling_actions: u64,
    /// Busy instance-seconds / Ready instance-seconds.
    pub utilization: f64,
    /// Seconds.
    pub mean_wait: Option<f64>,
    /// Requests that started service.
    pub waited: u64,
    /// Sum of their waits, seconds.
    pub wait_seconds: f64,
    /// Seconds.
    pub p95: Option<f64>,
}

/// One row of the time series, recorded at each scrape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Seconds.
    pub t: f64,
    /// Arrivals per second since the previous row.
    pub offered_rps: f64,
    /// Completions per second since the previous row.
    pub throughput_rps: f64,
    /// Rejections since the previous row.
    pub rejected: u64,
    /// Latency of requests completed in the last scrape interval, seconds.
    pub p50: Option<f64>,
    /// As `p50`.
    pub p95: Option<f64>,
    /// GPU Deployment spec.replicas.
    pub gpu_spec: u32,
    /// GPU pods Ready.
    pub gpu_ready: u32,
    /// CPU Deployment spec.replicas.
    pub cpu_spec: u32,
    /// CPU pods Ready.
    pub cpu_ready: u32,
    /// GPU pool busy fraction since the previous row.
    pub gpu_util: f64,
    /// CPU pool busy fraction since the previous row.
    pub cpu_util: f64,
    /// Requests waiting.
    pub queue: u64,
    /// Requests waiting or executing.
    pub in_flight: u64,
}

impl Summary {
    /// The pool's summary.
    pub fn pool(&self, p: Pool) -> &PoolSummary {
        &self.pools[pool_index(p)]
    }

    /// True when every arrival is accounted for exactly once.
    pub fn conserved(&self) -> bool {
        self.arrivals == self.completed + self.rejected + self.killed + self.in_flight
    }
}
