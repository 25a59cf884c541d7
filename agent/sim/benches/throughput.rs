//! Simulated requests per wall-clock second: one simulated hour at 1,000 req/s (Poisson) over 20 GPU
//! replicas (exponential 10 ms service, 50 % busy), metrics scraped every 15 s.
//! Run: `cargo bench -p kis-sim --bench throughput` (target: >= 5 M simulated requests/s on one core).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kis_sim::bench::hour_at_1000_rps;
use kis_sim::{Routing, Simulation};

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_hour_1000rps_20replicas");
    g.sample_size(10);
    for routing in [Routing::RoundRobin, Routing::LeastOutstanding] {
        let mut cfg = hour_at_1000_rps();
        cfg.routing = routing;
        // Arrivals known up front (Poisson count varies slightly by seed; the seed is fixed).
        let n = Simulation::new(cfg.clone()).unwrap().run().arrivals;
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{routing:?}"), |b| {
            b.iter(|| black_box(Simulation::new(cfg.clone()).unwrap().run()))
        });
    }
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
