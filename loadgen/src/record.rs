//! Recording of request outcomes into HDR histograms, merged once per window.
//!
//! No sample is ever stored: each generator thread records into its own [`Window`] (no lock, no
//! shared atomic per request) and hands it over through its [`Handover`] when the collector asks,
//! once a second.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest recordable value: 1 h, in microseconds (the unit of every histogram here), so that
/// any `--timeout` up to an hour is recorded as it was.
pub const MAX_US: u64 = 3_600_000_000;

/// A new histogram covering 1 µs to 1 h with 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds are valid")
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// Why a request did not succeed (errors are counted by kind, never by message text).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The server answered with a non-2xx status.
    Status,
    /// No TCP connection could be made.
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection failed while sending or receiving.
    Io,
    /// Still in flight when the drain bound after a stop ran out.
    Aborted,
    /// The answer was not valid HTTP/1.1.
    Protocol,
}

impl ErrorKind {
    /// Every kind, for stable label sets.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Status,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Io,
        ErrorKind::Aborted,
        ErrorKind::Protocol,
    ];

    /// The lowercase label used in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Status => "status",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Aborted => "aborted",
            ErrorKind::Protocol => "protocol",
        }
    }
}

/// What happened to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok {
        /// The HTTP status.
        status: u16,
    },
    /// A non-2xx answer.
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// No answer.
    Failed(ErrorKind),
}

/// Stretches of at least [`Gaps::MIN`] in which a busy-polling dispatcher did not run: the host
/// descheduled its thread (another process, or a vCPU stall on a VM) or its own work held it. Every arrival
/// due in such a stretch is sent late whatever the server does, so these tell generator lag from
/// server backlog. Only `--busy-poll` records them (a sleeping dispatcher's gaps are its sleeps).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Gaps {
    /// How many gaps.
    pub count: u64,
    /// Their summed length, µs.
    pub total_us: u64,
    /// The longest, µs.
    pub max_us: u64,
}

impl Gaps {
    /// The shortest stretch counted: the late-send threshold, so one gap can make sends late.
    pub const MIN: Duration = Duration::from_millis(1);

    /// Counts `d` if it is at least [`Gaps::MIN`].
    pub fn record(&mut self, d: Duration) {
        if d >= Gaps::MIN {
            let u = d.as_micros() as u64;
            self.count += 1;
            self.total_us += u;
            self.max_us = self.max_us.max(u);
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Gaps) {
        self.count += other.count;
        self.total_us += other.total_us;
        self.max_us = self.max_us.max(other.max_us);
    }
}

/// `a.f += b.f` for each field `f` named: counters summed field by field (window counts, window
/// rows of several shards).
macro_rules! add_fields {
    ($a:expr, $b:expr; $($f:ident),+ $(,)?) => {
        $( $a.$f += $b.$f; )+
    };
}
pub(crate) use add_fields;

/// Counters for one window (or, summed, for the run).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Requests whose send started.
    pub sent: u64,
    /// Requests with an outcome (ok or error).
    pub completed: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Everything that was not a 2xx answer.
    pub errors: u64,
    /// Sends more than 1 ms after their intended time.
    pub late_sends: u64,
    /// Of those, the ones whose arrival fell due while every connection was busy (it waited
    /// for a connection, not for the generator).
    pub late_waited: u64,
    /// Sends made after the schedule's end (a catch-up of arrivals due before it).
    pub after_end: u64,
    /// Response body bytes received.
    pub bytes_in: u64,
    /// Errors by kind.
    pub by_kind: BTreeMap<ErrorKind, u64>,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Stretches the busy-polling dispatcher did not run.
    pub dispatcher_gaps: Gaps,
}

impl Counts {
    /// The errors as Locust's failure rows: one per non-2xx status (`HTTP 500`) and one per
    /// other kind (`timeout`, `connect`, ...), with their counts.
    pub fn failures(&self) -> Vec<(String, u64)> {
        let statuses = self
            .by_status
            .iter()
            .filter(|(k, n)| !(200..300).contains(*k) && **n > 0)
            .map(|(k, n)| (format!("HTTP {k}"), *n));
        let kinds = self
            .by_kind
            .iter()
            .filter(|(k, n)| **k != ErrorKind::Status && **n > 0)
            .map(|(k, n)| (k.as_str().to_string(), *n));
        statuses.chain(kinds).collect()
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        add_fields!(self, other; sent, completed, ok, errors, late_sends, late_waited, after_end, bytes_in);
        self.dispatcher_gaps.add(&other.dispatcher_gaps);
        for (k, v) in &other.by_kind {
            *self.by_kind.entry(*k).or_default() += v;
        }
        for (k, v) in &other.by_status {
            *self.by_status.entry(*k).or_default() += v;
        }
    }
}

