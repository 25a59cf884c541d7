//! Quick wall-clock check of the standard scenario: `cargo run --release -p kis-sim --example speed`.
fn main() {
    let cfg = kis_sim::bench::hour_at_1000_rps();
    let t = std::time::Instant::now();
    let s = kis_sim::Simulation::new(cfg).expect("valid").run();
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{} requests in {dt:.3} s: {:.2} M simulated req/s (p95 {:.4} s)",
        s.arrivals,
        s.arrivals as f64 / dt / 1e6,
        s.p95.unwrap_or(0.0)
    );
}
