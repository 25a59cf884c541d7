//! The traffic shapes, as serde configuration, and how each becomes a [`Profile`].
//!
//! Defaults reproduce the original KIS-S experiments (five-minute runs between 10 and 100), read
//! as requests per second: the original drove Locust *users*; here the same numbers are the
//! offered request rate, so a shape means the same load whatever the server does.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::profile::{Kind, Profile};
use crate::trace;
use crate::{Error, Result};

/// The name of a traffic shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// A fixed rate.
    Constant,
    /// A staircase (or linear) ramp.
    Ramp,
    /// A sinusoid.
    Periodic,
    /// A new uniformly drawn level at a fixed interval.
    Random,
    /// Base, then peak, then base.
    Spike,
    /// Replay of a recorded `t_seconds,rate_rps` trace.
    Trace,
}

impl Pattern {
    /// Every pattern, in documentation order.
    pub const ALL: [Pattern; 6] = [
        Pattern::Constant,
        Pattern::Ramp,
        Pattern::Periodic,
        Pattern::Random,
        Pattern::Spike,
        Pattern::Trace,
    ];

    /// The lowercase name used on command lines and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Constant => "constant",
            Pattern::Ramp => "ramp",
            Pattern::Periodic => "periodic",
            Pattern::Random => "random",
            Pattern::Spike => "spike",
            Pattern::Trace => "trace",
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::UnknownPattern(s.to_string()))
    }
}

/// A traffic shape with its parameters. All rates are requests per second, all times seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "pattern", rename_all = "lowercase", deny_unknown_fields)]
pub enum ShapeSpec {
    /// `rate` for `duration`.
    Constant {
        /// Requests (or users) per second, held throughout (default 10).
        #[serde(default = "d::rate")]
        rate: f64,
        /// Seconds (default 300).
        #[serde(default = "d::duration")]
        duration: f64,
    },
    /// From `start` to `end` in `steps` equal steps (the first step at `start`, the last at
    /// `end`); `steps = 0` is a linear ramp.
    Ramp {
        /// First level (default 10).
        #[serde(default = "d::low")]
        start: f64,
        /// Last level (default 100).
        #[serde(default = "d::high")]
        end: f64,
        /// Equal steps; 0 = a linear ramp (default 20).
        #[serde(default = "d::steps")]
        steps: u32,
        /// Seconds (default 300).
        #[serde(default = "d::duration")]
        duration: f64,
    },
    /// A sinusoid between `min` and `max`, `cycles` periods over `duration`, starting at the
    /// midpoint and rising.
    Periodic {
        /// Trough (default 10).
        #[serde(default = "d::low")]
        min: f64,
        /// Crest (default 100).
        #[serde(default = "d::high")]
        max: f64,
        /// Full periods over `duration` (default 3).
        #[serde(default = "d::cycles")]
        cycles: f64,
        /// Seconds (default 300).
        #[serde(default = "d::duration")]
        duration: f64,
    },
    /// A level drawn uniformly in `[min, max]` every `interval`, from the seed.
    Random {
        /// Lowest level (default 10).
        #[serde(default = "d::low")]
        min: f64,
        /// Highest level (default 100).
        #[serde(default = "d::high")]
        max: f64,
        /// Seconds each level is held (default 30).
        #[serde(default = "d::interval")]
        interval: f64,
        /// Seconds (default 300).
        #[serde(default = "d::duration")]
        duration: f64,
    },
    /// `base`, then `peak` from `start` for `length` (both fractions of `duration`), then `base`.
    Spike {
        /// Level outside the spike (default 10).
        #[serde(default = "d::low")]
        base: f64,
        /// Level during the spike (default 100).
        #[serde(default = "d::high")]
        peak: f64,
        /// Start of the spike, fraction of `duration` (default 0.3).
        #[serde(default = "d::spike_start")]
        start: f64,
        /// Length of the spike, fraction of `duration` (default 0.4).
        #[serde(default = "d::spike_length")]
        length: f64,
        /// Seconds (default 300).
        #[serde(default = "d::duration")]
        duration: f64,
    },
    /// Replay of a `t_seconds,rate_rps` CSV, each bin held until the next: the rate is multiplied
    /// by `scale`, trace time is divided by `speedup`, and only the window
    /// `[offset, offset + limit)` of trace time is played (`limit` absent: to the end).
    Trace {
        /// The CSV file (`t_seconds,rate_rps`).
        path: PathBuf,
        /// Rate multiplier (default 1).
        #[serde(default = "d::one")]
        scale: f64,
        /// Trace time divisor (default 1).
        #[serde(default = "d::one")]
        speedup: f64,
        /// Trace time where playback starts, seconds (default 0).
        #[serde(default)]
        offset: f64,
        /// Trace time played from `offset`, seconds (absent: to the end).
        #[serde(default)]
        limit: Option<f64>,
    },
}

