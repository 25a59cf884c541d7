//! The live mode's guards, as pure functions: which of the rule's and the policy's targets is
//! published in each mode, when the policy is set aside for the rule (and why), the clamp to the
//! pool's bounds, and the checks that say an observation is not one the policy was trained on
//! (learned-autoscaling.md §2: shadow first, scale-out-only trust, fallback on bad metrics).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much the policy is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Publish the rule's target; the policy's is only logged.
    Shadow,
    /// Publish max(rule, policy): the policy may add replicas, never remove them.
    ScaleUpOnly,
    /// Publish the policy's target.
    Full,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Shadow => "shadow",
            Mode::ScaleUpOnly => "scale-up-only",
            Mode::Full => "full",
        })
    }
}

/// Why a decision went to the rule instead of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A Prometheus query failed (unreachable, timed out, an error answer).
    QueryFailed,
    /// A Ready pod's series is older than two scrape intervals, or missing.
    Stale,
    /// A value the observation needs is NaN.
    Nan,
    /// An observation feature lies outside the range the policy saw in training.
    OutOfRange,
    /// The apiserver could not be read (the Deployment or its Pods).
    Apiserver,
}

impl Reason {
    /// Every reason, for zero-initialised metrics.
    pub const ALL: [Reason; 5] = [
        Reason::QueryFailed,
        Reason::Stale,
        Reason::Nan,
        Reason::OutOfRange,
        Reason::Apiserver,
    ];

    /// The label value in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::QueryFailed => "query_failed",
            Reason::Stale => "stale",
            Reason::Nan => "nan",
            Reason::OutOfRange => "out_of_range",
            Reason::Apiserver => "apiserver",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a published target came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The rule (shadow mode, or no policy configured).
    Rule,
    /// The policy (full mode).
    Policy,
    /// max(rule, policy) in scale-up-only mode.
    Max,
    /// The rule, because the policy's inputs failed a check.
    Fallback,
    /// The last published target, held because nothing could be read.
    Hold,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rule => "rule",
            Source::Policy => "policy",
            Source::Max => "max",
            Source::Fallback => "fallback",
            Source::Hold => "hold",
        }
    }
}

/// A pool's bounds for what is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Least replicas (raised to 1 unless scale to zero is allowed).
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// Whether 0 may be published.
    pub scale_to_zero: bool,
}

impl Bounds {
    /// The lowest value that may be published: never 0 unless scale to zero is configured.
    pub fn floor(&self) -> u32 {
        if self.scale_to_zero {
            self.min
        } else {
            self.min.max(1)
        }
    }

    /// `v` clamped to [floor, max] (max never below the floor).
    pub fn clamp(&self, v: u32) -> u32 {
        let lo = self.floor();
        v.clamp(lo, self.max.max(lo))
    }
}

/// The published target of one pool and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// What to publish.
    pub target: u32,
    /// Its source.
    pub source: Source,
}

/// The target to publish from the rule's and the policy's (None: no policy configured), given
/// the mode and the fallback reason (if any); clamped to `bounds`.
pub fn choose(
    mode: Mode,
    rule: u32,
    policy: Option<u32>,
    fallback: Option<Reason>,
    bounds: &Bounds,
) -> Choice {
    let (target, source) = match (policy, fallback) {
        (None, _) => (rule, Source::Rule),
        (Some(_), Some(_)) => (rule, Source::Fallback),
        (Some(p), None) => match mode {
            Mode::Shadow => (rule, Source::Rule),
            Mode::ScaleUpOnly => (rule.max(p), Source::Max),
            Mode::Full => (p, Source::Policy),
        },
    };
    Choice {
        target: bounds.clamp(target),
        source,
    }
}

/// The first reason among `reasons` (they are ordered by how basic the failure is).
pub fn first_reason(reasons: &[Reason]) -> Option<Reason> {
    reasons.iter().min().copied()
}

/// Whether a series last sampled `age` seconds ago is stale: older than two scrape intervals.
pub fn is_stale(age: f64, scrape_interval: f64) -> bool {
    !age.is_finite() || age > 2.0 * scrape_interval
}

