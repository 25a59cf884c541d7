//! The shards' interval logs and window rows read side by side, step by step, for `merge`.
//!
//! Each shard's interval log is in time order and its window rows are in order, so the merge
//! needs one entry and one row per shard at a time. A step `k` is interval `k` (every shard's
//! entries whose start rounds to `k` s, summed) and row `k` (every shard's `k`-th row, in shard
//! order, for the caller to add up: their floating-point fields must be summed in one order
//! whatever the number of threads). With more than one thread the shards are split into
//! contiguous groups, each read and decoded by a worker thread that sends its part of each step
//! over a bounded channel; the caller's thread adds the parts. Memory: a few steps' sums and
//! rows, one entry and one row read ahead per shard and each shard's own send-lag counts,
//! whatever the number of intervals.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::hdr::{Decoder, Parts, Slots};
use super::json::Rows;
use crate::error::{Error, Result};
use crate::report::WindowRow;

/// What merge knows of a shard before streaming it.
pub(crate) struct ShardFiles<'a> {
    /// Its interval log.
    pub(crate) log: &'a Path,
    /// Its JSON report and the byte offset of the report's `windows` array.
    pub(crate) json: &'a Path,
    pub(crate) windows_at: Option<u64>,
    /// The first word of the comment that names a shard in a log (after the `#`), and the
    /// comment this shard's log must carry (without the `#`).
    pub(crate) id_word: &'a str,
    pub(crate) identity: String,
    /// Its report, for messages.
    pub(crate) name: String,
}

/// One step: interval `k`'s sum over the shards (`None`: no shard has an entry for it) and
/// row `k` of every shard that has one, in shard order.
pub(crate) struct Step<'s> {
    pub(crate) k: u64,
    pub(crate) sum: Option<&'s Parts>,
    pub(crate) rows: &'s [WindowRow],
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{}: {why}", path.display()))
}

/// What an interval entry's tag says it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Corrected,
    Service,
    Lag,
    Other,
}

/// One shard's interval log, read one entry ahead (a run writes it in time order).
struct LogStream<'a> {
    path: &'a Path,
    reader: BufReader<File>,
    line: Vec<u8>,
    /// Index of the last interval read.
    last: Option<u64>,
    /// The next entry: its interval (whole seconds from the shard's time zero) and kind; its
    /// histogram's base64 text is in `text`.
    ahead: Option<(u64, Kind)>,
    text: Vec<u8>,
}

impl<'a> LogStream<'a> {
    /// Opens the log and reads up to its first interval; checks it names the shard `identity`
    /// (the comment comes before any interval).
    fn open(f: &ShardFiles<'a>) -> Result<LogStream<'a>> {
        let file = File::open(f.log).map_err(|e| bad(f.log, format!("cannot read ({e})")))?;
        let mut s = LogStream {
            path: f.log,
            reader: BufReader::with_capacity(32 * 1024, file),
            line: Vec::new(),
            last: None,
            ahead: None,
            text: Vec::new(),
        };
        let mut id_line = None;
        let prefix = format!("#{}", f.id_word);
        s.read_ahead(|comment| {
            if id_line.is_none() && comment.starts_with(&prefix) {
                id_line = Some(comment[1..].trim().to_string());
            }
        })?;
        if id_line.as_deref() != Some(f.identity.as_str()) {
            return Err(bad(
                f.log,
                format!(
                    "names {:?}, its report {} says {:?}",
                    id_line.unwrap_or_else(|| "no shard".into()),
                    f.name,
                    f.identity
                ),
            ));
        }
        Ok(s)
    }

    /// Reads lines until the next interval (into `ahead`) or the end, showing comments to `f`.
    fn read_ahead(&mut self, mut f: impl FnMut(&str)) -> Result<()> {
        self.ahead = None;
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|e| bad(self.path, format!("cannot read ({e})")))?;
            if n == 0 {
                return Ok(());
            }
            if self.line.starts_with(b"#") {
                f(String::from_utf8_lossy(&self.line).trim_end_matches(['\n', '\r']));
                continue;
            }
            // The log's parser wants each line ended.
            if !self.line.ends_with(b"\n") {
                self.line.push(b'\n');
            }
            let mut found = None;
            for entry in IntervalLogIterator::new(&self.line) {
                let entry = entry
                    .map_err(|e| bad(self.path, format!("not an HDR interval log ({e:?})")))?;
                if let LogEntry::Interval(h) = entry {
                    let kind = match h.tag().map(|t| t.as_str()) {
                        Some("corrected") => Kind::Corrected,
                        Some("service") => Kind::Service,
                        Some("lag") => Kind::Lag,
                        _ => Kind::Other,
                    };
                    self.text.clear();
                    self.text
                        .extend_from_slice(h.encoded_histogram().as_bytes());
                    found = Some((kind, h.start_timestamp()));
                }
            }
            if let Some((kind, start)) = found {
                // Windows are 1 s from the shard's time zero: the interval's start names it.
                let idx = start.as_secs_f64().round() as u64;
                if let Some(b) = self.last.filter(|b| idx < *b) {
                    return Err(bad(
                        self.path,
                        format!("interval at {idx} s after one at {b} s: not in time order"),
                    ));
                }
                self.last = Some(idx);
                self.ahead = Some((idx, kind));
                return Ok(());
            }
        }
    }
}

