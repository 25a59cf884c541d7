//! One generator thread's slice of the open-loop arrival schedule, consumed lazily.
//!
//! Arrival `i` of the run belongs to thread `i mod threads`; each thread walks kis-traffic's
//! `Arrivals` iterator and keeps only its next intended send time, so a backlog of due arrivals
//! is a position in the iterator, never a queue. How many arrivals are due is counted exactly for
//! small backlogs and in closed form (from the integral of the rate) beyond, so neither the
//! once-a-second backlog figure nor the count of never-sent arrivals at the end of a run costs
//! time in proportion to the rate.

use std::time::{Duration, Instant};

use kis_traffic::{ArrivalKind, Arrivals, Profile};

/// Arrival steps walked one by one before [`Sched::due`] switches to the closed form.
const EXACT_WALK: u64 = 4096;

/// One thread's slice of the arrival schedule.
#[derive(Clone, Debug)]
pub struct Sched {
    iter: Arrivals,
    kind: ArrivalKind,
    t0: Instant,
    stride: usize,
    next: Option<Instant>,
}

impl Sched {
    /// Arrivals `index`, `index + stride`, … of `profile`'s schedule, as instants from `t0`.
    pub fn new(
        profile: &Profile,
        kind: ArrivalKind,
        seed: u64,
        t0: Instant,
        index: usize,
        stride: usize,
    ) -> Sched {
        let mut iter = profile.arrivals(kind, seed);
        for _ in 0..index {
            iter.next();
        }
        let next = iter.next().map(|t| t0 + Duration::from_secs_f64(t));
        Sched {
            iter,
            kind,
            t0,
            stride: stride.max(1),
            next,
        }
    }

    /// The next arrival's intended time, `None` when the schedule is over.
    pub fn peek(&self) -> Option<Instant> {
        self.next
    }

    /// Consumes the next arrival.
    pub fn advance(&mut self) {
        for _ in 1..self.stride {
            self.iter.next();
        }
        let t0 = self.t0;
        self.next = self.iter.next().map(|t| t0 + Duration::from_secs_f64(t));
    }

    /// How many of this slice's arrivals are due at `now` and not consumed: exact up to a few
    /// thousand, beyond that from the integral of the rate (exact to one arrival for uniform
    /// spacing, the expected count for Poisson), in constant time whatever the rate.
    pub fn due(&self, now: Instant) -> u64 {
        if self.next.is_none_or(|t| t > now) {
            return 0;
        }
        let mut rest = self.clone();
        let mut n = 0;
        let walk = EXACT_WALK / self.stride as u64;
        while n < walk && rest.next.is_some_and(|t| t <= now) {
            n += 1;
            rest.advance();
        }
        match rest.next {
            Some(t) if t <= now => n + rest.due_estimate(t, now),
            _ => n,
        }
    }

