//! The run's per-window rows, spooled as JSON lines to an unlinked temporary file as each window
//! closes, so a run of any length holds the same memory (a soak of hours would otherwise keep
//! ~1 KB per second). The outputs read the rows back at the end: the JSON report streams them,
//! the Locust history CSV and the plot iterate them.
//!
//! Where no temporary file can be made (or a write to it fails) the same lines are kept in
//! memory instead, so a read-only `/tmp` costs memory, never rows.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use serde::ser::{Error as _, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use super::WindowRow;
use crate::record::Percentiles;

/// What the Locust history CSV needs of a window beyond its JSON row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Corrected latency at Locust's percentiles (ms); empty when the window had no answers.
    pub locust: Vec<f64>,
    /// Cumulative corrected latency at the window end (ms).
    pub total: Percentiles,
    /// Cumulative (completed, errors, response bytes) at the window end.
    pub total_counts: (u64, u64, u64),
}

#[derive(Clone)]
enum Store {
    /// An unlinked temporary file and how many bytes of it are written.
    File(Arc<File>, u64),
    /// The fallback: the same lines in memory.
    Mem(Arc<Vec<u8>>),
}

/// The per-window rows of a run, oldest first.
#[derive(Clone)]
pub struct Windows {
    store: Store,
    len: usize,
    line: Vec<u8>,
}

impl fmt::Debug for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.store {
            Store::File(..) => "file",
            Store::Mem(_) => "memory",
        };
        write!(f, "Windows({} rows in {kind})", self.len)
    }
}

impl Default for Windows {
    fn default() -> Self {
        Windows::new()
    }
}

impl From<Vec<WindowRow>> for Windows {
    fn from(rows: Vec<WindowRow>) -> Windows {
        let mut w = Windows::in_memory();
        for r in &rows {
            w.push(r, &History::default());
        }
        w
    }
}

impl Windows {
    /// An empty spool on a temporary file (in memory if none can be made).
    pub fn new() -> Windows {
        match tempfile::tempfile() {
            Ok(f) => Windows {
                store: Store::File(Arc::new(f), 0),
                len: 0,
                line: Vec::new(),
            },
            Err(e) => {
                tracing::debug!(
                    "no temporary file for the window rows ({e}); keeping them in memory"
                );
                Windows::in_memory()
            }
        }
    }

    /// An empty spool kept in memory.
    pub fn in_memory() -> Windows {
        Windows {
            store: Store::Mem(Arc::new(Vec::new())),
            len: 0,
            line: Vec::new(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of rows held in memory (0 while they are spooled to a file).
    pub fn resident_bytes(&self) -> usize {
        match &self.store {
            Store::File(..) => 0,
            Store::Mem(v) => v.len(),
        }
    }

    /// Appends a window's row.
    pub fn push(&mut self, row: &WindowRow, history: &History) {
        self.line.clear();
        if let Err(e) = serde_json::to_writer(&mut self.line, &(row, history)) {
            // Only a non-finite number could do this; the row is skipped, not the run.
            tracing::warn!("window row at t={:.1} s not kept: {e}", row.t_s);
            return;
        }
        self.line.push(b'\n');
        if let Store::File(f, at) = &mut self.store {
            match f.write_all_at(&self.line, *at) {
                Ok(()) => {
                    *at += self.line.len() as u64;
                    self.len += 1;
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        "window rows: temporary file write failed ({e}); keeping them in memory"
                    );
                    let mut kept = vec![0; *at as usize];
                    let kept = match f.read_exact_at(&mut kept, 0) {
                        Ok(()) => kept,
                        Err(e) => {
                            tracing::warn!("window rows spooled so far are lost: {e}");
                            self.len = 0;
                            Vec::new()
                        }
                    };
                    self.store = Store::Mem(Arc::new(kept));
                }
            }
        }
        if let Store::Mem(v) = &mut self.store {
            Arc::make_mut(v).extend_from_slice(&self.line);
            self.len += 1;
        }
    }

    /// Every row with its history, read back; an unreadable row is an error item.
    pub fn try_iter(&self) -> impl Iterator<Item = io::Result<(WindowRow, History)>> + '_ {
        let reader: Box<dyn Read + '_> = match &self.store {
            Store::File(f, end) => Box::new(FileAt {
                file: f,
                pos: 0,
                end: *end,
            }),
            Store::Mem(v) => Box::new(v.as_slice()),
        };
        BufReader::new(reader).lines().map(|l| {
            let l = l?;
            serde_json::from_str(&l).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
    }

    /// Every row, read back (an unreadable row ends the iteration, with a warning).
    pub fn iter(&self) -> impl Iterator<Item = WindowRow> + '_ {
        self.try_iter().map_while(|r| match r {
            Ok((row, _)) => Some(row),
            Err(e) => {
                tracing::warn!("window rows: cannot read back: {e}");
                None
            }
        })
    }
}

/// Reads `file` from `pos` to `end` with positioned reads, so clones never share an offset.
struct FileAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Serialize for Windows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for r in self.try_iter() {
            let (row, _) = r.map_err(S::Error::custom)?;
            seq.serialize_element(&row)?;
        }
        seq.end()
    }
}

