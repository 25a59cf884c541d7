use kis_sim::{Dist, Pool, Simulation};

use crate::common::{Script, roomy, single_pool};

/// Scale 4 -> 1 -> 4 -> 1 under load with a queue limit, checking the books after every second.
fn churn(grace: f64, drain: bool) -> kis_sim::Summary {
    let mut cfg = roomy(
        single_pool(120.0, 120.0, Dist::Exponential { mean: 0.03 }, 1),
        8,
    );
    cfg.pools.gpu.replicas = 4;
    cfg.pools.gpu.queue_limit = Some(20);
    cfg.pools.gpu.grace_period = grace;
    cfg.drain = drain;
    let mut sim = Simulation::new(cfg).unwrap();
    sim.set_autoscaler(
        Pool::Gpu,
        Box::new(Script {
            steps: vec![(0.0, 4), (20.0, 1), (40.0, 4), (60.0, 1), (90.0, 3)],
            period: 5.0,
        }),
    );
    for t in 1..=120 {
        sim.run_until(t as f64);
        let s = sim.summary();
        assert!(s.conserved(), "t={t}: {s:?}");
    }
    let s = sim.run();
    assert!(s.conserved(), "{s:?}");
    assert!(s.pool(Pool::Gpu).scaling_actions >= 4);
    s
}

#[test]
fn every_arrival_is_accounted_for_across_scale_downs() {
    // Long grace: in-flight requests of removed pods finish, none is killed.
    let s = churn(30.0, false);
    assert_eq!(s.killed, 0);
    assert!(s.rejected > 0, "the queue limit should bite at 1 replica");
    assert!(s.completed > 5_000, "{s:?}");
    // Short grace: some requests are killed, and they are counted once.
    let s = churn(0.05, false);
    assert!(s.killed > 0, "{s:?}");
}

#[test]
fn drain_finishes_everything() {
    let s = churn(30.0, true);
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.arrivals, s.completed + s.rejected + s.killed);
}

#[test]
fn no_ready_endpoint_rejects() {
    let mut cfg = single_pool(10.0, 20.0, Dist::constant(0.01), 1);
    cfg.pools.gpu.replicas = 0;
    let s = Simulation::new(cfg).unwrap().run();
    assert!(s.arrivals > 100);
    assert_eq!(s.rejected_no_endpoint, s.arrivals);
    assert!(s.conserved());
}
