//! Adding an interval log's encoded histograms into running sums, for `merge`.
//!
//! hdrhistogram's deserializer builds a whole histogram per entry (the counts array of the
//! 1 µs–1 h range, ~190 kB, zeroed) and `Histogram::add` then walks every count of it; over 100
//! shards × 600 intervals × 3 tags that was most of a merge's time. The entry itself (V2 layout,
//! zlib-compressed, base64 on its log line) lists only the non-zero counts, as zig-zag LEB128
//! varints with negative runs of zeros, so [`Decoder`] decodes it into reused buffers and adds
//! each non-zero count into [`Slots`]: plain counts by slot of [`crate::record::new_hist`]'s
//! layout, so adding is an array add (no value-to-slot arithmetic, no range checks per value of
//! `record_n`). A summed interval becomes a histogram once ([`Slots::to_hist`]), in work in
//! proportion to the slots it touched. The tests check all of it against hdrhistogram's own
//! encoding and decoding.

use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

/// `V2_COMPRESSED_COOKIE` and `V2_COOKIE` of the HdrHistogram encoding (hdrhistogram's values).
const COMPRESSED: u32 = 0x1c84_9304 | 0x10;
const PLAIN: u32 = 0x1c84_9303 | 0x10;

/// Where values go in a histogram's counts array (hdrhistogram's layout): the unit magnitude
/// (floor(log2(lowest discernible value))) and the magnitude of half a bucket's sub-buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    unit: u32,
    half_mag: u32,
}

impl Layout {
    /// The layout of a histogram of lowest value `low` and `digits` significant digits.
    fn new(low: u64, digits: u32) -> Layout {
        Layout {
            unit: 63 - low.max(1).leading_zeros(),
            // Sub-buckets: the power of two at or above 2 × 10^digits; half of them per bucket
            // after the first.
            half_mag: (2 * 10u64.pow(digits)).next_power_of_two().trailing_zeros() - 1,
        }
    }

    /// The layout of [`crate::record::new_hist`] (1 µs, 3 digits): the slots merge sums into.
    fn sums() -> Layout {
        Layout::new(1, 3)
    }

    /// The lowest value of counts-array slot `index` (as hdrhistogram's `value_for`).
    fn value_at(self, index: usize) -> u64 {
        let half = 1usize << self.half_mag;
        let mut bucket = (index >> self.half_mag) as i64 - 1;
        let mut sub = (index & (half - 1)) + half;
        if bucket < 0 {
            sub -= half;
            bucket = 0;
        }
        (sub as u64) << (bucket as u32 + self.unit)
    }

    /// The slot of `value` (as hdrhistogram's `index_for`).
    fn index_of(self, value: u64) -> usize {
        let sub_mag = self.half_mag + 1;
        let mask = ((1u64 << sub_mag) - 1) << self.unit;
        let bucket = (64 - self.unit - sub_mag) - (value | mask).leading_zeros();
        let sub = (value >> (bucket + self.unit)) as usize;
        (((bucket + 1) as usize) << self.half_mag) + sub - (1usize << self.half_mag)
    }
}

/// Counts by slot of [`crate::record::new_hist`]'s layout, and the range of slots touched
/// (reset and read in proportion to it). Grows as slots are touched, up to that histogram's
/// length.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    counts: Vec<u64>,
    /// Touched slots: `lo..hi` (empty when `lo >= hi`).
    lo: usize,
    hi: usize,
}

/// The number of slots of [`crate::record::new_hist`].
fn slots_len() -> usize {
    static LEN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LEN.get_or_init(|| crate::record::new_hist().distinct_values())
}

impl Slots {
    /// Adds `n` at slot `index`.
    #[cfg(test)]
    fn add_at(&mut self, index: usize, n: u64) -> Result<(), String> {
        self.add_all(&[(index, n)])
    }

    /// Adds (slot, count) `pairs`, slots ascending.
    fn add_all(&mut self, pairs: &[(usize, u64)]) -> Result<(), String> {
        let (Some(first), Some(last)) = (pairs.first(), pairs.last()) else {
            return Ok(());
        };
        let (lo, hi) = (first.0, last.0 + 1);
        if hi > self.counts.len() {
            let len = slots_len();
            if hi > len {
                return Err("a histogram out of range (beyond 1 h)".to_string());
            }
            self.counts
                .resize(hi.max(self.counts.len() * 2).min(len), 0);
        }
        for &(i, n) in pairs {
            self.counts[i] = self.counts[i].saturating_add(n);
        }
        if self.lo >= self.hi {
            (self.lo, self.hi) = (lo, hi);
        } else {
            self.lo = self.lo.min(lo);
            self.hi = self.hi.max(hi);
        }
        Ok(())
    }

