//! Adding an interval log's encoded histogram straight into running sums, for `merge`.
//!
//! hdrhistogram's deserializer builds a whole histogram per entry (the counts array of the
//! 1 µs–1 h range, ~190 kB, zeroed) and `Histogram::add` then walks every count of it; over 100
//! shards × 600 intervals × 3 tags that is most of a merge's time. The entry itself (V2 layout,
//! zlib-compressed) lists only the non-zero counts, as zig-zag LEB128 varints with negative runs
//! of zeros, so this decodes it once into a reused buffer and records each non-zero count at its
//! bucket's value into the destinations: work in proportion to what was recorded. The
//! `merge` tests check the sums against hdrhistogram's own decoding.

use flate2::{Decompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

/// `V2_COMPRESSED_COOKIE` and `V2_COOKIE` of the HdrHistogram encoding (hdrhistogram's values).
const COMPRESSED: u32 = 0x1c84_9304 | 0x10;
const PLAIN: u32 = 0x1c84_9303 | 0x10;

/// Reused state: the inflater and its output.
pub(crate) struct Adder {
    inflate: Decompress,
    out: Vec<u8>,
}

impl Default for Adder {
    fn default() -> Self {
        Adder {
            inflate: Decompress::new(true),
            out: Vec::with_capacity(64 * 1024),
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Adder {
    /// Adds the histogram encoded in `raw` (base64-decoded, V2 deflate) into every one of `into`.
    pub(crate) fn add(
        &mut self,
        raw: &[u8],
        into: &mut [&mut Histogram<u64>],
    ) -> Result<(), String> {
        let bad = |why: &str| format!("a histogram does not decode ({why})");
        if be32(raw, 0) != Some(COMPRESSED) {
            return Err(bad("not V2 deflate"));
        }
        let len = be32(raw, 4).ok_or_else(|| bad("short"))? as usize;
        let input = raw.get(8..8 + len).ok_or_else(|| bad("short"))?;
        self.inflate.reset(true);
        self.out.clear();
        loop {
            let used = self.inflate.total_in() as usize;
            if self.out.len() == self.out.capacity() {
                self.out.reserve(self.out.capacity().max(4096));
            }
            let st = self
                .inflate
                .decompress_vec(&input[used..], &mut self.out, FlushDecompress::Finish)
                .map_err(|e| bad(&e.to_string()))?;
            match st {
                Status::StreamEnd => break,
                _ if self.inflate.total_in() as usize == used
                    && self.out.len() < self.out.capacity() =>
                {
                    return Err(bad("truncated"));
                }
                _ => {}
            }
        }
        let b = &self.out[..];
        // cookie, payload length, normalizing offset, digits, lowest, highest, ratio (f64).
        if be32(b, 0) != Some(PLAIN) || be32(b, 8) != Some(0) {
            return Err(bad("unsupported V2 header"));
        }
        let payload = be32(b, 4).ok_or_else(|| bad("short"))? as usize;
        let digits = be32(b, 12).ok_or_else(|| bad("short"))?;
        let low = be64(b, 16).ok_or_else(|| bad("short"))?.max(1);
        let counts = b.get(40..40 + payload).ok_or_else(|| bad("short"))?;
        if digits > 5 {
            return Err(bad("digits"));
        }
        // hdrhistogram's layout: unit magnitude floor(log2(low)); sub-buckets the power of two
        // at or above 2 × 10^digits, half of them per bucket after the first.
        let unit = 63 - low.leading_zeros();
        let half_mag = (2 * 10u64.pow(digits)).next_power_of_two().trailing_zeros() - 1;
        let mut index = 0usize;
        let mut at = 0usize;
        while at < counts.len() {
            let (zz, n) = varint(&counts[at..]).ok_or_else(|| bad("varint"))?;
            at += n;
            let v = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            if v < 0 {
                index = index.saturating_add(v.unsigned_abs() as usize);
                continue;
            }
            if v > 0 {
                let value = value_at(index, unit, half_mag);
                for h in into.iter_mut() {
                    h.record_n(value, v as u64)
                        .map_err(|e| format!("a histogram out of range ({e:?})"))?;
                }
            }
            index += 1;
        }
        Ok(())
    }
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

/// The lowest value of counts-array slot `index` (as hdrhistogram's `value_for`).
fn value_at(index: usize, unit: u32, half_mag: u32) -> u64 {
    let half = 1usize << half_mag;
    let mut bucket = (index >> half_mag) as i64 - 1;
    let mut sub = (index & (half - 1)) + half;
    if bucket < 0 {
        sub -= half;
        bucket = 0;
    }
    (sub as u64) << (bucket as u32 + unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
    use rand::{RngExt, SeedableRng};

    /// Encoded with hdrhistogram's serializer, added with [`Adder`]: the same histogram, for
    /// values across the whole 1 µs–1 h range and for an empty one.
    #[test]
    fn adds_exactly_what_hdrhistogram_encoded() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let mut adder = Adder::default();
        for n in [0usize, 1, 10, 1000, 20_000] {
            let mut h = crate::record::new_hist();
            for _ in 0..n {
                let v = (rng.random_range(0.0f64..22.0)).exp2() as u64;
                h.record_n(v.clamp(1, crate::record::MAX_US), rng.random_range(1..5u64))
                    .unwrap();
            }
            let mut raw = Vec::new();
            V2DeflateSerializer::new().serialize(&h, &mut raw).unwrap();
            let (mut a, mut b) = (crate::record::new_hist(), crate::record::new_hist());
            b.record(5).unwrap();
            adder.add(&raw, &mut [&mut a, &mut b]).unwrap();
            assert!(a == h, "n={n}: decoded differs");
            assert_eq!(b.len(), h.len() + 1, "n={n}");
            assert_eq!(a.max(), h.max());
            assert!(adder.add(&raw[..raw.len() / 2], &mut [&mut a]).is_err() || n == 0);
        }
    }
}
