//! The engine against closed forms. Each run is cut into batches (batch means) so the test also checks
//! that its own 95 % confidence interval is at most half the 2 % it asserts (2 % > 4 standard errors),
//! so the assertion neither passes by luck nor fails by noise.

use kis_sim::queueing::{md1_wait, mm1_wait, mmc_wait};
use kis_sim::{Dist, Pool, SimConfig, Simulation};

use crate::common::single_pool;

/// Mean wait and the 95 % half-width from `batches` batch means.
fn batch_mean_wait(cfg: SimConfig, batches: usize) -> (f64, f64) {
    let mut sim = Simulation::new(cfg).unwrap();
    let end = sim.end();
    // Skip the first batch as warm-up (the queue starts empty).
    let step = end / (batches + 1) as f64;
    sim.run_until(step);
    let mut prev = sim.summary();
    let mut means = Vec::new();
    for k in 2..=batches + 1 {
        sim.run_until(step * k as f64);
        let s = sim.summary();
        let (a, b) = (prev.pool(Pool::Gpu), s.pool(Pool::Gpu));
        means.push((b.wait_seconds - a.wait_seconds) / (b.waited - a.waited) as f64);
        prev = s;
    }
    let n = means.len() as f64;
    let mean = means.iter().sum::<f64>() / n;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // t quantile for 19 degrees of freedom.
    (mean, 2.093 * (var / n).sqrt())
}

fn check(name: &str, cfg: SimConfig, theory: f64) {
    let (mean, half) = batch_mean_wait(cfg, 20);
    let err = (mean / theory - 1.0).abs();
    eprintln!(
        "{name}: simulated {mean:.6} s ± {half:.6} (95 %), theory {theory:.6} s, error {:.3} %",
        err * 100.0
    );
    assert!(
        // Half-width < 1 % means the 2 % tolerance is more than four standard errors away.
        half / theory < 0.01,
        "{name}: run too short, the 95 % CI (±{:.2} %) is not well inside 2 %",
        half / theory * 100.0
    );
    assert!(
        err < 0.02,
        "{name}: {mean} vs {theory} ({:.2} % off)",
        err * 100.0
    );
}

#[test]
fn mm1_mean_wait_matches_closed_form() {
    // rho = 0.5, 10 ms mean service: W_q = rho / (mu - lambda) = 10 ms.
    let (lambda, s) = (50.0, 0.01);
    let cfg = single_pool(lambda, 60_000.0, Dist::Exponential { mean: s }, 1);
    check("M/M/1", cfg, mm1_wait(lambda, 1.0 / s));
}

#[test]
fn mmc_mean_wait_matches_erlang_c() {
    // c = 3 instances sharing one queue, rho = 0.75 (Erlang C ≈ 0.57, so waits are rarely zero).
    let (lambda, s) = (225.0, 0.01);
    let cfg = single_pool(lambda, 40_000.0, Dist::Exponential { mean: s }, 3);
    check("M/M/3", cfg, mmc_wait(3, lambda, 1.0 / s));
}

#[test]
fn md1_mean_wait_matches_pollaczek_khinchine() {
    let (lambda, s) = (50.0, 0.01);
    let cfg = single_pool(lambda, 40_000.0, Dist::constant(s), 1);
    check("M/D/1", cfg, md1_wait(lambda, s));
}