/// One shard as a group reads it.
struct Shard<'a> {
    /// Its position among the inputs.
    input: usize,
    log: LogStream<'a>,
    json: &'a Path,
    rows: Option<Rows<WindowRow>>,
    /// Its next row (`None`: no more).
    row: Option<WindowRow>,
    /// Its own send-lag counts over the run.
    own: Slots,
}

impl<'a> Shard<'a> {
    fn open(input: usize, f: &ShardFiles<'a>) -> Result<Shard<'a>> {
        let mut s = Shard {
            input,
            log: LogStream::open(f)?,
            json: f.json,
            rows: match f.windows_at {
                Some(at) => Some(Rows::open(f.json, at).map_err(|e| bad(f.json, e))?),
                None => None,
            },
            row: None,
            own: Slots::default(),
        };
        s.next_row()?;
        Ok(s)
    }

    /// Reads its next row into `row`.
    fn next_row(&mut self) -> Result<()> {
        self.row = match &mut self.rows {
            Some(r) => r
                .next_row()
                .map_err(|e| bad(self.json, format!("window rows: {e}")))?,
            None => None,
        };
        Ok(())
    }
}

/// A worker's share of the shards (contiguous, in input order), and the next row to read.
struct Group<'a> {
    shards: Vec<Shard<'a>>,
    decoder: Decoder,
    row: u64,
}

/// A group's part of one step (sent by a worker thread; sent back to be reused).
#[derive(Default)]
struct Part {
    k: u64,
    /// Whether any of its shards had an entry for interval `k` (summed into `sums`).
    has: bool,
    sums: Parts,
    rows: Vec<WindowRow>,
}

