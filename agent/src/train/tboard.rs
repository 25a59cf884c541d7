//! The training log as a TensorBoard event file (`events.out.tfevents.*`), so `tensorboard --logdir
//! OUT` plots the same scalars as `log.csv`. The format is small enough to write by hand: a file of
//! length-prefixed records, each framed by masked CRC-32C checksums, whose payloads are `Event`
//! protocol buffers (a `file_version` event first, then one `Summary` of simple values per
//! iteration). No protobuf or TensorFlow dependency.

/// CRC-32C (Castagnoli), bitwise: the record framing's checksum.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// TFRecord's masked CRC.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 }`.
fn event(wall_time: f64, step: u64, body: (u64, &[u8])) -> Vec<u8> {
    let mut e = Vec::new();
    varint(&mut e, 1 << 3 | 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(&mut e, 2 << 3);
    varint(&mut e, step);
    bytes_field(&mut e, body.0, body.1);
    e
}

/// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The whole event file for `rows` of `(step, [(tag, value)])`, stamped `wall_time` (seconds since
/// the epoch). Non-finite values (an iteration without validation) are left out.
pub(super) fn event_file(wall_time: f64, rows: &[(u64, Vec<(&str, f64)>)]) -> Vec<u8> {
    let mut out = Vec::new();
    record(&mut out, &event(wall_time, 0, (3, b"brain.Event:2")));
    for (step, values) in rows {
        // Summary { value = 1: Value { tag = 1, simple_value = 2 (float) } }
        let mut summary = Vec::new();
        for (tag, v) in values.iter().filter(|(_, v)| v.is_finite()) {
            let mut value = Vec::new();
            bytes_field(&mut value, 1, tag.as_bytes());
            varint(&mut value, 2 << 3 | 5);
            value.extend_from_slice(&(*v as f32).to_le_bytes());
            bytes_field(&mut summary, 1, &value);
        }
        if !summary.is_empty() {
            record(&mut out, &event(wall_time, *step, (5, &summary)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn event_file_frames_records_and_encodes_scalars() {
        let f = event_file(1.5, &[(7, vec![("loss", 0.25), ("skip", f64::NAN)])]);
        // First record: the file_version event.
        let len = u64::from_le_bytes(f[..8].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(f[8..12].try_into().unwrap());
        assert_eq!(crc, masked_crc(&f[..8]));
        let first = &f[12..12 + len];
        assert_eq!(
            u32::from_le_bytes(f[12 + len..16 + len].try_into().unwrap()),
            masked_crc(first)
        );
        assert!(first.ends_with(b"brain.Event:2"));
        // Second record: step 7, one value tagged "loss" holding 0.25f32; the NaN left out.
        let rest = &f[16 + len..];
        let len2 = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        assert_eq!(rest.len(), 12 + len2 + 4, "two records exactly");
        let second = &rest[12..12 + len2];
        assert_eq!(&second[..1], &[0x09]);
        assert_eq!(&second[1..9], &1.5f64.to_le_bytes());
        assert_eq!(&second[9..11], &[0x10, 7]);
        let tail = &second[11..];
        let value = [&[0x0a, 4][..], b"loss", &[0x15], &0.25f32.to_le_bytes()].concat();
        let summary = [&[0x0a, value.len() as u8][..], &value].concat();
        assert_eq!(tail, [&[0x2a, summary.len() as u8][..], &summary].concat());
        assert!(!String::from_utf8_lossy(second).contains("skip"));
    }
}