/// The three latency views of a window.
#[derive(Debug)]
pub struct Hists {
    /// End minus intended start (coordinated-omission corrected).
    pub corrected: Histogram<u64>,
    /// End minus actual send.
    pub service: Histogram<u64>,
    /// Actual send minus intended send.
    pub lag: Histogram<u64>,
}

/// [`Hists`] alive now, and the most alive at once since [`hists_peak_reset`]: a few hundred
/// kB each, made per window or interval, never per request (`kis-loadgen merge` is tested to
/// hold a number of them that does not grow with the run's length).
static HISTS_LIVE: AtomicUsize = AtomicUsize::new(0);
static HISTS_PEAK: AtomicUsize = AtomicUsize::new(0);

/// The most [`Hists`] alive at once since the last [`hists_peak_reset`].
pub fn hists_peak() -> usize {
    HISTS_PEAK.load(Ordering::Relaxed)
}

/// Starts a new [`hists_peak`] from the number alive now.
pub fn hists_peak_reset() {
    HISTS_PEAK.store(HISTS_LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn hists_born() {
    let now = HISTS_LIVE.fetch_add(1, Ordering::Relaxed) + 1;
    HISTS_PEAK.fetch_max(now, Ordering::Relaxed);
}

impl Default for Hists {
    fn default() -> Self {
        hists_born();
        Hists {
            corrected: new_hist(),
            service: new_hist(),
            lag: new_hist(),
        }
    }
}

impl Clone for Hists {
    fn clone(&self) -> Self {
        hists_born();
        Hists {
            corrected: self.corrected.clone(),
            service: self.service.clone(),
            lag: self.lag.clone(),
        }
    }
}

impl Drop for Hists {
    fn drop(&mut self) {
        HISTS_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hists {
    /// Adds `other` into `self` (same bounds, cannot fail).
    pub fn add(&mut self, other: &Hists) {
        let _ = self.corrected.add(&other.corrected);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
    }

    /// Empties every histogram, keeping the allocation.
    pub fn reset(&mut self) {
        self.corrected.reset();
        self.service.reset();
        self.lag.reset();
    }
}

/// What one generator thread collected since the last swap.
#[derive(Debug, Default)]
pub struct Window {
    /// Latencies.
    pub hists: Hists,
    /// Counters.
    pub counts: Counts,
}

impl Window {
    /// Counts a send, with its lag behind the intended time; `after_end`: made after the
    /// schedule's end; `waited`: its arrival fell due while every connection was busy.
    pub fn sent(&mut self, lag: Duration, after_end: bool, waited: bool) {
        self.counts.sent += 1;
        self.counts.after_end += u64::from(after_end);
        if lag > Duration::from_millis(1) {
            self.counts.late_sends += 1;
            self.counts.late_waited += u64::from(waited);
        }
        let _ = self.hists.lag.record(us(lag));
    }

    /// Records a finished request: `corrected` = end − intended, `service` = end − send.
    pub fn finished(
        &mut self,
        corrected: Duration,
        service: Duration,
        outcome: Outcome,
        bytes: u64,
    ) {
        let _ = self.hists.corrected.record(us(corrected));
        let _ = self.hists.service.record(us(service));
        let c = &mut self.counts;
        c.completed += 1;
        c.bytes_in += bytes;
        match outcome {
            Outcome::Ok { status } => {
                c.ok += 1;
                *c.by_status.entry(status).or_default() += 1;
            }
            Outcome::Status { status } => {
                c.errors += 1;
                *c.by_status.entry(status).or_default() += 1;
                *c.by_kind.entry(ErrorKind::Status).or_default() += 1;
            }
            Outcome::Failed(kind) => {
                c.errors += 1;
                *c.by_kind.entry(kind).or_default() += 1;
            }
        }
    }

    /// Notes that the dispatcher last ran `d` ago (counted when at least [`Gaps::MIN`]).
    pub fn dispatcher_ran_after(&mut self, d: Duration) {
        self.counts.dispatcher_gaps.record(d);
    }

    /// Counts requests that never got an answer for `kind` without latency (aborted at drain).
    pub fn failed_uncharged(&mut self, kind: ErrorKind, n: u64) {
        self.counts.completed += n;
        self.counts.errors += n;
        *self.counts.by_kind.entry(kind).or_default() += n;
    }

    /// Moves this window into `into` (adding) and starts a new one, keeping the allocations.
    pub fn drain_into(&mut self, into: &mut Window) {
        into.hists.add(&self.hists);
        into.counts.add(&self.counts);
        self.hists.reset();
        self.counts = Counts::default();
    }
}

/// A window behind a mutex: where a generator thread publishes what it recorded, for the
/// collector to take once a second. Requests never touch it (they record into the thread's own
/// window); only the once-a-second hand-over locks it, so it is never contended per request.
#[derive(Debug, Default)]
pub struct Handover {
    inner: Mutex<Window>,
}

impl Handover {
    /// Adds `w` into the hand-over and empties `w`.
    pub fn publish(&self, w: &mut Window) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        w.drain_into(&mut s);
    }

    /// Moves the handed-over window into `into` (adding) and starts a new one.
    pub fn drain_into(&self, into: &mut Window) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.drain_into(into);
    }
}

/// Percentiles of one latency view, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Smallest.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Microseconds to milliseconds.
pub fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

impl Percentiles {
    /// Summarises `h` (microseconds).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            min_ms: ms(h.min()),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handover_counts_outcomes_by_kind_and_status() {
        let mut local = Window::default();
        local.sent(Duration::from_micros(10), false, false);
        local.sent(Duration::from_millis(3), true, true);
        let d = Duration::from_millis(2);
        local.finished(d, d, Outcome::Ok { status: 200 }, 10);
        local.finished(d, d, Outcome::Status { status: 400 }, 5);
        local.finished(d, d, Outcome::Failed(ErrorKind::Timeout), 0);
        let s = Handover::default();
        s.publish(&mut local);
        assert_eq!(local.counts, Counts::default(), "published and emptied");
        let mut w = Window::default();
        s.drain_into(&mut w);
        assert_eq!(w.counts.sent, 2);
        assert_eq!(w.counts.late_sends, 1);
        assert_eq!(w.counts.late_waited, 1);
        assert_eq!(w.counts.after_end, 1);
        assert_eq!(w.counts.completed, 3);
        assert_eq!(w.counts.ok, 1);
        assert_eq!(w.counts.errors, 2);
        assert_eq!(w.counts.bytes_in, 15);
        assert_eq!(w.counts.by_status[&400], 1);
        assert_eq!(w.counts.by_kind[&ErrorKind::Timeout], 1);
        assert_eq!(w.hists.corrected.len(), 3);
        // The swap left the hand-over empty.
        let mut again = Window::default();
        s.drain_into(&mut again);
        assert_eq!(again.counts, Counts::default());
        assert!(again.hists.corrected.is_empty());
    }

    #[test]
    fn gaps_count_from_one_ms_and_merge_by_sum_and_max() {
        let mut a = Window::default();
        a.dispatcher_ran_after(Duration::from_micros(999));
        assert_eq!(
            a.counts.dispatcher_gaps,
            Gaps::default(),
            "under 1 ms is no gap"
        );
        a.dispatcher_ran_after(Duration::from_millis(1));
        a.dispatcher_ran_after(Duration::from_micros(4_500));
        let mut b = Window::default();
        b.dispatcher_ran_after(Duration::from_millis(2));
        let s = Handover::default();
        s.publish(&mut a);
        s.publish(&mut b);
        let mut w = Window::default();
        s.drain_into(&mut w);
        assert_eq!(
            w.counts.dispatcher_gaps,
            Gaps {
                count: 3,
                total_us: 7_500,
                max_us: 4_500
            }
        );
        assert_eq!(
            a.counts.dispatcher_gaps,
            Gaps::default(),
            "published and emptied"
        );
    }

    #[test]
    fn percentiles_are_within_hdr_precision() {
        let mut h = new_hist();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap(); // 10 µs .. 100 ms
        }
        let p = Percentiles::of(&h);
        assert!((p.p50_ms - 50.0).abs() / 50.0 < 0.002, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() / 99.0 < 0.002, "{p:?}");
        assert_eq!(p.count, 10_000);
    }
}
