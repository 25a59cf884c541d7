//! Simulated requests per second: one simulated hour at 1,000 req/s (Poisson) over 20 GPU replicas
//! (exponential 10 ms service, 50 % busy), metrics scraped every 15 s; 3.6 million requests per run.
//! Run: `cargo bench -p kis-sim --bench throughput` (target: >= 5 M simulated requests/s on one core).
//!
//! Two groups: `wall` (criterion's wall clock) and `cpu` (on-CPU time of the benchmarking thread, from
//! `/proc/thread-self/schedstat`). On a shared machine the CPU-time group is the one-core speed; the
//! wall-clock group also counts time spent waiting for a core.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kis_sim::bench::hour_at_1000_rps;
use kis_sim::{Routing, Simulation};

/// On-CPU nanoseconds of the calling thread (0 where schedstat is unavailable).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

/// Criterion measurement of the thread's CPU time, in nanoseconds (formatted like wall time).
struct ThreadCpu {
    wall: WallTime,
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn run_group<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    for routing in [Routing::RoundRobin, Routing::LeastOutstanding] {
        let mut cfg = hour_at_1000_rps();
        cfg.routing = routing;
        // The Poisson count depends on the (fixed) seed only.
        let n = Simulation::new(cfg.clone()).unwrap().run().arrivals;
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{routing:?}"), |b| {
            b.iter(|| black_box(Simulation::new(cfg.clone()).unwrap().run()))
        });
    }
    g.finish();
}

fn wall(c: &mut Criterion) {
    run_group(c, "hour_1000rps_20replicas_wall");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    run_group(c, "hour_1000rps_20replicas_cpu");
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpu { wall: WallTime });
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