impl<'a> Group<'a> {
    /// The next step any of its shards has something for.
    fn next(&self) -> Option<u64> {
        let log = self
            .shards
            .iter()
            .filter_map(|s| s.log.ahead.map(|a| a.0))
            .min();
        let row = self
            .shards
            .iter()
            .any(|s| s.row.is_some())
            .then_some(self.row);
        match (log, row) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Step `p.k` of its shards into `p` (emptied first), and reads on.
    fn step(&mut self, p: &mut Part) -> Result<()> {
        p.sums.reset();
        p.rows.clear();
        p.has = false;
        let k = p.k;
        for s in &mut self.shards {
            while let Some((_, kind)) = s.log.ahead.filter(|a| a.0 == k) {
                let text = &s.log.text;
                let added = match kind {
                    Kind::Corrected => self.decoder.add(text, &mut [&mut p.sums.corrected]),
                    Kind::Service => self.decoder.add(text, &mut [&mut p.sums.service]),
                    Kind::Lag => self.decoder.add(text, &mut [&mut p.sums.lag, &mut s.own]),
                    Kind::Other => Ok(()),
                };
                added.map_err(|e| bad(s.log.path, e))?;
                p.has = true;
                s.log.read_ahead(|_| {})?;
            }
        }
        if self.row == k && self.shards.iter().any(|s| s.row.is_some()) {
            for s in &mut self.shards {
                if let Some(r) = s.row.take() {
                    p.rows.push(r);
                    s.next_row()?;
                }
            }
            self.row += 1;
        }
        Ok(())
    }

    fn owns(self) -> Vec<(usize, Slots)> {
        self.shards.into_iter().map(|s| (s.input, s.own)).collect()
    }

    /// Runs as a worker: each step's part goes to `tx` (parts come back on `back` to be
    /// reused); returns the shards' own send-lag counts.
    fn work(mut self, tx: &SyncSender<Result<Part>>, back: &Receiver<Part>) -> Vec<(usize, Slots)> {
        while let Some(k) = self.next() {
            let mut p = back.try_recv().unwrap_or_default();
            p.k = k;
            let r = self.step(&mut p).map(|()| p);
            let failed = r.is_err();
            if tx.send(r).is_err() || failed {
                break;
            }
        }
        self.owns()
    }
}

/// Streams `shards` step by step into `f`, on up to `threads` threads; returns each shard's own
/// send-lag counts over the run, in input order.
pub(crate) fn for_each_step(
    shards: &[ShardFiles<'_>],
    threads: usize,
    mut f: impl FnMut(Step<'_>) -> Result<()>,
) -> Result<Vec<Slots>> {
    let workers = threads.clamp(1, 8).min(shards.len().max(1));
    let mut groups: Vec<Group> = Vec::with_capacity(workers);
    for w in 0..workers {
        let (from, to) = (w * shards.len() / workers, (w + 1) * shards.len() / workers);
        groups.push(Group {
            shards: (from..to)
                .map(|k| Shard::open(k, &shards[k]))
                .collect::<Result<_>>()?,
            decoder: Decoder::default(),
            row: 0,
        });
    }
    let mut owns = if groups.len() == 1 {
        let mut g = groups.remove(0);
        let mut p = Part::default();
        while let Some(k) = g.next() {
            p.k = k;
            g.step(&mut p)?;
            f(Step {
                k,
                sum: p.has.then_some(&p.sums),
                rows: &p.rows,
            })?;
        }
        g.owns()
    } else {
        std::thread::scope(|scope| {
            let (mut rx, mut back, mut handles) = (Vec::new(), Vec::new(), Vec::new());
            for g in groups {
                let (tx, r) = sync_channel(1);
                let (b, back_rx) = sync_channel(2);
                rx.push(r);
                back.push(b);
                handles.push(scope.spawn(move || g.work(&tx, &back_rx)));
            }
            combine(&rx, &back, &mut f)?;
            drop(rx);
            let mut owns = Vec::new();
            for h in handles {
                owns.extend(
                    h.join()
                        .map_err(|_| Error::Usage("a merge worker thread panicked".into()))?,
                );
            }
            Ok::<_, Error>(owns)
        })?
    };
    owns.sort_by_key(|(k, _)| *k);
    Ok(owns.into_iter().map(|(_, s)| s).collect())
}

/// Adds the workers' parts of each step (workers in input order) and hands the step to `f`.
fn combine(
    rx: &[Receiver<Result<Part>>],
    back: &[SyncSender<Part>],
    f: &mut impl FnMut(Step<'_>) -> Result<()>,
) -> Result<()> {
    let mut pending: Vec<Option<Part>> = rx.iter().map(|_| None).collect();
    let mut done = vec![false; rx.len()];
    let (mut sum, mut rows) = (Parts::default(), Vec::new());
    loop {
        for w in 0..rx.len() {
            if pending[w].is_none() && !done[w] {
                match rx[w].recv() {
                    Ok(r) => pending[w] = Some(r?),
                    Err(_) => done[w] = true,
                }
            }
        }
        let Some(k) = pending.iter().flatten().map(|p| p.k).min() else {
            return Ok(());
        };
        sum.reset();
        rows.clear();
        let mut has = false;
        for w in 0..rx.len() {
            if let Some(mut p) = pending[w].take_if(|p| p.k == k) {
                if p.has {
                    sum.add(&p.sums);
                    has = true;
                }
                rows.append(&mut p.rows);
                let _ = back[w].try_send(p);
            }
        }
        f(Step {
            k,
            sum: has.then_some(&sum),
            rows: &rows,
        })?;
    }
}