/// `ramp`: a linear ramp (`steps` 0) or `steps` equal constant steps from `start` to `end`.
fn ramp(start: f64, end: f64, steps: u32, duration: f64) -> Result<Profile> {
    check_rate("ramp.start", start)?;
    check_rate("ramp.end", end)?;
    check_duration("ramp.duration", duration)?;
    match steps {
        0 => Ok(Profile::from_pieces([(
            duration,
            Kind::Linear { r0: start, r1: end },
        )])),
        1 => Err(Error::Invalid {
            field: "ramp.steps",
            expected: "0 (linear) or at least 2",
            value: 1.0,
        }),
        n => {
            let len = duration / f64::from(n);
            Ok(Profile::from_pieces((0..n).map(|k| {
                let level = start + (end - start) * f64::from(k) / f64::from(n - 1);
                (len, Kind::Const(level))
            })))
        }
    }
}

/// `random`: a level drawn uniformly in `[min, max]` every `interval`, from the seed.
fn random(min: f64, max: f64, interval: f64, duration: f64, seed: u64) -> Result<Profile> {
    check_rate("random.min", min)?;
    check_rate("random.max", max)?;
    check_order("random.max", min, max)?;
    check_positive("random.interval", interval)?;
    check_duration("random.duration", duration)?;
    // A stream of its own, so the levels do not depend on how arrivals draw.
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ 0x5eed_1e7e_15ab_0001);
    let n = (duration / interval).ceil() as u64;
    Ok(Profile::from_pieces((0..n).map(|k| {
        let len = (duration - k as f64 * interval).min(interval);
        let level = if max > min {
            rng.random_range(min..=max)
        } else {
            min
        };
        (len, Kind::Const(level))
    })))
}

/// `spike`: `base`, then `peak` from `start` for `length` (fractions of `duration`), then `base`.
fn spike(base: f64, peak: f64, start: f64, length: f64, duration: f64) -> Result<Profile> {
    check_rate("spike.base", base)?;
    check_rate("spike.peak", peak)?;
    check_duration("spike.duration", duration)?;
    if !(0.0..1.0).contains(&start) {
        return Err(Error::Invalid {
            field: "spike.start",
            expected: "a fraction of the duration in [0, 1)",
            value: start,
        });
    }
    if !(length > 0.0 && start + length <= 1.0 + 1e-12) {
        return Err(Error::Invalid {
            field: "spike.length",
            expected: "a fraction > 0 with start + length <= 1",
            value: length,
        });
    }
    Ok(Profile::from_pieces([
        (start * duration, Kind::Const(base)),
        (length * duration, Kind::Const(peak)),
        (
            (1.0 - start - length).max(0.0) * duration,
            Kind::Const(base),
        ),
    ]))
}

/// Serde defaults: the original experiments' values.
mod d {
    pub(super) fn rate() -> f64 {
        10.0
    }
    pub(super) fn low() -> f64 {
        10.0
    }
    pub(super) fn high() -> f64 {
        100.0
    }
    pub(super) fn steps() -> u32 {
        20
    }
    pub(super) fn duration() -> f64 {
        300.0
    }
    pub(super) fn cycles() -> f64 {
        3.0
    }
    pub(super) fn interval() -> f64 {
        30.0
    }
    pub(super) fn spike_start() -> f64 {
        0.3
    }
    pub(super) fn spike_length() -> f64 {
        0.4
    }
    pub(super) fn one() -> f64 {
        1.0
    }
}

impl ShapeSpec {
    /// The shape with the original experiments' defaults (a trace has an empty path to fill in).
    pub fn default_for(p: Pattern) -> ShapeSpec {
        match p {
            Pattern::Constant => ShapeSpec::Constant {
                rate: d::rate(),
                duration: d::duration(),
            },
            Pattern::Ramp => ShapeSpec::Ramp {
                start: d::low(),
                end: d::high(),
                steps: d::steps(),
                duration: d::duration(),
            },
            Pattern::Periodic => ShapeSpec::Periodic {
                min: d::low(),
                max: d::high(),
                cycles: d::cycles(),
                duration: d::duration(),
            },
            Pattern::Random => ShapeSpec::Random {
                min: d::low(),
                max: d::high(),
                interval: d::interval(),
                duration: d::duration(),
            },
            Pattern::Spike => ShapeSpec::Spike {
                base: d::low(),
                peak: d::high(),
                start: d::spike_start(),
                length: d::spike_length(),
                duration: d::duration(),
            },
            Pattern::Trace => ShapeSpec::Trace {
                path: PathBuf::new(),
                scale: 1.0,
                speedup: 1.0,
                offset: 0.0,
                limit: None,
            },
        }
    }

