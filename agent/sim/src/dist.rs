//! Random durations (service times, start-up phases, network overhead) as serde-configurable distributions.
//!
//! Sampling takes a uniform draw from the simulation's single seeded RNG, so a run is reproducible.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A distribution of non-negative durations in seconds.
///
/// JSON: `{"dist":"constant","value":0.01}`, `{"dist":"exponential","mean":0.01}`,
/// `{"dist":"uniform","min":1,"max":3}`, `{"dist":"lognormal","mean":0.01,"cv":0.2}`,
/// `{"dist":"empirical","samples":[0.010,0.011,0.013]}` (inverse CDF, linear between sorted samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dist {
    /// Always `value`.
    Constant {
        /// Seconds.
        value: f64,
    },
    /// Exponential with the given mean.
    Exponential {
        /// Seconds.
        mean: f64,
    },
    /// Uniform on `[min, max]`.
    Uniform {
        /// Seconds.
        min: f64,
        /// Seconds.
        max: f64,
    },
    /// Log-normal with the given mean and coefficient of variation (sd / mean).
    Lognormal {
        /// Seconds.
        mean: f64,
        /// Coefficient of variation, >= 0.
        cv: f64,
    },
    /// Measured samples, drawn by linear interpolation of the empirical inverse CDF.
    Empirical {
        /// Seconds; sorted on validation.
        samples: Vec<f64>,
    },
}

impl Dist {
    /// A constant duration.
    pub fn constant(value: f64) -> Self {
        Dist::Constant { value }
    }

    /// Checks the parameters; `field` names this distribution in errors.
    pub fn validate(&self, field: &str) -> Result<()> {
        let nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    format!("{field}.{name}"),
                    format!("must be finite and >= 0, got {v}"),
                ))
            }
        };
        match self {
            Dist::Constant { value } => nonneg("value", *value),
            Dist::Exponential { mean } => nonneg("mean", *mean),
            Dist::Uniform { min, max } => {
                nonneg("min", *min)?;
                nonneg("max", *max)?;
                if max < min {
                    return Err(Error::invalid(
                        format!("{field}.max"),
                        format!("must be >= min ({min}), got {max}"),
                    ));
                }
                Ok(())
            }
            Dist::Lognormal { mean, cv } => {
                nonneg("mean", *mean)?;
                nonneg("cv", *cv)
            }
            Dist::Empirical { samples } => {
                if samples.is_empty() {
                    return Err(Error::invalid(
                        format!("{field}.samples"),
                        "must hold at least one sample",
                    ));
                }
                for (i, s) in samples.iter().enumerate() {
                    nonneg(&format!("samples[{i}]"), *s)?;
                }
                Ok(())
            }
        }
    }

    /// The distribution's mean in seconds.
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Constant { value } => *value,
            Dist::Exponential { mean } | Dist::Lognormal { mean, .. } => *mean,
            Dist::Uniform { min, max } => 0.5 * (min + max),
            Dist::Empirical { samples } => {
                // Mean of the piecewise-linear inverse CDF: trapezoids between consecutive sorted samples.
                let mut s = samples.clone();
                s.sort_by(f64::total_cmp);
                if s.len() == 1 {
                    return s[0];
                }
                let n = (s.len() - 1) as f64;
                s.windows(2).map(|w| 0.5 * (w[0] + w[1])).sum::<f64>() / n
            }
        }
    }

    /// Squared coefficient of variation (variance / mean²); 0 for a zero mean.
    pub fn scv(&self) -> f64 {
        let m = self.mean();
        if m <= 0.0 {
            return 0.0;
        }
        let var = match self {
            Dist::Constant { .. } => 0.0,
            Dist::Exponential { mean } => mean * mean,
            Dist::Uniform { min, max } => (max - min).powi(2) / 12.0,
            Dist::Lognormal { mean, cv } => (mean * cv).powi(2),
            Dist::Empirical { samples } => {
                // Of the samples themselves: close to the interpolated distribution's for many samples.
                let n = samples.len() as f64;
                let mu = samples.iter().sum::<f64>() / n;
                samples.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / n
            }
        };
        var / (m * m)
    }

    /// Prepares a fast sampler (precomputed log-normal parameters, sorted samples).
    pub fn sampler(&self) -> Sampler {
        match self {
            Dist::Constant { value } => Sampler::Constant(*value),
            Dist::Exponential { mean } => Sampler::Exponential(*mean),
            Dist::Uniform { min, max } => Sampler::Uniform(*min, max - min),
            Dist::Lognormal { mean, cv } => {
                if *cv == 0.0 || *mean == 0.0 {
                    Sampler::Constant(*mean)
                } else {
                    let s2 = (1.0 + cv * cv).ln();
                    Sampler::Lognormal {
                        mu: mean.ln() - 0.5 * s2,
                        sigma: s2.sqrt(),
                    }
                }
            }
            Dist::Empirical { samples } => {
                let mut s = samples.clone();
                s.sort_by(f64::total_cmp);
                if s.len() == 1 {
                    Sampler::Constant(s[0])
                } else {
                    Sampler::Empirical(s.into_boxed_slice())
                }
            }
        }
    }
}

/// A ready-to-draw form of [`Dist`].
#[derive(Clone, Debug)]
pub enum Sampler {
    /// Always this value.
    Constant(f64),
    /// Mean.
    Exponential(f64),
    /// Minimum and width.
    Uniform(f64, f64),
    /// Parameters of the underlying normal.
    Lognormal {
        /// Mean of ln X.
        mu: f64,
        /// Standard deviation of ln X.
        sigma: f64,
    },
    /// Sorted samples (at least two).
    Empirical(Box<[f64]>),
}

/// A uniform draw in [0, 1) with 53 random bits.
#[inline]
pub fn unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal draw (Box–Muller; one of the pair is discarded to keep the sampler stateless).
#[inline]
fn std_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - unit(rng); // (0, 1]: ln is finite
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Sampler {
    /// One draw in seconds.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Sampler::Constant(v) => *v,
            Sampler::Exponential(m) => -m * (1.0 - unit(rng)).ln(),
            Sampler::Uniform(lo, w) => lo + w * unit(rng),
            Sampler::Lognormal { mu, sigma } => (mu + sigma * std_normal(rng)).exp(),
            Sampler::Empirical(s) => {
                let x = unit(rng) * (s.len() - 1) as f64;
                let i = x as usize;
                let f = x - i as f64;
                s[i] + f * (s[i + 1] - s[i])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_of(d: &Dist, n: usize) -> f64 {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let s = d.sampler();
        (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64
    }

    #[test]
    fn sample_means_match_declared_means() {
        for d in [
            Dist::Exponential { mean: 0.02 },
            Dist::Uniform { min: 1.0, max: 3.0 },
            Dist::Lognormal {
                mean: 0.05,
                cv: 0.5,
            },
            Dist::Empirical {
                samples: vec![0.3, 0.1, 0.2, 0.6],
            },
        ] {
            let m = mean_of(&d, 400_000);
            assert!(
                (m / d.mean() - 1.0).abs() < 0.01,
                "{d:?}: sample mean {m}, declared {}",
                d.mean()
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        let e = Dist::Uniform { min: 2.0, max: 1.0 }
            .validate("pools.gpu.startup.image_pull")
            .unwrap_err();
        assert!(
            e.to_string().contains("pools.gpu.startup.image_pull.max"),
            "{e}"
        );
        let e = Dist::Exponential { mean: -1.0 }.validate("x").unwrap_err();
        assert!(e.to_string().contains("x.mean"), "{e}");
    }
}
