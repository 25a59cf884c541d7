//! A built rate profile r(t): a sequence of segments whose integral has a closed form and can be
//! inverted exactly, so that send times come from the integral of the rate rather than from
//! accumulated sleeps (which drift, and which make a step in the rate land late).

use std::sync::Arc;

/// How the rate behaves inside one segment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    /// Constant rate.
    Const(f64),
    /// Rate moving linearly from `r0` at the segment start to `r1` at its end.
    Linear { r0: f64, r1: f64 },
    /// `mid + amp * sin(omega * t + phase)` with `t` absolute and `mid >= |amp|`.
    Sine {
        mid: f64,
        amp: f64,
        omega: f64,
        phase: f64,
    },
}

/// One piece of the profile on `[t0, t1)`; `c0` is the integral of the rate over `[0, t0)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Segment {
    pub t0: f64,
    pub t1: f64,
    pub c0: f64,
    pub kind: Kind,
    /// For a sine, `cos(omega * t0 + phase)`, kept because every inversion needs it.
    cos_t0: f64,
}

impl Segment {
    fn rate(&self, t: f64) -> f64 {
        match self.kind {
            Kind::Const(r) => r,
            Kind::Linear { r0, r1 } => r0 + (r1 - r0) * (t - self.t0) / (self.t1 - self.t0),
            Kind::Sine {
                mid,
                amp,
                omega,
                phase,
            } => (mid + amp * (omega * t + phase).sin()).max(0.0),
        }
    }

    /// Integral of the rate over `[t0, t)`, for `t` inside the segment.
    fn integral_to(&self, t: f64) -> f64 {
        let d = t - self.t0;
        match self.kind {
            Kind::Const(r) => r * d,
            Kind::Linear { r0, r1 } => r0 * d + 0.5 * (r1 - r0) / (self.t1 - self.t0) * d * d,
            Kind::Sine {
                mid,
                amp,
                omega,
                phase,
            } => {
                mid * d
                    - amp / omega * ((omega * t + phase).cos() - (omega * self.t0 + phase).cos())
            }
        }
    }

    /// The time in this segment where the integral from `t0` reaches `x` (0 <= x <= total).
    /// `after` is a time in the segment known to lie at or before the answer (the previous
    /// arrival), which lets the sine's Newton iteration start next to the root.
    fn invert(&self, x: f64, after: f64) -> f64 {
        match self.kind {
            Kind::Const(r) => (self.t0 + x / r).min(self.t1),
            Kind::Linear { r0, r1 } => {
                let k = (r1 - r0) / (self.t1 - self.t0);
                // Root of k/2 d^2 + r0 d - x = 0, written to avoid cancellation when k is small.
                let disc = (r0 * r0 + 2.0 * k * x).max(0.0);
                let denom = r0 + disc.sqrt();
                let d = if denom > 0.0 { 2.0 * x / denom } else { 0.0 };
                (self.t0 + d).clamp(self.t0, self.t1)
            }
            Kind::Sine { mid, .. } => {
                // The integral is monotone, so a Newton step kept inside a shrinking bracket
                // converges quickly and can never leave the segment.
                let (mut lo, mut hi) = (after.clamp(self.t0, self.t1), self.t1);
                let r_lo = self.rate(lo);
                let guess = if r_lo > 0.0 {
                    lo + (x - self.integral_to(lo)) / r_lo
                } else {
                    self.t0 + x / mid
                };
                let mut t = guess.clamp(lo, hi);
                for _ in 0..100 {
                    let f = self.integral_to(t) - x;
                    if f.abs() < 1e-12 * (1.0 + x) {
                        break;
                    }
                    if f > 0.0 {
                        hi = t;
                    } else {
                        lo = t;
                    }
                    let r = self.rate(t);
                    let newton = t - f / r;
                    t = if r > 0.0 && newton > lo && newton < hi {
                        newton
                    } else {
                        0.5 * (lo + hi)
                    };
                    if hi - lo < 1e-12 {
                        break;
                    }
                }
                t
            }
        }
    }
}

/// A built rate profile r(t) on `[0, duration)`, in requests per second.
///
/// Cheap to clone (the segments are shared). Built by [`crate::ShapeSpec::build`].
#[derive(Clone, Debug)]
pub struct Profile {
    segments: Arc<[Segment]>,
    duration: f64,
    total: f64,
}

impl Profile {
    /// Builds a profile from consecutive segments given as `(length, kind)`; zero-length pieces
    /// are dropped.
    pub(crate) fn from_pieces(pieces: impl IntoIterator<Item = (f64, Kind)>) -> Profile {
        let mut segments = Vec::new();
        let (mut t, mut c) = (0.0_f64, 0.0_f64);
        for (len, kind) in pieces {
            if len <= 0.0 {
                continue;
            }
            let cos_t0 = match kind {
                Kind::Sine { omega, phase, .. } => (omega * t + phase).cos(),
                _ => 0.0,
            };
            let seg = Segment {
                t0: t,
                t1: t + len,
                c0: c,
                kind,
                cos_t0,
            };
            c += seg.integral_to(seg.t1);
            t = seg.t1;
            segments.push(seg);
        }
        Profile {
            segments: segments.into(),
            duration: t,
            total: c,
        }
    }

    fn segment_index(&self, t: f64) -> Option<usize> {
        if !(0.0..self.duration).contains(&t) {
            return None;
        }
        let i = self.segments.partition_point(|s| s.t1 <= t);
        (i < self.segments.len()).then_some(i)
    }

    /// Requests per second at `t` seconds from the start; 0 outside `[0, duration)`.
    pub fn rate(&self, t: f64) -> f64 {
        self.segment_index(t)
            .map_or(0.0, |i| self.segments[i].rate(t))
    }

