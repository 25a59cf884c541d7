//! Seeded arrival schedules: the intended send times of an open-loop run.
//!
//! The n-th arrival is where the integral of the rate reaches a target count: `n + 1/2` for
//! evenly spaced arrivals, a running sum of Exp(1) draws for a Poisson process (by the
//! time-rescaling theorem this is an inhomogeneous Poisson process with the profile's rate).
//! Each time is computed from the profile, never by adding up intervals, so errors do not
//! accumulate and a step in the rate takes effect at the step.

use std::fmt;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::{Error, Result};

/// How arrivals are spaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    /// Evenly spaced in expected-arrival count (constant spacing at a constant rate).
    #[default]
    Uniform,
    /// A Poisson process with the profile's rate.
    Poisson,
}

impl ArrivalKind {
    /// The lowercase name used on command lines and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ArrivalKind::Uniform => "uniform",
            ArrivalKind::Poisson => "poisson",
        }
    }
}

impl fmt::Display for ArrivalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArrivalKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uniform" | "constant" => Ok(ArrivalKind::Uniform),
            "poisson" => Ok(ArrivalKind::Poisson),
            _ => Err(Error::UnknownArrivals(s.to_string())),
        }
    }
}

/// Intended send times in seconds from the start: non-decreasing, all below the profile's
/// duration. O(1) amortised per item.
#[derive(Clone, Debug)]
pub struct Arrivals {
    profile: Profile,
    kind: ArrivalKind,
    rng: rand_pcg::Pcg64Mcg,
    /// Target of the integral for the next arrival.
    target: f64,
    /// Index of the next arrival.
    n: u64,
    /// Segment where the previous arrival fell; targets only grow, so the search resumes here.
    cursor: usize,
    /// The previous arrival time.
    last: f64,
}

impl Arrivals {
    pub(crate) fn new(profile: Profile, kind: ArrivalKind, seed: u64) -> Arrivals {
        Arrivals {
            profile,
            kind,
            rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed),
            target: 0.0,
            n: 0,
            cursor: 0,
            last: 0.0,
        }
    }

    /// The profile these arrivals follow.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// How many arrivals have been produced so far.
    pub fn produced(&self) -> u64 {
        self.n
    }
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        self.target = match self.kind {
            ArrivalKind::Uniform => self.n as f64 + 0.5,
            ArrivalKind::Poisson => {
                // 1 - u lies in (0, 1], so the logarithm is finite.
                let u: f64 = self.rng.random();
                self.target - (1.0 - u).ln()
            }
        };
        if self.target >= self.profile.total() {
            return None;
        }
        let (i, t) = self
            .profile
            .invert_from(self.cursor, self.target, self.last)?;
        self.cursor = i;
        self.last = t;
        self.n += 1;
        Some(t)
    }
}

impl Profile {
    /// The arrival schedule of this profile; owns a (cheap) clone of it.
    pub fn arrivals(&self, kind: ArrivalKind, seed: u64) -> Arrivals {
        Arrivals::new(self.clone(), kind, seed)
    }
}
