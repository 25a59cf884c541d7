//! Measures how fast schedules are generated: `cargo run --release -p kis-traffic --example
//! arrival_rate`. The simulator draws every arrival from here, so this bounds its speed.

use std::time::Instant;

use kis_traffic::{ArrivalKind, Pattern, ShapeSpec};

fn main() {
    for pattern in [
        Pattern::Constant,
        Pattern::Ramp,
        Pattern::Periodic,
        Pattern::Spike,
    ] {
        // One hour at about 1,000 req/s: 3.6 million arrivals.
        let profile = ShapeSpec::default_for(pattern)
            .with_duration(3600.0)
            .build(1)
            .unwrap();
        let profile = profile.scaled(1000.0 / profile.mean_rate());
        for kind in [ArrivalKind::Uniform, ArrivalKind::Poisson] {
            let start = Instant::now();
            let (mut n, mut last) = (0u64, 0.0);
            for t in profile.arrivals(kind, 7) {
                n += 1;
                last = t;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{pattern:>9} {kind:>8}: {n} arrivals in {secs:.3} s = {:.1} M/s (last at {last:.1} s)",
                n as f64 / secs / 1e6
            );
        }
    }
}
