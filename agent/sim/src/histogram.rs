//! A fixed-size log-bucket latency histogram (about 0.8 % relative resolution), so memory stays the same
//! however long the simulated run is.
//!
//! Buckets come straight from the f64 bit pattern: the binary exponent picks the octave and the top six
//! mantissa bits pick one of 64 sub-buckets, which makes recording a handful of integer operations.
//!
//! The histogram also keeps the range of buckets that hold values (`lo..hi`): latencies of one
//! service sit in a few octaves, so merging, clearing and reading a quantile touch that range
//! instead of all 2,560 buckets (the simulator does all three at every scrape).

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
#[serde(from = "Stored", into = "Stored")]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Buckets `lo..hi` hold every recorded value (empty: `lo = BUCKETS`, `hi = 0`, so that
    /// widening is a plain min and max). A function of `counts` (counts only grow until
    /// `clear`), so the derived equality stays the values'.
    lo: usize,
    hi: usize,
}

/// The serialised form (the occupied range is derived, not stored).
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl From<Stored> for Histogram {
    fn from(s: Stored) -> Self {
        let lo = s.counts.iter().position(|&c| c > 0).unwrap_or(BUCKETS);
        let hi = s.counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        Histogram {
            counts: s.counts,
            count: s.count,
            sum: s.sum,
            min: s.min,
            max: s.max,
            lo,
            hi,
        }
    }
}

impl From<Histogram> for Stored {
    fn from(h: Histogram) -> Self {
        Stored {
            counts: h.counts,
            count: h.count,
            sum: h.sum,
            min: h.min,
            max: h.max,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of `v` (for [`Histogram::record_at`], when one value goes into several histograms).
#[inline]
pub(crate) fn bucket(v: f64) -> usize {
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
            lo: BUCKETS,
            hi: 0,
        }
    }

    /// Widens the occupied range to buckets `lo..hi`.
    #[inline]
    fn cover(&mut self, lo: usize, hi: usize) {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
    }

    /// Records one value in seconds.
    #[inline]
    pub fn record(&mut self, v: f64) {
        self.record_at(bucket(v), v);
    }

    /// [`Histogram::record`] with `b = bucket(v)` computed by the caller.
    #[inline]
    pub(crate) fn record_at(&mut self, b: usize, v: f64) {
        self.counts[b] += 1;
        self.cover(b, b + 1);
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
        let r = other.lo..other.hi;
        for (a, b) in self.counts[r.clone()].iter_mut().zip(&other.counts[r]) {
            *a += b;
        }
        self.cover(other.lo, other.hi);
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Empties the histogram, keeping its allocation.
    pub fn clear(&mut self) {
        if self.lo < self.hi {
            self.counts[self.lo..self.hi].fill(0);
        }
        (self.lo, self.hi) = (BUCKETS, 0);
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
        for (i, c) in self.counts[self.lo..self.hi].iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_mid(self.lo + i).clamp(self.min, self.max));
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

    /// The quantile by a scan of every bucket (the range-free definition).
    fn full_scan_quantile(h: &Histogram, q: f64) -> Option<f64> {
        if h.count == 0 {
            return None;
        }
        let rank = ((q * h.count as f64).ceil() as u64).max(1);
        if rank >= h.count {
            return Some(h.max);
        }
        let mut seen = 0;
        for (i, c) in h.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_mid(i).clamp(h.min, h.max));
            }
        }
        Some(h.max)
    }

    /// The occupied range is exactly the first to the last non-empty bucket.
    fn range_is_exact(h: &Histogram) {
        let lo = h.counts.iter().position(|&c| c > 0);
        let hi = h.counts.iter().rposition(|&c| c > 0).map(|i| i + 1);
        match (lo, hi) {
            (Some(lo), Some(hi)) => assert_eq!((h.lo, h.hi), (lo, hi)),
            _ => assert_eq!((h.lo, h.hi), (BUCKETS, 0), "empty"),
        }
    }

    #[test]
    fn the_occupied_range_gives_the_full_scan_results() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 1e-9 s .. 1e6 s, both out-of-range ends included, and some zeros.
            let e = (x % 160) as f64 / 10.0 - 9.0;
            if x.is_multiple_of(97) {
                0.0
            } else {
                10f64.powf(e)
            }
        };
        let mut window = Histogram::new();
        let mut parts: Vec<Histogram> = Vec::new();
        for round in 0..40 {
            let mut h = Histogram::new();
            for _ in 0..(round * 7 % 50) {
                h.record(next());
            }
            range_is_exact(&h);
            parts.push(h);
            if parts.len() > 4 {
                parts.remove(0);
            }
            window.clear();
            range_is_exact(&window);
            for p in &parts {
                window.merge(p);
            }
            range_is_exact(&window);
            for q in [0.0, 0.05, 0.5, 0.95, 0.99, 1.0] {
                assert_eq!(window.quantile(q), full_scan_quantile(&window, q), "q{q}");
            }
            if window.count() == 0 {
                continue; // its infinite min has no JSON form (as before the range was kept)
            }
            let json = serde_json::to_string(&window).unwrap();
            assert!(!json.contains("\"lo\""), "the range is not stored: {json}");
            // serde_json reads floats back only to within an ulp (no `float_roundtrip`): compare
            // the buckets and the range derived from them.
            let back: Histogram = serde_json::from_str(&json).unwrap();
            assert_eq!(
                (&back.counts, back.count, back.lo, back.hi),
                (&window.counts, window.count, window.lo, window.hi)
            );
        }
    }
}
