//! Discrete-event simulator of GPU/CPU inference replicas on Kubernetes (KISim, rebuilt as a real
//! queueing simulation).
//!
//! # Brief overview
//! - [`SimConfig`] describes a run: a kis-traffic workload, the GPU and CPU Deployments
//!   ([`PoolConfig`]: measured [`ServiceProfile`], model instances, dynamic batching, queue limit, pod
//!   start-up, grace period), cluster capacity, metric scraping and one autoscaler per pool.
//! - [`Simulation`] runs it on a virtual clock: a Service routes each arrival to a Ready pod, pods batch
//!   and serve requests, pods move Pending → starting → Ready → terminating, Prometheus-like scrapes
//!   feed each pool's [`Autoscaler`] (kis-autoscale, or the [`Oracle`] here) at its own period.
//! - [`Summary`] holds the results; [`env::SimEnv`] / [`vec_env::VecEnv`] expose the simulator as an RL
//!   environment.
//!
//! Pure library: no IO except reading trace files ([`split`], [`randomize`]), no threads except in
//! [`vec_env::VecEnv`]'s worker pool, no async. Same config and seed, same run.
//!
//! ```
//! use kis_sim::{Dist, Device, PoolConfig, Pools, ServiceProfile, SimConfig, Simulation, Workload};
//! use kis_traffic::{ArrivalKind, ShapeSpec};
//!
//! let gpu = ServiceProfile::single(Device::Gpu, Dist::Exponential { mean: 0.01 });
//! let cpu = ServiceProfile::single(Device::Cpu, Dist::Exponential { mean: 0.05 });
//! let cfg = SimConfig::new(
//!     Workload::new(ShapeSpec::Constant { rate: 50.0, duration: 60.0 }, ArrivalKind::Poisson),
//!     Pools { gpu: PoolConfig::new(1, gpu), cpu: PoolConfig::new(0, cpu) },
//! );
//! let summary = Simulation::new(cfg).unwrap().run();
//! assert!(summary.conserved());
//! assert!(summary.arrivals > 2_000);
//! ```

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

pub mod bench;
pub mod config;
pub mod dist;
pub mod env;
mod error;
pub mod histogram;
pub mod profile;
pub mod profiles;
mod queue;
pub mod queueing;
pub mod randomize;
pub mod report;
pub mod scaler;
pub mod sim;
pub mod split;
pub mod vec_env;

pub use config::{
    ClusterConfig, MetricsConfig, NodeAutoscaler, PoolConfig, Pools, Routing, SimConfig, Startup,
    Workload,
};
pub use dist::Dist;
pub use error::{Error, Result};
pub use histogram::Histogram;
pub use profile::{BatchPoint, Device, PROFILE_SCHEMA, RatePoint, ServiceProfile};
pub use report::{PoolSummary, SeriesRow, Summary};
pub use scaler::{Autoscaler, Oracle, OracleConfig, Pool, PoolView, ScalerSpec};
pub use sim::{POOLS, Phase, ScrapedTotals, Simulation, Totals, pool_index};

/// A run with seed `s` draws its arrivals from kis-traffic with seed `s ^ ARRIVAL_STREAM`, so the
/// workload's stream is independent of the other random draws (service times, start-up delays).
/// `kis-agent fidelity` relies on it to replay a real kis-loadgen run's arrival times.
pub const ARRIVAL_STREAM: u64 = 0x5eed_a771_7a15;
