use kis_sim::{Dist, NodeAutoscaler, Pool, Simulation, Startup};

use crate::common::{Script, single_pool};

#[test]
fn gpu_pods_stay_pending_without_a_free_gpu() {
    // The paper's testbed: one node, one GPU, three GPU replicas -> 1 Running, 2 Pending.
    let mut cfg = single_pool(10.0, 300.0, Dist::constant(0.01), 1);
    cfg.pools.gpu.replicas = 3;
    let mut sim = Simulation::new(cfg).unwrap();
    sim.run_until(200.0);
    assert_eq!(sim.pod_phases(Pool::Gpu), [2, 0, 1, 0]);
    let s = sim.run();
    assert_eq!(s.pool(Pool::Gpu).max_replicas, 3);
    // Only the scheduled pod holds a GPU.
    assert!((s.pool(Pool::Gpu).replica_seconds - 300.0).abs() < 1e-6);
}

#[test]
fn startup_phases_delay_readiness_and_node_autoscaler_adds_capacity() {
    let mut cfg = single_pool(10.0, 400.0, Dist::constant(0.01), 1);
    cfg.pools.gpu.startup = Startup {
        image_pull: Dist::constant(20.0),
        model_load: Dist::constant(7.0),
        warmup: Dist::constant(3.0),
    };
    cfg.cluster.node_autoscaler = Some(NodeAutoscaler {
        max_nodes: 2,
        provision_delay: Dist::constant(60.0),
    });
    let mut sim = Simulation::new(cfg).unwrap();
    sim.set_autoscaler(
        Pool::Gpu,
        Box::new(Script {
            steps: vec![(10.0, 3)],
            period: 10.0,
        }),
    );
    // Decision at t = 10: one new pod fits nowhere (1 GPU), a node is ordered (ready at 70).
    sim.run_until(69.0);
    assert_eq!(sim.nodes(), 1);
    assert_eq!(sim.pod_phases(Pool::Gpu), [2, 0, 1, 0]);
    sim.run_until(71.0);
    assert_eq!(sim.nodes(), 2, "node joined at 70");
    assert_eq!(
        sim.pod_phases(Pool::Gpu),
        [1, 1, 1, 0],
        "one pod starting, one still pending"
    );
    sim.run_until(99.9);
    assert_eq!(sim.ready_replicas(Pool::Gpu), 1);
    sim.run_until(100.1);
    assert_eq!(
        sim.ready_replicas(Pool::Gpu),
        2,
        "Ready 30 s after scheduling"
    );
    // max_nodes = 2: the third pod stays Pending for good.
    let s = sim.run();
    assert_eq!(sim.nodes(), 2);
    assert_eq!(sim.pod_phases(Pool::Gpu), [1, 0, 2, 0]);
    assert!(s.conserved());
}

#[test]
fn scale_down_removes_newest_ready_pod_and_stops_routing_to_it() {
    let mut cfg = single_pool(50.0, 200.0, Dist::constant(0.01), 1);
    cfg.cluster.gpus_per_node = 4;
    cfg.pools.gpu.startup = Startup::instant();
    cfg.pools.gpu.replicas = 2;
    cfg.record_series = true;
    let mut sim = Simulation::new(cfg).unwrap();
    sim.set_autoscaler(
        Pool::Gpu,
        Box::new(Script {
            steps: vec![(50.0, 3), (100.0, 1)],
            period: 25.0,
        }),
    );
    sim.run_until(99.0);
    assert_eq!(sim.ready_replicas(Pool::Gpu), 3);
    sim.run_until(101.0);
    assert_eq!(sim.ready_replicas(Pool::Gpu), 1);
    let s = sim.run();
    assert!(s.conserved());
    assert_eq!(s.killed, 0);
    // Replica-seconds: 2 x 50 + 3 x 50 + 1 x 100 = 350 (instant start-up and idle pods leave at once).
    let rs = s.pool(Pool::Gpu).replica_seconds;
    assert!((rs - 350.0).abs() < 0.5, "{rs}");
    assert_eq!(s.pool(Pool::Gpu).scaling_actions, 2);
}