    /// Empties the counts (only the touched ones are zeroed).
    pub(crate) fn reset(&mut self) {
        if self.lo < self.hi {
            self.counts[self.lo..self.hi].fill(0);
        }
        (self.lo, self.hi) = (0, 0);
    }

    /// Adds every count of `other`.
    pub(crate) fn add(&mut self, other: &Slots) {
        if other.lo >= other.hi {
            return;
        }
        if self.counts.len() < other.hi {
            self.counts.resize(other.hi, 0);
        }
        for (a, b) in self.counts[other.lo..other.hi]
            .iter_mut()
            .zip(&other.counts[other.lo..other.hi])
        {
            *a = a.saturating_add(*b);
        }
        if self.lo >= self.hi {
            (self.lo, self.hi) = (other.lo, other.hi);
        } else {
            self.lo = self.lo.min(other.lo);
            self.hi = self.hi.max(other.hi);
        }
    }

    /// `h` (a [`crate::record::new_hist`]) reset to these counts.
    pub(crate) fn to_hist(&self, h: &mut Histogram<u64>) -> Result<(), String> {
        h.reset();
        let layout = Layout::sums();
        for i in self.lo..self.hi {
            let n = self.counts[i];
            if n > 0 {
                h.record_n(layout.value_at(i), n)
                    .map_err(|e| format!("a histogram out of range ({e:?})"))?;
            }
        }
        Ok(())
    }
}

/// The three histograms of a window ([`crate::record::Hists`]) as [`Slots`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Parts {
    pub(crate) corrected: Slots,
    pub(crate) service: Slots,
    pub(crate) lag: Slots,
}

impl Parts {
    /// Empties all three.
    pub(crate) fn reset(&mut self) {
        self.corrected.reset();
        self.service.reset();
        self.lag.reset();
    }

    /// Adds `other`'s counts.
    pub(crate) fn add(&mut self, other: &Parts) {
        self.corrected.add(&other.corrected);
        self.service.add(&other.service);
        self.lag.add(&other.lag);
    }

    /// `h` reset to these counts.
    pub(crate) fn to_hists(&self, h: &mut crate::record::Hists) -> Result<(), String> {
        self.corrected.to_hist(&mut h.corrected)?;
        self.service.to_hist(&mut h.service)?;
        self.lag.to_hist(&mut h.lag)
    }
}

/// Reused state of decoding log entries: the base64-decoded entry, the inflater and its output.
pub(crate) struct Decoder {
    raw: Vec<u8>,
    inflate: Decompress,
    out: Vec<u8>,
    /// The entry's non-zero counts: (slot, count), slots ascending (a prefix of it).
    pairs: Vec<(usize, u64)>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            raw: Vec::with_capacity(4096),
            inflate: Decompress::new(true),
            // Zeroed once: the inflater writes into it (growing it when an entry needs more).
            out: vec![0; 16 * 1024],
            pairs: Vec::new(),
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn bad(why: &str) -> String {
    format!("a histogram does not decode ({why})")
}

impl Decoder {
    /// Adds the histogram of a log entry (its base64 text, V2 deflate) into every one of `into`.
    pub(crate) fn add(&mut self, base64: &[u8], into: &mut [&mut Slots]) -> Result<(), String> {
        if !base64_decode(base64, &mut self.raw) {
            return Err("a histogram is not base64".to_string());
        }
        let n = self.inflate_raw()?;
        let b = &self.out[..n];
        // cookie, payload length, normalizing offset, digits, lowest, highest, ratio (f64).
        if be32(b, 0) != Some(PLAIN) || be32(b, 8) != Some(0) {
            return Err(bad("unsupported V2 header"));
        }
        let payload = be32(b, 4).ok_or_else(|| bad("short"))? as usize;
        let digits = be32(b, 12).ok_or_else(|| bad("short"))?;
        let low = be64(b, 16).ok_or_else(|| bad("short"))?;
        let counts = b.get(40..40 + payload).ok_or_else(|| bad("short"))?;
        if digits > 5 {
            return Err(bad("digits"));
        }
        let from = Layout::new(low, digits);
        let n = decode_counts(counts, from, &mut self.pairs)?;
        let pairs = &self.pairs[..n];
        into.iter_mut().try_for_each(|s| s.add_all(pairs))
    }