    /// Which pattern this is.
    pub fn pattern(&self) -> Pattern {
        match self {
            ShapeSpec::Constant { .. } => Pattern::Constant,
            ShapeSpec::Ramp { .. } => Pattern::Ramp,
            ShapeSpec::Periodic { .. } => Pattern::Periodic,
            ShapeSpec::Random { .. } => Pattern::Random,
            ShapeSpec::Spike { .. } => Pattern::Spike,
            ShapeSpec::Trace { .. } => Pattern::Trace,
        }
    }

    /// The same shape between the rates `low` and `high` (requests/s): a ramp from `low` to
    /// `high`, a periodic or random shape between them, a spike from `low` to `high`. A constant
    /// shape takes `high`; a trace keeps its own rates.
    pub fn with_rates(mut self, low: f64, high: f64) -> ShapeSpec {
        match &mut self {
            ShapeSpec::Constant { rate, .. } => *rate = high,
            ShapeSpec::Ramp { start, end, .. } => (*start, *end) = (low, high),
            ShapeSpec::Periodic { min, max, .. } | ShapeSpec::Random { min, max, .. } => {
                (*min, *max) = (low, high);
            }
            ShapeSpec::Spike { base, peak, .. } => (*base, *peak) = (low, high),
            ShapeSpec::Trace { .. } => {}
        }
        self
    }

    /// The same shape stretched (or squeezed) to last `seconds`: ramps keep their step count,
    /// sinusoids their cycle count, spikes their fractions and random shapes their number of
    /// levels. For a trace this plays `seconds` of replay time (the window's `limit`).
    pub fn with_duration(self, seconds: f64) -> ShapeSpec {
        match self {
            ShapeSpec::Constant { rate, .. } => ShapeSpec::Constant {
                rate,
                duration: seconds,
            },
            ShapeSpec::Ramp {
                start, end, steps, ..
            } => ShapeSpec::Ramp {
                start,
                end,
                steps,
                duration: seconds,
            },
            ShapeSpec::Periodic {
                min, max, cycles, ..
            } => ShapeSpec::Periodic {
                min,
                max,
                cycles,
                duration: seconds,
            },
            ShapeSpec::Random {
                min,
                max,
                interval,
                duration,
            } => ShapeSpec::Random {
                min,
                max,
                interval: if duration > 0.0 {
                    interval * seconds / duration
                } else {
                    interval
                },
                duration: seconds,
            },
            ShapeSpec::Spike {
                base,
                peak,
                start,
                length,
                ..
            } => ShapeSpec::Spike {
                base,
                peak,
                start,
                length,
                duration: seconds,
            },
            ShapeSpec::Trace {
                path,
                scale,
                speedup,
                offset,
                ..
            } => ShapeSpec::Trace {
                path,
                scale,
                speedup,
                offset,
                limit: Some(seconds * speedup),
            },
        }
    }

