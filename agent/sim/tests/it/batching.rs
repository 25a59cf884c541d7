use kis_sim::{BatchPoint, Dist, Pool, Simulation};

use crate::common::single_pool;

fn batched(rate: f64, max_batch: u32, delay: f64) -> kis_sim::Summary {
    let mut cfg = single_pool(rate, 600.0, Dist::constant(0.010), 1);
    // 10 ms for one request, 20 ms for a batch of 8: batching trades a little latency for throughput.
    cfg.pools.gpu.profile.batches = vec![
        BatchPoint {
            size: 1,
            latency: Dist::constant(0.010),
        },
        BatchPoint {
            size: 8,
            latency: Dist::constant(0.020),
        },
    ];
    cfg.pools.gpu.max_batch = max_batch;
    cfg.pools.gpu.max_queue_delay = delay;
    Simulation::new(cfg).unwrap().run()
}

#[test]
fn lone_requests_wait_for_the_queue_delay() {
    // At 5 req/s a request almost never has company within 5 ms: it waits the full delay.
    let s = batched(5.0, 8, 0.005);
    let w = s.mean_wait.unwrap();
    assert!((0.0047..=0.0050).contains(&w), "mean wait {w}");
    // Without a delay it is dispatched at once.
    let s = batched(5.0, 8, 0.0);
    assert!(s.mean_wait.unwrap() < 0.0005, "{:?}", s.mean_wait);
}

#[test]
fn batching_raises_capacity() {
    // 250 req/s is 2.5x what one instance serves one at a time (100/s), and within batch-8 capacity (400/s).
    let unbatched = batched(250.0, 1, 0.0);
    let with = batched(250.0, 8, 0.002);
    assert!(
        unbatched.in_flight > 50_000,
        "overloaded queue grows: {}",
        unbatched.in_flight
    );
    assert!(with.in_flight < 50, "{}", with.in_flight);
    assert!(with.p99.unwrap() < 0.1, "{:?}", with.p99);
    assert_eq!(with.pool(Pool::Gpu).rejected, 0);
}

#[test]
fn full_batches_go_without_waiting_for_the_delay() {
    // A long delay never holds back a full batch: with a queue of 8 waiting, dispatch is immediate.
    let s = batched(2000.0, 8, 1.0);
    // Capacity is 400/s, so the queue is always full: waits come from queueing, and batches are full.
    assert!(s.completed >= 400 * 600 - 8, "{}", s.completed);
    assert!((s.pool(Pool::Gpu).utilization - 1.0).abs() < 1e-6);
}
