//! Dispatch lag of the open-loop dispatcher alone (real timerfd, stand-in connections that send
//! nothing): `cargo run --release -p kis-loadgen --example lag_probe -- RATE SECONDS [busy]`
//! (`busy`: as with `--busy-poll`). Compare with the send lag of a real run to tell the
//! dispatcher's share from the network path's.

use std::time::Duration;

use kis_loadgen::config::Overflow;
use kis_loadgen::engine::{Plan, dispatch_probe};
use kis_traffic::{ArrivalKind, ShapeSpec};

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000.0);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let busy = args.next().is_some_and(|a| a == "busy");
    let profile = ShapeSpec::Constant {
        rate,
        duration: secs,
    }
    .build(1)
    .expect("a constant shape");
    let mut plan = Plan::probe(
        profile,
        ArrivalKind::Uniform,
        1,
        64,
        Overflow::Queue,
        Duration::from_millis(50),
    );
    plan.busy_poll = busy;
    let seen = dispatch_probe(&plan).expect("dispatcher runs");
    let mut lag: Vec<Duration> = seen.iter().map(|(t, at)| *at - *t).collect();
    lag.sort();
    let q = |p: f64| lag[((lag.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "{} arrivals at {rate}/s: dispatch lag ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
        lag.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}
