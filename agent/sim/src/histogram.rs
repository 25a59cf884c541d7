//! A fixed-size log-bucket latency histogram (about 0.8 % relative resolution), so memory stays the same
//! however long the simulated run is.
//!
//! Buckets come straight from the f64 bit pattern: the binary exponent picks the octave and the top six
//! mantissa bits pick one of 64 sub-buckets, which makes recording a handful of integer operations.

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Smallest octave: 2^-24 s ≈ 60 ns; smaller values land in the first bucket.
const MIN_EXP: i64 = -24;
/// Largest octave: 2^16 s ≈ 18 h; larger values land in the last bucket.
const MAX_EXP: i64 = 16;
const BUCKETS: usize = ((MAX_EXP - MIN_EXP) as usize) * SUB;

/// Streaming histogram of durations in seconds with exact count, sum, min and max.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn bucket(v: f64) -> usize {
    if v.is_nan() || v <= 0.0 {
        return 0;
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    if exp < MIN_EXP {
        return 0;
    }
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = ((bits >> (52 - SUB_BITS)) as usize) & (SUB - 1);
    ((exp - MIN_EXP) as usize) * SUB + sub
}

/// Midpoint of bucket `i` in seconds.
fn bucket_mid(i: usize) -> f64 {
    let exp = (i / SUB) as i64 + MIN_EXP;
    let sub = (i % SUB) as f64;
    let base = (exp as f64).exp2();
    base * (1.0 + (sub + 0.5) / SUB as f64)
}

impl Histogram {
    /// An empty histogram (about 20 KiB).
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: 0.0,
        }
    }

    /// Records one value in seconds.
    #[inline]
    pub fn record(&mut self, v: f64) {
        self.counts[bucket(v)] += 1;
        self.count += 1;
        self.sum += v;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Empties the histogram, keeping its allocation.
    pub fn clear(&mut self) {
        if self.count > 0 {
            self.counts.iter_mut().for_each(|c| *c = 0);
        }
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = 0.0;
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact mean, or None when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Exact maximum, or None when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The `q`-quantile (0..=1) to within the bucket resolution, or None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            return Some(self.max);
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_mid(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_resolution() {
        let mut h = Histogram::new();
        for i in 1..=10_000 {
            h.record(i as f64 * 1e-4); // 0.1 ms .. 1 s, uniform
        }
        for q in [0.5, 0.95, 0.99] {
            let got = h.quantile(q).unwrap();
            let want = q;
            assert!((got / want - 1.0).abs() < 0.01, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 10_000);
        assert!((h.mean().unwrap() - 0.50005).abs() < 1e-9);
        assert_eq!(h.max(), Some(1.0));
    }

    #[test]
    fn merge_and_clear() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(0.01);
        b.record(0.02);
        b.record(5e-9); // below range: first bucket, still counted
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(1.0), Some(0.02));
        a.clear();
        assert_eq!(a.count(), 0);
        assert_eq!(a.quantile(0.5), None);
    }
}
