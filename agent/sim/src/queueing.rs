//! Closed forms of classic queues (M/M/1, M/M/c via Erlang C, M/D/1 via Pollaczek–Khinchine), used by
//! the perfect-foresight oracle to size pools and by the tests that check the engine against theory.

/// Erlang C: probability that an arrival waits in an M/M/c queue with offered load `a = λ/μ` Erlangs.
/// Returns 1 when the queue is unstable (`a >= c`).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || a >= c as f64 {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    // Erlang B by its stable recurrence, then C from B.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c as f64;
    b / (1.0 - rho * (1.0 - b))
}

/// Mean wait in queue (excluding service) of M/M/c with arrival rate `lambda` and service rate `mu`.
pub fn mmc_wait(c: u32, lambda: f64, mu: f64) -> f64 {
    let a = lambda / mu;
    if a >= c as f64 {
        return f64::INFINITY;
    }
    erlang_c(c, a) / (c as f64 * mu - lambda)
}

/// Mean wait in queue of M/M/1.
pub fn mm1_wait(lambda: f64, mu: f64) -> f64 {
    let rho = lambda / mu;
    if rho >= 1.0 {
        return f64::INFINITY;
    }
    rho / (mu - lambda)
}

/// Mean wait in queue of M/D/1 with deterministic service time `s` (Pollaczek–Khinchine).
pub fn md1_wait(lambda: f64, s: f64) -> f64 {
    let rho = lambda * s;
    if rho >= 1.0 {
        return f64::INFINITY;
    }
    rho * s / (2.0 * (1.0 - rho))
}

/// P(wait > t) in M/M/c.
pub fn mmc_wait_tail(c: u32, lambda: f64, mu: f64, t: f64) -> f64 {
    let a = lambda / mu;
    if a >= c as f64 {
        return 1.0;
    }
    erlang_c(c, a) * (-(c as f64 * mu - lambda) * t.max(0.0)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_known_values() {
        // One server: C = rho.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        // Textbook value: c = 2, a = 1 -> C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(3, 3.0), 1.0);
        // M/M/1 via M/M/c agrees with the M/M/1 formula.
        assert!((mmc_wait(1, 0.8, 1.0) - mm1_wait(0.8, 1.0)).abs() < 1e-12);
        // M/D/1 waits half as long as M/M/1 at the same load.
        assert!((md1_wait(0.8, 1.0) * 2.0 - mm1_wait(0.8, 1.0)).abs() < 1e-12);
    }
}
