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
/// `{"dist":"empirical","samples":[0.010,0.011,0.013]}` (inverse CDF, linear between sorted samples),
/// `{"dist":"quantiles","probs":[0,0.5,0.95,1],"values":[0.004,0.005,0.009,0.02]}` (a quantile table:
/// inverse CDF, linear between the given points; for measured tails, where only a few quantiles are known).
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
    /// A quantile table: `values[i]` is the `probs[i]` quantile; drawn by linear interpolation of the
    /// inverse CDF between the points. `probs` runs from 0 to 1, strictly increasing; `values` do not
    /// decrease.
    Quantiles {
        /// Cumulative probabilities, from exactly 0 to exactly 1.
        probs: Vec<f64>,
        /// Seconds, one per probability.
        values: Vec<f64>,
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
            Dist::Quantiles { probs, values } => {
                if probs.len() < 2 {
                    return Err(Error::invalid(
                        format!("{field}.probs"),
                        format!("needs at least two points (0 and 1), got {}", probs.len()),
                    ));
                }
                if values.len() != probs.len() {
                    return Err(Error::invalid(
                        format!("{field}.values"),
                        format!(
                            "needs one value per probability ({}), got {}",
                            probs.len(),
                            values.len()
                        ),
                    ));
                }
                let last = probs.len() - 1;
                for (i, &p) in probs.iter().enumerate() {
                    let want = if i == 0 {
                        p == 0.0
                    } else if i == last {
                        p == 1.0 && probs[i - 1] < 1.0
                    } else {
                        p > probs[i - 1] && p < 1.0
                    };
                    if !want {
                        return Err(Error::invalid(
                            format!("{field}.probs[{i}]"),
                            format!(
                                "probabilities must start at 0, end at 1 and strictly increase, got {p}"
                            ),
                        ));
                    }
                }
                for (i, &v) in values.iter().enumerate() {
                    nonneg(&format!("values[{i}]"), v)?;
                    if i > 0 && v < values[i - 1] {
                        return Err(Error::invalid(
                            format!("{field}.values[{i}]"),
                            format!(
                                "quantiles must not decrease, got {v} after {}",
                                values[i - 1]
                            ),
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// The same distribution with every value multiplied by `f` (> 0): a faster or slower device,
    /// a longer cold start.
    pub fn scaled(&self, f: f64) -> Dist {
        match self {
            Dist::Constant { value } => Dist::Constant { value: value * f },
            Dist::Exponential { mean } => Dist::Exponential { mean: mean * f },
            Dist::Uniform { min, max } => Dist::Uniform {
                min: min * f,
                max: max * f,
            },
            Dist::Lognormal { mean, cv } => Dist::Lognormal {
                mean: mean * f,
                cv: *cv,
            },
            Dist::Empirical { samples } => Dist::Empirical {
                samples: samples.iter().map(|x| x * f).collect(),
            },
            Dist::Quantiles { probs, values } => Dist::Quantiles {
                probs: probs.clone(),
                values: values.iter().map(|x| x * f).collect(),
            },
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
            Dist::Quantiles { probs, values } => probs
                .windows(2)
                .zip(values.windows(2))
                .map(|(p, v)| (p[1] - p[0]) * 0.5 * (v[0] + v[1]))
                .sum(),
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
            Dist::Quantiles { probs, values } => {
                // E[X^2] of a piecewise-linear inverse CDF: (a^2 + ab + b^2) / 3 per segment.
                let ex2: f64 = probs
                    .windows(2)
                    .zip(values.windows(2))
                    .map(|(p, v)| (p[1] - p[0]) * (v[0] * v[0] + v[0] * v[1] + v[1] * v[1]) / 3.0)
                    .sum();
                (ex2 - m * m).max(0.0)
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
            Dist::Quantiles { probs, values } => Sampler::Quantiles {
                probs: probs.clone().into_boxed_slice(),
                values: values.clone().into_boxed_slice(),
            },
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
    /// A validated quantile table.
    Quantiles {
        /// From 0 to 1, strictly increasing.
        probs: Box<[f64]>,
        /// Non-decreasing, one per probability.
        values: Box<[f64]>,
    },
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
            Sampler::Quantiles { .. } => self.quantile(unit(rng)),
        }
    }

    /// The `u` quantile (inverse CDF) for `u` in [0, 1). Drawing `quantile(u)` of one uniform `u` from
    /// two samplers couples them: both draws sit at the same rank, which is how a value between two
    /// distributions is interpolated (quantile averaging) without widening the spread.
    pub fn quantile(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        match self {
            Sampler::Constant(v) => *v,
            Sampler::Exponential(m) => -m * (1.0 - u).max(f64::MIN_POSITIVE).ln(),
            Sampler::Uniform(lo, w) => lo + w * u,
            Sampler::Lognormal { mu, sigma } => (mu + sigma * inverse_normal(u)).exp(),
            Sampler::Empirical(s) => {
                let x = u * (s.len() - 1) as f64;
                let i = (x as usize).min(s.len() - 2);
                let f = x - i as f64;
                s[i] + f * (s[i + 1] - s[i])
            }
            Sampler::Quantiles { probs, values } => {
                // A handful of points: a linear scan beats a binary search here.
                let mut i = 1;
                while i < probs.len() - 1 && probs[i] < u {
                    i += 1;
                }
                let (p0, p1) = (probs[i - 1], probs[i]);
                let f = if p1 > p0 { (u - p0) / (p1 - p0) } else { 0.0 };
                values[i - 1] + f * (values[i] - values[i - 1])
            }
        }
    }
}

/// The standard normal quantile, by Acklam's rational approximation (relative error below 1.2e-9);
/// clamped to ±8.3 at 0 and 1.
pub fn inverse_normal(u: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let u = u.clamp(1e-16, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if u < LOW {
        tail((-2.0 * u.ln()).sqrt())
    } else if u > 1.0 - LOW {
        -tail((-2.0 * (1.0 - u).ln()).sqrt())
    } else {
        let q = u - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
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
            Dist::Quantiles {
                probs: vec![0.0, 0.5, 0.9, 0.99, 1.0],
                values: vec![0.004, 0.005, 0.007, 0.015, 0.03],
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

    #[test]
    fn quantile_table_reproduces_its_quantiles() {
        let d = Dist::Quantiles {
            probs: vec![0.0, 0.5, 0.95, 1.0],
            values: vec![0.002, 0.004, 0.010, 0.020],
        };
        d.validate("network").unwrap();
        let s = d.sampler();
        assert_eq!(s.quantile(0.0), 0.002);
        assert!((s.quantile(0.25) - 0.003).abs() < 1e-15);
        assert!((s.quantile(0.95) - 0.010).abs() < 1e-15);
        assert!((s.quantile(0.975) - 0.015).abs() < 1e-15);
        // Sampled: the empirical 95th percentile lands on the table's.
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut v: Vec<f64> = (0..200_000).map(|_| s.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        let below = v.iter().filter(|&&x| x <= 0.010).count() as f64 / v.len() as f64;
        let below_med = v.iter().filter(|&&x| x <= 0.004).count() as f64 / v.len() as f64;
        assert!((below - 0.95).abs() < 0.002, "P(X <= p95 value) = {below}");
        assert!(
            (below_med - 0.5).abs() < 0.005,
            "P(X <= median) = {below_med}"
        );
        // Mean and variance of the piecewise-linear inverse CDF, against the samples.
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            (mean / d.mean() - 1.0).abs() < 0.01,
            "{mean} vs {}",
            d.mean()
        );
        assert!((var / (d.scv() * d.mean() * d.mean()) - 1.0).abs() < 0.03);
    }

    #[test]
    fn quantile_table_validation_names_the_field() {
        let q = |probs: Vec<f64>, values: Vec<f64>| {
            Dist::Quantiles { probs, values }
                .validate("profile.network")
                .unwrap_err()
                .to_string()
        };
        let e = q(vec![0.1, 1.0], vec![1.0, 2.0]);
        assert!(e.contains("profile.network.probs[0]"), "{e}");
        let e = q(vec![0.0, 0.5, 0.5, 1.0], vec![1.0, 2.0, 3.0, 4.0]);
        assert!(e.contains("profile.network.probs[2]"), "{e}");
        let e = q(vec![0.0, 0.9], vec![1.0, 2.0]);
        assert!(e.contains("profile.network.probs[1]"), "{e}");
        let e = q(vec![0.0, 1.0], vec![1.0]);
        assert!(e.contains("profile.network.values"), "{e}");
        let e = q(vec![0.0, 0.5, 1.0], vec![1.0, 0.5, 2.0]);
        assert!(e.contains("profile.network.values[1]"), "{e}");
        let e = q(vec![0.0], vec![1.0]);
        assert!(e.contains("profile.network.probs"), "{e}");
    }

    #[test]
    fn quantiles_of_every_kind() {
        // Standard normal quantiles (tables): 0.5, 0.95, 0.975, 0.01.
        assert!(inverse_normal(0.5).abs() < 1e-12);
        assert!((inverse_normal(0.95) - 1.644_853_627).abs() < 1e-8);
        assert!((inverse_normal(0.975) - 1.959_963_985).abs() < 1e-8);
        assert!((inverse_normal(0.01) + 2.326_347_874).abs() < 1e-8);
        assert!((inverse_normal(0.999) - 3.090_232_306).abs() < 1e-8);
        // Log-normal median is exp(mu); exponential's is mean ln 2; uniform's the midpoint.
        let ln = Dist::Lognormal {
            mean: 0.01,
            cv: 0.5,
        }
        .sampler();
        let Sampler::Lognormal { mu, .. } = ln else {
            panic!()
        };
        assert!((ln.quantile(0.5) - mu.exp()).abs() < 1e-12);
        let ex = Dist::Exponential { mean: 2.0 }.sampler();
        assert!((ex.quantile(0.5) - 2.0 * 2f64.ln()).abs() < 1e-12);
        assert_eq!(
            Dist::Uniform { min: 1.0, max: 3.0 }.sampler().quantile(0.5),
            2.0
        );
        let em = Dist::Empirical {
            samples: vec![3.0, 1.0, 2.0],
        }
        .sampler();
        assert_eq!(em.quantile(0.75), 2.5);
        assert_eq!(em.quantile(1.0), 3.0);
    }
}