    /// Inflates `raw` (length-prefixed zlib) into `out`; returns the bytes written.
    fn inflate_raw(&mut self) -> Result<usize, String> {
        let raw = &self.raw;
        if be32(raw, 0) != Some(COMPRESSED) {
            return Err(bad("not V2 deflate"));
        }
        let len = be32(raw, 4).ok_or_else(|| bad("short"))? as usize;
        let input = raw.get(8..8 + len).ok_or_else(|| bad("short"))?;
        self.inflate.reset(true);
        loop {
            let (used, made) = (
                self.inflate.total_in() as usize,
                self.inflate.total_out() as usize,
            );
            if made == self.out.len() {
                self.out.resize(2 * self.out.len(), 0);
            }
            let st = self
                .inflate
                .decompress(
                    &input[used..],
                    &mut self.out[made..],
                    FlushDecompress::Finish,
                )
                .map_err(|e| bad(&e.to_string()))?;
            let (used2, made2) = (
                self.inflate.total_in() as usize,
                self.inflate.total_out() as usize,
            );
            match st {
                Status::StreamEnd => return Ok(made2),
                _ if used2 == used && made2 == made => return Err(bad("truncated")),
                _ => {}
            }
        }
    }
}

/// The counts of a V2 payload (zig-zag LEB128 varints, negative: a run of empty slots) as
/// (slot, count) of the sums' layout, written to the start of `pairs` (grown as needed, never
/// shrunk: it is reused) in ascending slot order; returns how many.
fn decode_counts(
    counts: &[u8],
    from: Layout,
    pairs: &mut Vec<(usize, u64)>,
) -> Result<usize, String> {
    // At most one pair per byte: written in place, kept or overwritten without a branch (runs
    // and counts alternate at random, which a branch would mispredict half the time).
    if pairs.len() < counts.len() {
        pairs.resize(counts.len(), (0, 0));
    }
    let mut n = 0;
    let mut index = 0usize;
    let mut at = 0usize;
    while at < counts.len() {
        // Most counts and runs fit one byte.
        let zz = if counts[at] < 0x80 {
            at += 1;
            u64::from(counts[at - 1])
        } else {
            let (zz, k) = varint(&counts[at..]).ok_or_else(|| bad("varint"))?;
            at += k;
            zz
        };
        // Zig-zag: odd is -(half + 1), a run of that many empty slots; even is a count.
        let (neg, half) = ((zz & 1) as usize, (zz >> 1) as usize);
        pairs[n] = (index, half as u64);
        n += (neg == 0 && half > 0) as usize;
        index = index.saturating_add(1 + neg * half);
    }
    if from != Layout::sums() {
        // Another layout (not one kis-loadgen writes): through each slot's value.
        let to = Layout::sums();
        for p in &mut pairs[..n] {
            p.0 = to.index_of(from.value_at(p.0));
        }
    }
    Ok(n)
}

/// LEB128 (at most 9 bytes, the 9th taken whole): the number and the bytes it took.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (k, byte) in b.iter().take(9).enumerate() {
        if k == 8 {
            return Some((v | (u64::from(*byte) << 56), 9));
        }
        v |= u64::from(byte & 0x7f) << (7 * k);
        if byte & 0x80 == 0 {
            return Some((v, k + 1));
        }
    }
    None
}

