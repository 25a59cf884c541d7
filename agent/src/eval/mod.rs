//! One evaluation harness for `compare`, `tune` and `evaluate`, so the three commands agree on what a
//! workload, a set-up, a run and a score are:
//! - [`workload`]: the scenarios (synthetic shapes, held-out traces, the validation window) and the
//!   held-out check that keeps tuning and training away from evaluation data;
//! - [`setup`]: what runs on the GPU pool (rules, the forecaster, the oracle, the KARB treatments, or
//!   a [`policy::Policy`]) and [`setup::run_one`], one simulated run;
//! - [`policy`]: the policy interface and its adapter onto the RL environment;
//! - [`runner`]: one parallel map with one progress bar;
//! - [`results`]: running set-ups over scenarios and seeds, rows of means with confidence intervals;
//! - [`stats`]: means with 95 % confidence intervals and the tuning objective;
//! - [`pareto`]: the cost-vs-SLO-miss front, verdicts and its plot;
//! - [`tuned`]: the tuned-specs file `tune` writes and the set-ups it becomes.

pub mod pareto;
pub mod policy;
pub mod results;
pub mod runner;
pub mod setup;
pub mod stats;
pub mod tuned;
pub mod workload;