    /// Due arrivals from the next one (`next`, known to be due) to `now`, in closed form.
    fn due_estimate(&self, next: Instant, now: Instant) -> u64 {
        let p = self.iter.profile();
        let secs = |i: Instant| i.saturating_duration_since(self.t0).as_secs_f64();
        // Global index of `next`: the iterator has produced it last.
        let idx = self.iter.produced().saturating_sub(1) as f64;
        let last = match self.kind {
            // Arrival i is where the integral reaches i + 1/2; the last one is below the total.
            ArrivalKind::Uniform => {
                let last_existing = (p.total() - 0.5).ceil() - 1.0;
                (p.cumulative(secs(now)) - 0.5).floor().min(last_existing)
            }
            // A Poisson process expects the integral's increase in arrivals.
            _ => idx + (p.cumulative(secs(now)) - p.cumulative(secs(next))).floor(),
        };
        if last <= idx {
            return 1;
        }
        ((last - idx) / self.stride as f64).floor() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kis_traffic::ShapeSpec;

    fn profile(rate: f64, duration: f64) -> Profile {
        ShapeSpec::Constant { rate, duration }.build(1).unwrap()
    }

    #[test]
    fn threads_split_the_schedule_without_gaps_or_overlap() {
        let p = profile(1000.0, 1.0);
        let t0 = Instant::now();
        let all: Vec<Instant> = p
            .arrivals(ArrivalKind::Poisson, 3)
            .map(|t| t0 + Duration::from_secs_f64(t))
            .collect();
        let mut merged = Vec::new();
        for i in 0..3 {
            let mut s = Sched::new(&p, ArrivalKind::Poisson, 3, t0, i, 3);
            while let Some(t) = s.peek() {
                merged.push(t);
                s.advance();
            }
        }
        merged.sort();
        assert_eq!(merged, all);
    }

    #[test]
    fn the_backlog_is_counted_not_stored() {
        // 1 M arrivals/s for 100 s, 50 s behind: 50 M due arrivals, counted without walking them.
        let p = profile(1e6, 100.0);
        let t0 = Instant::now() - Duration::from_secs(50);
        let mut s = Sched::new(&p, ArrivalKind::Uniform, 1, t0, 0, 1);
        let now = Instant::now();
        let d = s.due(now);
        assert!((50_000_000..=50_000_100).contains(&d), "{d}");
        let small = profile(100.0, 100.0);
        let s2 = Sched::new(&small, ArrivalKind::Uniform, 1, t0, 0, 1);
        // 100/s for 50 s: 5000 due (±1 for the clock read), past the exact walk.
        let d = s2.due(Instant::now());
        assert!((5000..=5001).contains(&d), "{d}");
        // Consuming one lowers the backlog by one; the Sched stays a few words.
        s.advance();
        assert_eq!(s.due(now), d_minus_one(&p, t0, now));
        assert!(std::mem::size_of::<Sched>() < 512);
    }

    fn d_minus_one(p: &Profile, t0: Instant, now: Instant) -> u64 {
        Sched::new(p, ArrivalKind::Uniform, 1, t0, 0, 1).due(now) - 1
    }

    #[test]
    fn the_closed_form_matches_the_walk() {
        // Below the exact walk's reach the count is exact; compare both ways on a ramp, split
        // over three threads, for uniform spacing (exact) and Poisson (the expectation).
        let p = ShapeSpec::Ramp {
            start: 1000.0,
            end: 30_000.0,
            steps: 0,
            duration: 2.0,
        }
        .build(1)
        .unwrap();
        let t0 = Instant::now() - Duration::from_millis(1500);
        let now = Instant::now();
        for (kind, tol) in [(ArrivalKind::Uniform, 1.0), (ArrivalKind::Poisson, 0.02)] {
            let (mut walked, mut formed) = (0u64, 0u64);
            for i in 0..3 {
                let s = Sched::new(&p, kind, 7, t0, i, 3);
                let mut w = s.clone();
                while w.peek().is_some_and(|t| t <= now) {
                    walked += 1;
                    w.advance();
                }
                let next = s.peek().unwrap();
                formed += s.due_estimate(next, now);
            }
            let diff = walked.abs_diff(formed) as f64;
            let allowed = if kind == ArrivalKind::Uniform {
                3.0 * tol
            } else {
                tol * walked as f64
            };
            assert!(diff <= allowed, "{kind}: walked {walked}, formula {formed}");
        }
    }

    #[test]
    fn an_absurd_backlog_is_counted_at_once() {
        // 1e9 arrivals/s, 2 s behind: walking would take seconds; the formula takes nothing.
        let p = profile(1e9, 2.0);
        let t0 = Instant::now() - Duration::from_secs(3);
        let s = Sched::new(&p, ArrivalKind::Poisson, 1, t0, 0, 1);
        let started = Instant::now();
        let d = s.due(Instant::now());
        assert!(started.elapsed() < Duration::from_millis(200));
        assert!((1.99e9..=2.01e9).contains(&(d as f64)), "{d}");
    }
}
