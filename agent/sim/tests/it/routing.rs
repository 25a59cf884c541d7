use kis_sim::{Device, Dist, Pool, PoolConfig, Routing, ServiceProfile, Simulation};

use crate::common::{roomy, single_pool};

fn four_replicas(routing: Routing) -> kis_sim::Summary {
    // Highly variable service (cv 2): round robin keeps feeding a replica stuck on a long request.
    let mut cfg = roomy(
        single_pool(
            200.0,
            600.0,
            Dist::Lognormal {
                mean: 0.015,
                cv: 2.0,
            },
            1,
        ),
        4,
    );
    cfg.pools.gpu.replicas = 4;
    cfg.routing = routing;
    Simulation::new(cfg).unwrap().run()
}

#[test]
fn least_outstanding_waits_less_than_round_robin_under_variable_service() {
    let rr = four_replicas(Routing::RoundRobin);
    let lo = four_replicas(Routing::LeastOutstanding);
    let (w_rr, w_lo) = (rr.mean_wait.unwrap(), lo.mean_wait.unwrap());
    assert!(
        w_lo < 0.6 * w_rr,
        "least-outstanding {w_lo} vs round robin {w_rr}"
    );
    assert!(rr.conserved() && lo.conserved());
}

#[test]
fn round_robin_interleaves_pools_by_pod_count() {
    // 1 GPU pod and 3 CPU pods: a Service over both Deployments sends each pod a quarter.
    let mut cfg = roomy(single_pool(40.0, 600.0, Dist::constant(0.005), 1), 1);
    cfg.pools.cpu = PoolConfig::new(
        3,
        ServiceProfile::single(Device::Cpu, Dist::constant(0.005)),
    );
    let s = Simulation::new(cfg.clone()).unwrap().run();
    let share = s.pool(Pool::Gpu).arrivals as f64 / s.arrivals as f64;
    assert!((share - 0.25).abs() < 0.001, "GPU share {share}");
    // Placement preference: GPU pods weigh 2 -> 2 / (2 + 3).
    cfg.pools.gpu.weight = 2.0;
    let s = Simulation::new(cfg).unwrap().run();
    let share = s.pool(Pool::Gpu).arrivals as f64 / s.arrivals as f64;
    assert!((share - 0.4).abs() < 0.001, "GPU share {share}");
}
