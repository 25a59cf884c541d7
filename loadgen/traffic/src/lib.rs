//! # kis-traffic
//!
//! Traffic shapes and seeded arrival schedules, defined once and shared by the load generator
//! (`kis-loadgen`) and the simulator (`kis-sim`). Pure: no async runtime, no network; the only
//! IO is reading trace files.
//!
//! - [`ShapeSpec`]: a shape with its parameters (serde configuration): constant, ramp,
//!   periodic, random, spike, or replay of a `t_seconds,rate_rps` [trace](trace) file. Defaults
//!   are the original KIS-S five-minute experiments, read as requests per second.
//! - [`Profile`]: the built rate r(t), with its integral and the integral's inverse.
//! - [`Arrivals`]: intended send times, evenly spaced or Poisson, from a seed.
//!
//! ```
//! use kis_traffic::{ArrivalKind, Pattern, ShapeSpec};
//!
//! let profile = ShapeSpec::default_for(Pattern::Spike).build(42).unwrap();
//! assert_eq!(profile.rate(100.0), 100.0); // 30 %..70 % of 300 s at the peak
//! let sends: Vec<f64> = profile.arrivals(ArrivalKind::Poisson, 42).collect();
//! assert!(sends.windows(2).all(|w| w[0] <= w[1]));
//! assert!((sends.len() as f64 - profile.total()).abs() < 4.0 * profile.total().sqrt());
//! ```
//!
//! ## From the original user counts to requests per second
//! The original experiments drove closed-loop Locust users with `between(1, 2)` think time, 5
//! of every 8 tasks an inference. N users offered about N / (1.5 s + response time) requests per
//! second, 5/8 of them inferences: 100 users at a fast server is roughly 67 req/s, 42 of them
//! inferences. Here the shape's value *is* the offered rate, whatever the server's latency.

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

mod arrivals;
mod error;
mod profile;
mod shape;
pub mod trace;

use std::path::PathBuf;

pub use arrivals::{ArrivalKind, Arrivals};
pub use error::{Error, Result};
pub use profile::Profile;
pub use shape::{Pattern, ShapeSpec};

/// The `shared/` folder beside the repository root, where `traces/` lives. The environment
/// variable `KIS_SHARED_DIR` overrides; otherwise the first ancestor of the current directory or
/// of this crate's source holding `shared/traces` wins.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KIS_SHARED_DIR") {
        return Some(PathBuf::from(dir));
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .map(|a| a.join("shared"))
            .find(|s| s.join("traces").is_dir())
    })
}