/// Standard base64's values by character (0xff: not one of its characters).
const BASE64: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[chars[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes standard base64 (the interval log's encoding; padding optional, surrounding
/// whitespace ignored) into `out` (cleared first); false if it is not base64.
pub(crate) fn base64_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let s = s.trim_ascii();
    let s = s.strip_suffix(b"==").or(s.strip_suffix(b"=")).unwrap_or(s);
    out.reserve(s.len() / 4 * 3 + 3);
    let mut chunks = s.chunks_exact(4);
    for c in &mut chunks {
        let v = [0, 1, 2, 3].map(|k| BASE64[c[k] as usize]);
        if v.contains(&0xff) {
            return false;
        }
        let acc = (u32::from(v[0]) << 18)
            | (u32::from(v[1]) << 12)
            | (u32::from(v[2]) << 6)
            | u32::from(v[3]);
        out.extend_from_slice(&acc.to_be_bytes()[1..]);
    }
    let rest = chunks.remainder();
    let n = match rest.len() {
        0 => return true,
        2 => 1,
        3 => 2,
        _ => return false,
    };
    let mut acc = 0u32;
    for (k, c) in rest.iter().enumerate() {
        let v = BASE64[*c as usize];
        if v == 0xff {
            return false;
        }
        acc |= u32::from(v) << (18 - 6 * k);
    }
    out.extend_from_slice(&acc.to_be_bytes()[1..=n]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    use rand::{RngExt, SeedableRng};

    fn encode(h: &Histogram<u64>) -> Vec<u8> {
        let mut raw = Vec::new();
        V2DeflateSerializer::new().serialize(h, &mut raw).unwrap();
        let mut text = String::new();
        for c in raw.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
            let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            for k in 0..4 {
                if k <= c.len() {
                    text.push(chars[((n >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    text.push('=');
                }
            }
        }
        text.into_bytes()
    }

    #[test]
    fn base64_decodes_what_the_log_writes() {
        let mut out = Vec::new();
        for (s, want) in [
            ("aGVsbG8=", &b"hello"[..]),
            ("aGk=", b"hi"),
            ("YWJj", b"abc"),
            ("aGk", b"hi"),
            ("", b""),
        ] {
            assert!(base64_decode(s.as_bytes(), &mut out), "{s}");
            assert_eq!(out, want, "{s}");
        }
        assert!(!base64_decode(b"a$==", &mut out));
        assert!(!base64_decode(b"aGVsb", &mut out));
    }

    /// Every slot of the sums' layout: its value goes back to it, as in hdrhistogram.
    #[test]
    fn slots_and_values_match_hdrhistogram() {
        let h = crate::record::new_hist();
        let l = Layout::sums();
        for i in 0..h.distinct_values() {
            let v = l.value_at(i);
            assert_eq!(v, h.lowest_equivalent(v), "slot {i}");
            assert_eq!(l.index_of(v), i, "slot {i}");
            assert_eq!(l.index_of(h.highest_equivalent(v)), i, "slot {i}");
        }
    }

    /// Encoded with hdrhistogram's serializer, added with [`Decoder`]: the same histogram, for
    /// values across the whole 1 µs–1 h range, for an empty one and for another layout.
    #[test]
    fn adds_exactly_what_hdrhistogram_encoded() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let mut dec = Decoder::default();
        for (n, low, digits) in [
            (0usize, 1, 3),
            (1, 1, 3),
            (10, 1, 3),
            (1000, 1, 3),
            (20_000, 1, 3),
            (1000, 1, 2),
            (1000, 16, 4),
        ] {
            let mut h =
                Histogram::<u64>::new_with_bounds(low, crate::record::MAX_US, digits).unwrap();
            for _ in 0..n {
                let v = (rng.random_range(0.0f64..22.0)).exp2() as u64;
                h.record_n(v.clamp(1, crate::record::MAX_US), rng.random_range(1..5u64))
                    .unwrap();
            }
            let text = encode(&h);
            let (mut a, mut b) = (Slots::default(), Slots::default());
            b.add_at(5, 1).unwrap();
            dec.add(&text, &mut [&mut a, &mut b]).unwrap();
            let mut got = crate::record::new_hist();
            a.to_hist(&mut got).unwrap();
            // The same counts, each at its slot's lowest value, at the sums' resolution.
            let mut want = crate::record::new_hist();
            for v in h.iter_recorded() {
                let lowest = h.lowest_equivalent(v.value_iterated_to());
                want.record_n(lowest, v.count_at_value()).unwrap();
            }
            if (low, digits) == (1, 3) {
                assert!(got == h, "n={n}: decoded differs");
                assert_eq!(got.max(), h.max());
            }
            assert_eq!(got.len(), h.len(), "n={n} low={low} digits={digits}");
            for q in [0.0, 0.5, 0.99, 0.999, 1.0] {
                assert_eq!(
                    got.value_at_quantile(q),
                    want.value_at_quantile(q),
                    "n={n} low={low} digits={digits} q={q}"
                );
            }
            b.to_hist(&mut got).unwrap();
            assert_eq!(got.len(), h.len() + 1, "n={n}");
            // Reset and added again: the same; a cut entry is refused.
            a.reset();
            dec.add(&text, &mut [&mut a]).unwrap();
            let mut again = crate::record::new_hist();
            a.to_hist(&mut again).unwrap();
            assert_eq!(again.len(), h.len());
            assert!(dec.add(&text[..text.len() / 2], &mut [&mut a]).is_err() || n == 0);
        }
    }

    #[test]
    fn slots_add_and_reset() {
        let (mut a, mut b) = (Slots::default(), Slots::default());
        a.add_at(10, 2).unwrap();
        b.add_at(3000, 5).unwrap();
        b.add_at(7, 1).unwrap();
        a.add(&b);
        let mut h = crate::record::new_hist();
        a.to_hist(&mut h).unwrap();
        assert_eq!(h.len(), 8);
        assert_eq!((a.lo, a.hi), (7, 3001));
        a.reset();
        a.to_hist(&mut h).unwrap();
        assert!(h.is_empty());
        assert!(a.add_at(slots_len(), 1).is_err());
    }
}