    /// Checks the parameters and builds the rate profile. `seed` draws the levels of a random
    /// shape and is ignored by the others. Errors name the offending field and value.
    pub fn build(&self, seed: u64) -> Result<Profile> {
        match *self {
            ShapeSpec::Constant { rate, duration } => {
                check_rate("constant.rate", rate)?;
                check_duration("constant.duration", duration)?;
                Ok(Profile::from_pieces([(duration, Kind::Const(rate))]))
            }
            ShapeSpec::Ramp {
                start,
                end,
                steps,
                duration,
            } => ramp(start, end, steps, duration),
            ShapeSpec::Periodic {
                min,
                max,
                cycles,
                duration,
            } => {
                check_rate("periodic.min", min)?;
                check_rate("periodic.max", max)?;
                check_order("periodic.max", min, max)?;
                check_positive("periodic.cycles", cycles)?;
                check_duration("periodic.duration", duration)?;
                let omega = 2.0 * std::f64::consts::PI * cycles / duration;
                Ok(Profile::from_pieces([(
                    duration,
                    Kind::Sine {
                        mid: 0.5 * (min + max),
                        amp: 0.5 * (max - min),
                        omega,
                        phase: 0.0,
                    },
                )]))
            }
            ShapeSpec::Random {
                min,
                max,
                interval,
                duration,
            } => random(min, max, interval, duration, seed),
            ShapeSpec::Spike {
                base,
                peak,
                start,
                length,
                duration,
            } => spike(base, peak, start, length, duration),
            ShapeSpec::Trace {
                ref path,
                scale,
                speedup,
                offset,
                limit,
            } => {
                check_positive("trace.scale", scale)?;
                check_positive("trace.speedup", speedup)?;
                if !(offset.is_finite() && offset >= 0.0) {
                    return Err(Error::Invalid {
                        field: "trace.offset",
                        expected: "a finite number of seconds >= 0",
                        value: offset,
                    });
                }
                if let Some(l) = limit {
                    check_positive("trace.limit", l)?;
                }
                if path.as_os_str().is_empty() {
                    return Err(Error::MissingTrace);
                }
                let bins = trace::read(path)?;
                trace::profile(path, &bins, scale, speedup, offset, limit)
            }
        }
    }
}

fn check_rate(field: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::Invalid {
            field,
            expected: "a finite rate >= 0 (requests per second)",
            value: v,
        })
    }
}

fn check_positive(field: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Invalid {
            field,
            expected: "a finite number > 0",
            value: v,
        })
    }
}

fn check_duration(field: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::Invalid {
            field,
            expected: "a finite duration > 0 seconds",
            value: v,
        })
    }
}

