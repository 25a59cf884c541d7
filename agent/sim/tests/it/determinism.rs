use kis_sim::{Dist, Simulation};
use kis_traffic::ShapeSpec;

use crate::common::single_pool;

fn run(seed: u64) -> (kis_sim::Summary, Vec<kis_sim::SeriesRow>) {
    let mut cfg = single_pool(
        0.0,
        0.0,
        Dist::Lognormal {
            mean: 0.02,
            cv: 0.5,
        },
        2,
    );
    cfg.workload.shape = ShapeSpec::Random {
        min: 10.0,
        max: 100.0,
        interval: 30.0,
        duration: 300.0,
    };
    cfg.pools.cpu.replicas = 2;
    cfg.record_series = true;
    cfg.seed = seed;
    let mut sim = Simulation::new(cfg).unwrap();
    let s = sim.run();
    (s, sim.series().to_vec())
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let a = run(42);
    let b = run(42);
    assert_eq!(a, b);
    let c = run(43);
    assert_ne!(a.0.arrivals, c.0.arrivals);
    assert_ne!(a.0.p95, c.0.p95);
    assert_eq!(a.1.len(), 20, "one row per 15 s scrape in [0, 300)");
}
