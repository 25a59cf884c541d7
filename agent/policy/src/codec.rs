//! The little-endian binary container shared by policy files and kis-learn's checkpoints: a magic
//! tag, length-prefixed sections and an FNV-1a checksum at the end, so a truncated or altered file
//! is refused with one clear line instead of loading garbage. Floats are stored as their bits, so a
//! file round-trips exactly (a resumed run continues bit for bit).

use crate::{Error, Result};

/// FNV-1a (64-bit) over `bytes`: cheap and enough to catch truncation and bit rot (not tampering).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Builds a container: `magic`, then whatever is put, then [`Writer::finish`] appends the checksum.
#[derive(Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A container starting with `magic`.
    pub fn new(magic: &[u8]) -> Writer {
        Writer {
            buf: magic.to_vec(),
        }
    }

    /// One u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A length-prefixed f32 slice.
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// A length-prefixed f64 slice.
    pub fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// The finished container with its checksum.
    pub fn finish(mut self) -> Vec<u8> {
        let h = fnv1a(&self.buf);
        self.u64(h);
        self.buf
    }
}

/// Reads a container written by [`Writer`], after checking its magic and checksum.
#[derive(Debug)]
pub struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks `magic` and the checksum; `what` names the kind of file in errors.
    pub fn open(data: &'a [u8], magic: &[u8], what: &str) -> Result<Reader<'a>> {
        if data.len() < magic.len() || &data[..magic.len()] != magic {
            return Err(Error::Corrupt(format!("not a {what} (wrong magic bytes)")));
        }
        if data.len() < magic.len() + 8 {
            return Err(Error::Corrupt(format!(
                "truncated {what} ({} bytes)",
                data.len()
            )));
        }
        let (body, tail) = data.split_at(data.len() - 8);
        let stored = u64::from_le_bytes(tail.try_into().unwrap_or([0; 8]));
        if fnv1a(body) != stored {
            return Err(Error::Corrupt(format!(
                "{what} fails its checksum (truncated or altered, {} bytes)",
                data.len()
            )));
        }
        Ok(Reader {
            body,
            pos: magic.len(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.body.len());
        let Some(end) = end else {
            return Err(Error::Corrupt(format!(
                "section of {n} bytes runs past the end at offset {}",
                self.pos
            )));
        };
        let s = &self.body[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// One u64.
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn len(&mut self, elem: usize) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|n| n.checked_mul(elem).is_some())
            .ok_or_else(|| Error::Corrupt(format!("impossible section length {n}")))
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }

    /// A length-prefixed f32 slice.
    pub fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// A length-prefixed f64 slice.
    pub fn f64s(&mut self) -> Result<Vec<f64>> {
        let n = self.len(8)?;
        let b = self.take(n * 8)?;
        Ok(b.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    /// Errors unless everything was read.
    pub fn end(&self) -> Result<()> {
        if self.pos == self.body.len() {
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "{} unexpected bytes after the last section",
                self.body.len() - self.pos
            )))
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, then rename, so
/// a crash or a full disk never leaves a half-written file under the real name.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_is_refused() {
        let mut w = Writer::new(b"TEST0001");
        w.u64(7);
        w.bytes(b"hello");
        w.f32s(&[1.5, -0.0, f32::MIN_POSITIVE]);
        w.f64s(&[std::f64::consts::PI]);
        let data = w.finish();
        let mut r = Reader::open(&data, b"TEST0001", "test file").unwrap();
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.bytes().unwrap(), b"hello");
        let f = r.f32s().unwrap();
        assert_eq!(f[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(f[2], f32::MIN_POSITIVE);
        assert_eq!(r.f64s().unwrap(), vec![std::f64::consts::PI]);
        r.end().unwrap();
        for n in 0..data.len() {
            assert!(
                Reader::open(&data[..n], b"TEST0001", "test file").is_err(),
                "{n}"
            );
        }
        let mut bad = data.clone();
        bad[12] ^= 1;
        let e = Reader::open(&bad, b"TEST0001", "test file").unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        let e = Reader::open(b"PNG.....", b"TEST0001", "test file").unwrap_err();
        assert!(e.to_string().contains("not a test file"), "{e}");
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("kis-policy-codec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.bin");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        let e = write_atomic(&dir.join("missing/f.bin"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