/// A writer that only counts, to check that serialising the spool streams.
#[cfg(test)]
struct Sink(usize);

#[cfg(test)]
impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u64) -> (WindowRow, History) {
        let row = WindowRow {
            t_s: i as f64 + 1.0,
            dt_s: 1.0,
            sent: 100 + i,
            in_flight: i % 7,
            corrected: Percentiles {
                count: 100 + i,
                p99_ms: 0.5 * i as f64,
                ..Default::default()
            },
            cpu_ratio: i.is_multiple_of(2).then_some(0.25),
            server_success: Some(i),
            ..Default::default()
        };
        let h = History {
            locust: vec![1.0, 2.0, i as f64],
            total: Percentiles {
                max_ms: i as f64,
                ..Default::default()
            },
            total_counts: (i, i / 3, 10 * i),
        };
        (row, h)
    }

    fn check(mut w: Windows) {
        let want: Vec<(WindowRow, History)> = (0..500).map(row).collect();
        for (r, h) in &want {
            w.push(r, h);
        }
        assert_eq!(w.len(), 500);
        let got: Vec<(WindowRow, History)> = w.try_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, want);
        // Clones read independently and see the same rows.
        let c = w.clone();
        let mut a = w.iter();
        let mut b = c.iter();
        assert_eq!(a.next().unwrap().sent, 100);
        assert_eq!(b.next().unwrap().sent, 100);
        assert_eq!(a.next().unwrap().sent, 101);
        // Serialised like the Vec of rows it replaces.
        let rows: Vec<WindowRow> = want.into_iter().map(|(r, _)| r).collect();
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            serde_json::to_value(&rows).unwrap()
        );
    }

    #[test]
    fn rows_come_back_in_order_from_a_file() {
        let w = Windows::new();
        assert!(matches!(w.store, Store::File(..)), "tmp is writable here");
        check(w);
    }

    #[test]
    fn rows_come_back_in_order_from_memory() {
        check(Windows::in_memory());
    }

    #[test]
    fn a_file_spool_holds_no_rows_in_memory() {
        let mut w = Windows::new();
        let (r, h) = row(3);
        for _ in 0..5_000 {
            w.push(&r, &h);
        }
        assert_eq!(w.resident_bytes(), 0);
        // The in-memory fallback would hold them all.
        let mut m = Windows::in_memory();
        for _ in 0..5_000 {
            m.push(&r, &h);
        }
        assert!(m.resident_bytes() > 5_000 * 200, "{}", m.resident_bytes());
        // Streaming serialisation writes the same bytes as the in-memory one.
        let mut sink = Sink(0);
        serde_json::to_writer(&mut sink, &w).unwrap();
        assert_eq!(sink.0, serde_json::to_vec(&m).unwrap().len());
    }

    #[test]
    fn a_corrupt_row_is_an_error_not_a_silent_gap() {
        let mut w = Windows::in_memory();
        let (r, h) = row(1);
        w.push(&r, &h);
        if let Store::Mem(v) = &mut w.store {
            Arc::make_mut(v).extend_from_slice(b"{not json\n");
        }
        w.len += 1;
        let got: Vec<_> = w.try_iter().collect();
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
        assert!(serde_json::to_string(&w).is_err());
    }
}
