//! Means with 95 % confidence intervals (Student t over seeds) and the objective `tune` minimises and
//! `compare` / `evaluate` report.

use serde::{Deserialize, Serialize};

/// Mean and 95 % half-width.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    /// Mean over seeds.
    pub mean: f64,
    /// Half-width of the 95 % confidence interval of the mean.
    pub ci95: f64,
}

/// Student t 0.975 quantile for `df` degrees of freedom.
pub fn t975(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::NAN,
        1..=10 => T[df - 1],
        11..=20 => 2.131 - (df as f64 - 15.0) * 0.006,
        21..=30 => 2.06,
        _ => 1.96,
    }
}

/// Mean and 95 % CI half-width of `xs` (NaN half-width for fewer than two values).
pub fn stat(xs: &[f64]) -> Stat {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return Stat {
            mean,
            ci95: f64::NAN,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Stat {
        mean,
        ci95: t975(n - 1) * (var / n as f64).sqrt(),
    }
}

/// `gpu_hours + penalty × max(0, slo_miss − target)`: lower is better. `penalty` is 100 × the
/// GPU-hours of the full pool over the run, so missing the target by one percentage point costs as
/// much as running every replica for the whole run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Objective {
    /// SLO-miss fraction above which the penalty starts.
    pub target: f64,
    /// GPU-hours per unit of miss fraction above the target.
    pub penalty: f64,
}

impl Objective {
    /// The objective for a pool of `max_replicas` GPUs over `seconds` of simulated time.
    pub fn for_pool(target: f64, max_replicas: u32, seconds: f64) -> Self {
        Objective {
            target,
            penalty: 100.0 * max_replicas as f64 * seconds / 3600.0,
        }
    }

    /// The value for one run (or for means).
    pub fn value(&self, slo_miss: f64, gpu_hours: f64) -> f64 {
        gpu_hours + self.penalty * (slo_miss - self.target).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_of_known_sample() {
        let s = stat(&[1.0, 2.0, 3.0]);
        assert!((s.mean - 2.0).abs() < 1e-12);
        // sd 1, n 3: 4.303 / sqrt(3).
        assert!((s.ci95 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(stat(&[5.0]).ci95.is_nan());
    }

    #[test]
    fn objective_penalises_only_above_target() {
        let o = Objective::for_pool(0.01, 16, 3600.0);
        assert_eq!(o.penalty, 1600.0);
        assert_eq!(o.value(0.005, 3.0), 3.0);
        assert!((o.value(0.02, 3.0) - 19.0).abs() < 1e-9);
    }
}
