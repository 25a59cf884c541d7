//! Wall-clock cost of the kis-traffic arrival schedule alone (for the bench breakdown).
fn main() {
    let cfg = kis_sim::bench::hour_at_1000_rps();
    let p = cfg.workload.shape.build(7).expect("valid");
    let t = std::time::Instant::now();
    let mut n = 0u64;
    let mut last = 0.0;
    for a in p.arrivals(kis_traffic::ArrivalKind::Poisson, 7) {
        n += 1;
        last = a;
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{n} arrivals (last {last:.1}) in {dt:.3} s: {:.1} ns each",
        dt * 1e9 / n as f64
    );
}
