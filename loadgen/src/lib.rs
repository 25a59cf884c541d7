//! kis-loadgen: an open-loop, coordinated-omission-correct load generator for KServe-v2 (Triton)
//! and plain HTTP targets.
//!
//! # Overview
//! - [`cli::Cli`] holds the raw flags; [`config::Config`] is the checked configuration
//!   (`Config::try_from(cli)`), which every report embeds.
//! - Traffic shapes and the intended send times come from `kis-traffic` (defined once, shared
//!   with the simulator). [`engine`] runs generator threads, each a single-threaded runtime
//!   whose `timerfd`-driven dispatcher ([`timer`]) hands due arrivals to its own connections;
//!   closed-loop `--users` are connection tasks with think timers. [`http`] is a minimal
//!   HTTP/1.1 client (request serialised once, responses parsed by [`h1`]).
//! - [`record`] keeps HDR histograms of corrected latency (end − intended start), service time
//!   (end − actual send) and send lag per generator thread, handed over once a second; no
//!   sample is ever stored.
//! - [`schedule`] is one thread's lazy slice of the arrival schedule (backlogs counted in closed
//!   form). [`report`] writes the JSON report (checked against `report/schema.json`), Locust
//!   CSVs and the plot, from a [`report::Collected`] ([`report::finish`]); [`diag`] says which
//!   side limits; [`metrics`] serves Prometheus `/metrics`.
//! - [`shard`] splits the schedule and the users exactly over N processes (`--shard K/N`);
//!   [`merge`] adds the shards' histograms and counts into one run's outputs.
//!
//! # Example
//! Typed (a shape value from kis-traffic, no flags):
//! ```no_run
//! use kis_loadgen::config::Target;
//! use kis_traffic::{ArrivalKind, ShapeSpec};
//! let shape = ShapeSpec::Constant { rate: 50.0, duration: 10.0 };
//! let cfg = kis_loadgen::Config::open_loop(Target::kserve("http://127.0.0.1:8000", "identity")?,
//!     shape, ArrivalKind::Poisson).with_seed(7).quiet();
//! let report = kis_loadgen::run(cfg)?;
//! println!("{:.1} % on time", 100.0 * report.rates.on_time_ratio);
//! # Ok::<(), kis_loadgen::Error>(())
//! ```
//! From flags, as the binary does:
//! ```no_run
//! use clap::Parser;
//! let cli = kis_loadgen::cli::Cli::parse_from(["kis-loadgen", "--pattern", "constant", "--rate", "50",
//!     "--duration", "10s", "--url", "http://127.0.0.1:8080/", "--method", "GET", "--quiet"]);
//! let report = kis_loadgen::run(cli.try_into()?)?;
//! println!("p99 {:.2} ms", report.latency.corrected.p99_ms);
//! # Ok::<(), kis_loadgen::Error>(())
//! ```

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

pub mod cli;
pub mod config;
pub mod diag;
pub mod engine;
pub mod error;
pub mod h1;
pub mod http;
pub mod kserve;
pub mod merge;
pub mod metrics;
pub mod record;
pub mod report;
mod run;
pub mod schedule;
pub mod send;
pub mod shard;
pub mod timer;

pub use config::Config;
pub use error::{Error, Result};
pub use report::Report;
pub use run::run;