fn check_order(field: &'static str, lo: f64, hi: f64) -> Result<()> {
    if hi >= lo {
        Ok(())
    } else {
        Err(Error::Invalid {
            field,
            expected: "a value >= the minimum",
            value: hi,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * (1.0 + b.abs())
    }

    #[test]
    fn ramp_default_is_ten_to_hundred_in_twenty_steps() {
        let p = ShapeSpec::default_for(Pattern::Ramp).build(0).unwrap();
        assert_eq!(p.duration(), 300.0);
        assert_eq!(p.rate(0.0), 10.0);
        assert_eq!(p.rate(299.9), 100.0);
        // 20 distinct levels, 15 s each, evenly spaced.
        let levels: Vec<f64> = (0..20).map(|k| p.rate(15.0 * k as f64 + 7.5)).collect();
        for w in levels.windows(2) {
            assert!(close(w[1] - w[0], 90.0 / 19.0), "{levels:?}");
        }
        // The integral is the mean level (55) times the duration.
        assert!(close(p.cumulative(300.0), 55.0 * 300.0));
        assert!(close(p.mean_rate(), 55.0));
    }

    #[test]
    fn with_rates_sets_low_and_high_of_every_pattern() {
        for p in [
            Pattern::Ramp,
            Pattern::Periodic,
            Pattern::Random,
            Pattern::Spike,
        ] {
            let prof = ShapeSpec::default_for(p)
                .with_rates(20.0, 150.0)
                .with_duration(60.0)
                .build(1)
                .unwrap();
            // A random shape's levels are drawn between the two.
            let peak = prof.peak_rate();
            if p == Pattern::Random {
                assert!((20.0..=150.0).contains(&peak), "{p}: {peak}");
            } else {
                assert!(close(peak, 150.0), "{p}: {peak}");
            }
            assert!(prof.mean_rate() > 20.0 && prof.mean_rate() < 150.0, "{p}");
        }
        let c = ShapeSpec::default_for(Pattern::Constant).with_rates(20.0, 150.0);
        assert!(close(c.build(1).unwrap().mean_rate(), 150.0));
    }

    #[test]
    fn linear_ramp_integral() {
        let spec = ShapeSpec::Ramp {
            start: 0.0,
            end: 100.0,
            steps: 0,
            duration: 100.0,
        };
        let p = spec.build(0).unwrap();
        assert!(close(p.cumulative(50.0), 0.5 * 50.0 * 50.0));
        assert!(close(p.rate(25.0), 25.0));
    }

    #[test]
    fn spike_default_phases() {
        let p = ShapeSpec::default_for(Pattern::Spike).build(0).unwrap();
        assert_eq!(p.rate(89.999), 10.0);
        assert_eq!(p.rate(90.0), 100.0);
        assert_eq!(p.rate(209.999), 100.0);
        assert_eq!(p.rate(210.0), 10.0);
        assert!(close(
            p.cumulative(300.0),
            90.0 * 10.0 + 120.0 * 100.0 + 90.0 * 10.0
        ));
        assert_eq!(p.breakpoints().collect::<Vec<_>>(), vec![90.0, 210.0]);
    }

    #[test]
    fn periodic_default_three_cycles() {
        let p = ShapeSpec::default_for(Pattern::Periodic).build(0).unwrap();
        assert!(close(p.rate(0.0), 55.0));
        assert!(close(p.rate(25.0), 100.0)); // crest a quarter period (100 s / 4) in
        assert!(close(p.rate(75.0), 10.0)); // trough at three quarters
        assert!(close(p.rate(100.0), 55.0));
        // The range a label shows: trough to crest, not start to crest.
        assert!(close(p.low_rate(), 10.0) && close(p.peak_rate(), 100.0));
        assert!(close(p.cumulative(300.0), 55.0 * 300.0));
        // Half a cycle: mid * 50 + amp * 2 / omega.
        let omega = 2.0 * std::f64::consts::PI / 100.0;
        assert!(close(p.cumulative(50.0), 55.0 * 50.0 + 45.0 * 2.0 / omega));
    }

    #[test]
    fn random_levels_come_from_the_seed_and_stay_in_range() {
        let spec = ShapeSpec::default_for(Pattern::Random);
        let a = spec.build(7).unwrap();
        let b = spec.build(7).unwrap();
        let c = spec.build(8).unwrap();
        let levels = |p: &Profile| {
            (0..10)
                .map(|k| p.rate(30.0 * k as f64 + 1.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(levels(&a), levels(&b));
        assert_ne!(levels(&a), levels(&c));
        assert!(levels(&a).iter().all(|l| (10.0..=100.0).contains(l)));
        let sum: f64 = levels(&a).iter().map(|l| l * 30.0).sum();
        assert!(close(a.cumulative(300.0), sum));
    }

    #[test]
    fn with_duration_keeps_structure() {
        let p = ShapeSpec::default_for(Pattern::Ramp)
            .with_duration(60.0)
            .build(0)
            .unwrap();
        assert_eq!(p.duration(), 60.0);
        assert_eq!(p.rate(2.9), 10.0);
        assert_eq!(p.rate(59.9), 100.0);
        let r = ShapeSpec::default_for(Pattern::Random).with_duration(60.0);
        assert!(matches!(r, ShapeSpec::Random { interval, .. } if close(interval, 6.0)));
    }

    #[test]
    fn invalid_values_name_the_field() {
        let cases = [
            (
                ShapeSpec::Constant {
                    rate: -1.0,
                    duration: 10.0,
                },
                "constant.rate",
            ),
            (
                ShapeSpec::Ramp {
                    start: 1.0,
                    end: 2.0,
                    steps: 1,
                    duration: 10.0,
                },
                "ramp.steps",
            ),
            (
                ShapeSpec::Periodic {
                    min: 50.0,
                    max: 10.0,
                    cycles: 1.0,
                    duration: 10.0,
                },
                "periodic.max",
            ),
            (
                ShapeSpec::Random {
                    min: 1.0,
                    max: 2.0,
                    interval: 0.0,
                    duration: 10.0,
                },
                "random.interval",
            ),
            (
                ShapeSpec::Spike {
                    base: 1.0,
                    peak: 2.0,
                    start: 0.8,
                    length: 0.4,
                    duration: 10.0,
                },
                "spike.length",
            ),
            (
                ShapeSpec::Constant {
                    rate: 1.0,
                    duration: f64::NAN,
                },
                "constant.duration",
            ),
        ];
        for (spec, field) in cases {
            let err = spec.build(0).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn pattern_names_round_trip() {
        for p in Pattern::ALL {
            assert_eq!(p.as_str().parse::<Pattern>().unwrap(), p);
        }
        let err = "sawtooth".parse::<Pattern>().unwrap_err().to_string();
        assert!(err.contains("sawtooth") && err.contains("ramp"), "{err}");
    }

    #[test]
    fn serde_uses_defaults_and_rejects_unknown_fields() {
        let s: ShapeSpec = serde_json::from_str(r#"{"pattern":"spike","peak":200}"#).unwrap();
        assert_eq!(
            s,
            ShapeSpec::Spike {
                base: 10.0,
                peak: 200.0,
                start: 0.3,
                length: 0.4,
                duration: 300.0
            }
        );
        assert!(serde_json::from_str::<ShapeSpec>(r#"{"pattern":"ramp","stepz":3}"#).is_err());
    }
}