    /// Expected arrivals in `[0, t)`: the integral of the rate.
    pub fn cumulative(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        match self.segment_index(t) {
            Some(i) => {
                let s = &self.segments[i];
                s.c0 + s.integral_to(t)
            }
            None => self.total,
        }
    }

    /// Length of the profile in seconds.
    pub fn duration(&self) -> f64 {
        self.duration
    }

    /// Expected number of arrivals over the whole profile.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Mean rate over the whole profile.
    pub fn mean_rate(&self) -> f64 {
        if self.duration > 0.0 {
            self.total / self.duration
        } else {
            0.0
        }
    }

    /// Highest rate anywhere in the profile.
    pub fn peak_rate(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| match s.kind {
                Kind::Const(r) => r,
                Kind::Linear { r0, r1 } => r0.max(r1),
                // The sine segments built here span whole or partial cycles; sample densely
                // rather than reason about where the crest falls.
                Kind::Sine { mid, amp, .. } => {
                    let n = 1024;
                    (0..=n)
                        .map(|k| s.rate(s.t0 + (s.t1 - s.t0) * k as f64 / n as f64))
                        .fold(0.0_f64, f64::max)
                        .min(mid + amp.abs())
                }
            })
            .fold(0.0, f64::max)
    }

    /// Lowest rate anywhere in the profile (0 for an empty one).
    pub fn low_rate(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| match s.kind {
                Kind::Const(r) => r,
                Kind::Linear { r0, r1 } => r0.min(r1),
                // As in `peak_rate`: sampled, bounded by the trough.
                Kind::Sine { mid, amp, .. } => {
                    let n = 1024;
                    (0..=n)
                        .map(|k| s.rate(s.t0 + (s.t1 - s.t0) * k as f64 / n as f64))
                        .fold(f64::INFINITY, f64::min)
                        .max(mid - amp.abs())
                }
            })
            .reduce(f64::min)
            .unwrap_or(0.0)
    }

    /// The same profile with every rate multiplied by `factor` (>= 0).
    pub fn scaled(&self, factor: f64) -> Profile {
        let factor = factor.max(0.0);
        Profile::from_pieces(self.segments.iter().map(|s| {
            let kind = match s.kind {
                Kind::Const(r) => Kind::Const(r * factor),
                Kind::Linear { r0, r1 } => Kind::Linear {
                    r0: r0 * factor,
                    r1: r1 * factor,
                },
                Kind::Sine {
                    mid,
                    amp,
                    omega,
                    phase,
                } => Kind::Sine {
                    mid: mid * factor,
                    amp: amp * factor,
                    omega,
                    phase,
                },
            };
            (s.t1 - s.t0, kind)
        }))
    }

    /// Times `t` where the rate changes abruptly (segment boundaries), excluding 0 and the end.
    pub fn breakpoints(&self) -> impl Iterator<Item = f64> + '_ {
        self.segments.iter().skip(1).map(|s| s.t0)
    }

    /// The first segment at or after index `from` whose cumulative range reaches past `target`,
    /// and the time where the cumulative count equals `target`; `after` is a time known to be at
    /// or before the answer.
    pub(crate) fn invert_from(&self, from: usize, target: f64, after: f64) -> Option<(usize, f64)> {
        let mut i = from;
        while i < self.segments.len() {
            let s = &self.segments[i];
            let c1 = self.segments.get(i + 1).map_or(self.total, |next| next.c0);
            if target < c1 {
                let t = s.invert((target - s.c0).max(0.0), after);
                return (t < self.duration).then_some((i, t));
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine_profile() -> Profile {
        let omega = 2.0 * std::f64::consts::PI * 3.0 / 300.0;
        Profile::from_pieces([(
            300.0,
            Kind::Sine {
                mid: 55.0,
                amp: 45.0,
                omega,
                phase: 0.0,
            },
        )])
    }

    #[test]
    fn sine_integral_over_whole_cycles_is_mid_times_length() {
        let p = sine_profile();
        assert!((p.total() - 55.0 * 300.0).abs() < 1e-6, "{}", p.total());
        assert!((p.peak_rate() - 100.0).abs() < 1e-3);
    }

    #[test]
    fn inversion_round_trips_in_every_kind() {
        let p = Profile::from_pieces([
            (10.0, Kind::Const(5.0)),
            (10.0, Kind::Const(0.0)),
            (20.0, Kind::Linear { r0: 1.0, r1: 40.0 }),
            (20.0, Kind::Linear { r0: 40.0, r1: 0.0 }),
        ])
        .scaled(2.0);
        let s = sine_profile();
        for prof in [&p, &s] {
            let (mut idx, mut prev) = (0, 0.0);
            let mut n = 0.5;
            while let Some((i, t)) = prof.invert_from(idx, n, prev) {
                assert!(t >= prev);
                prev = t;
                assert!(i >= idx);
                assert!(
                    (prof.cumulative(t) - n).abs() < 1e-6,
                    "target {n} got {}",
                    prof.cumulative(t)
                );
                idx = i;
                n += 1.0;
            }
            assert!((n - 0.5 - prof.total().floor()).abs() <= 1.0);
        }
    }

    #[test]
    fn rate_is_zero_outside_the_profile() {
        let p = Profile::from_pieces([(10.0, Kind::Const(5.0))]);
        assert_eq!(p.rate(-1.0), 0.0);
        assert_eq!(p.rate(10.0), 0.0);
        assert_eq!(p.rate(9.99), 5.0);
        assert_eq!(p.cumulative(20.0), 50.0);
    }
}
