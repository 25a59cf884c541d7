//! The rate-dependent per-request overhead (`network_by_rate`): the replica's rate estimate picks the
//! overhead measured at that rate, runs stay deterministic, and profiles without it are unchanged.

use kis_sim::{Dist, RatePoint, Simulation, Summary};

use crate::common::single_pool;

/// One replica, 0.1 ms constant service (queueing negligible), Poisson at `rate` for `secs`.
fn run(rate: f64, secs: f64, by_rate: bool, seed: u64) -> Summary {
    let mut cfg = single_pool(rate, secs, Dist::constant(0.0001), 1);
    let p = &mut cfg.pools.gpu.profile;
    p.network = Some(Dist::constant(0.005));
    if by_rate {
        p.network_by_rate = vec![
            RatePoint {
                rate_rps: 20.0,
                dist: Dist::constant(0.003),
            },
            RatePoint {
                rate_rps: 150.0,
                dist: Dist::Lognormal {
                    mean: 0.001,
                    cv: 0.3,
                },
            },
        ];
    }
    cfg.seed = seed;
    Simulation::new(cfg).unwrap().run()
}

#[test]
fn overhead_follows_the_replica_rate() {
    // At each measured rate the mean latency is service + that rate's overhead, up to the estimate's
    // noise: it fluctuates around the rate with sd sqrt(rate / (2 window)), and at an end point only
    // the inward half of that noise moves the overhead (by slope * sd / sqrt(2 pi) on average).
    let slope = (0.003 - 0.001) / 130.0;
    let inward = |rate: f64| slope * (rate / 2.0).sqrt() / (2.0 * std::f64::consts::PI).sqrt();
    let lo = run(20.0, 600.0, true, 1).mean_latency.unwrap();
    let want = 0.0031 - inward(20.0);
    assert!(
        (lo / want - 1.0).abs() < 0.01,
        "20 req/s: {lo}, want {want}"
    );
    let hi = run(150.0, 300.0, true, 1).mean_latency.unwrap();
    let want = 0.0011 + inward(150.0);
    assert!(
        (hi / want - 1.0).abs() < 0.01,
        "150 req/s: {hi}, want {want}"
    );
    // Half way in rate, half way in overhead (linear in between, no clamp to bias it).
    let mid = run(85.0, 300.0, true, 1).mean_latency.unwrap();
    assert!((mid / 0.0021 - 1.0).abs() < 0.03, "85 req/s: {mid}");
    // Without the table the constant `network` applies at every rate.
    let flat = run(150.0, 60.0, false, 1).mean_latency.unwrap();
    // (Plus a wait of about 0.7 us: 1.5 % busy.)
    assert!((flat / 0.0051 - 1.0).abs() < 1e-3, "fallback: {flat}");
}

#[test]
fn rate_dependent_runs_are_deterministic() {
    let a = run(60.0, 120.0, true, 7);
    assert_eq!(a, run(60.0, 120.0, true, 7));
    assert_ne!(a.mean_latency, run(60.0, 120.0, true, 8).mean_latency);
    assert!(a.conserved());
}