/// The first feature of `obs` outside the range the policy's frozen normaliser saw in training:
/// more than `clip` standard deviations from the training mean (where the normaliser would clip
/// it, so the network never saw such a value). `(index, value, z)`.
pub fn out_of_range(obs: &[f32], norm: &kis_policy::ObsNorm) -> Option<(usize, f32, f64)> {
    obs.iter().enumerate().find_map(|(i, &x)| {
        let (m, v) = (*norm.mean.get(i)?, *norm.var.get(i)?);
        let z = (x as f64 - m) / (v + kis_policy::NORM_EPS).sqrt();
        (!z.is_finite() || z.abs() > norm.clip).then_some((i, x, z))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        min: 1,
        max: 6,
        scale_to_zero: false,
    };

    #[test]
    fn modes_pick_their_source() {
        // Shadow publishes the rule's value whatever the policy says.
        let c = choose(Mode::Shadow, 3, Some(5), None, &B);
        assert_eq!((c.target, c.source), (3, Source::Rule));
        let c = choose(Mode::Shadow, 3, Some(1), None, &B);
        assert_eq!(c.target, 3);
        // Scale-up-only never goes below the rule.
        for p in 0..8 {
            for r in 1..6 {
                let c = choose(Mode::ScaleUpOnly, r, Some(p), None, &B);
                assert!(c.target >= r, "rule {r} policy {p} -> {}", c.target);
                assert_eq!(c.target, B.clamp(r.max(p)));
            }
        }
        // Full follows the policy.
        let c = choose(Mode::Full, 3, Some(5), None, &B);
        assert_eq!((c.target, c.source), (5, Source::Policy));
        let c = choose(Mode::Full, 3, Some(2), None, &B);
        assert_eq!(c.target, 2);
        // No policy: the rule.
        let c = choose(Mode::Full, 4, None, None, &B);
        assert_eq!((c.target, c.source), (4, Source::Rule));
    }

    #[test]
    fn any_fallback_reason_gives_the_rule() {
        for mode in [Mode::Shadow, Mode::ScaleUpOnly, Mode::Full] {
            for r in Reason::ALL {
                let c = choose(mode, 2, Some(6), Some(r), &B);
                assert_eq!((c.target, c.source), (2, Source::Fallback), "{mode} {r}");
            }
        }
    }

    #[test]
    fn clamp_never_publishes_zero_unless_scale_to_zero() {
        for mode in [Mode::Shadow, Mode::ScaleUpOnly, Mode::Full] {
            let c = choose(mode, 0, Some(0), None, &B);
            assert_eq!(c.target, 1, "{mode}");
        }
        let zero_min = Bounds {
            min: 0,
            max: 6,
            scale_to_zero: false,
        };
        assert_eq!(zero_min.clamp(0), 1);
        let z = Bounds {
            min: 0,
            max: 6,
            scale_to_zero: true,
        };
        assert_eq!(choose(Mode::Full, 0, Some(0), None, &z).target, 0);
        assert_eq!(B.clamp(99), 6);
        // A max below the floor (a misconfiguration) still never gives 0.
        let bad = Bounds {
            min: 0,
            max: 0,
            scale_to_zero: false,
        };
        assert_eq!(bad.clamp(0), 1);
    }

    #[test]
    fn staleness_is_two_scrape_intervals() {
        assert!(!is_stale(0.0, 15.0));
        assert!(!is_stale(30.0, 15.0));
        assert!(is_stale(30.5, 15.0));
        assert!(is_stale(f64::NAN, 15.0));
        assert!(is_stale(f64::INFINITY, 1.0));
    }

    #[test]
    fn reasons_order_and_names() {
        assert_eq!(first_reason(&[]), None);
        assert_eq!(
            first_reason(&[Reason::OutOfRange, Reason::Stale]),
            Some(Reason::Stale)
        );
        let names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            ["query_failed", "stale", "nan", "out_of_range", "apiserver"]
        );
    }

    #[test]
    fn out_of_range_uses_the_training_normaliser() {
        let mut n = kis_policy::ObsNorm::new(3, 5.0);
        n.mean = vec![0.5, 0.0, 0.2];
        n.var = vec![0.01, 0.0, 0.04];
        // Within 5 sigma everywhere.
        assert_eq!(out_of_range(&[0.5, 0.0, 0.2], &n), None);
        assert_eq!(out_of_range(&[0.95, 0.0, 0.9], &n), None);
        // Feature 1 never moved in training: any change is outside.
        let (i, _, _) = out_of_range(&[0.5, 0.01, 0.2], &n).unwrap();
        assert_eq!(i, 1);
        // Feature 0 more than 5 sigma (0.5) away.
        let (i, x, z) = out_of_range(&[1.0 + 1e-3, 0.0, 0.2], &n).unwrap();
        assert_eq!(i, 0);
        assert!((x - 1.001).abs() < 1e-6 && z > 5.0);
        assert!(out_of_range(&[f32::NAN, 0.0, 0.2], &n).is_some());
    }
}
