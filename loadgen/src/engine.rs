//! The run: a pacer thread walks the schedule (intended send times from kis-traffic) and hands
//! each arrival to one send loop shared by every worker; closed-loop users feed the same loop
//! from their own think timers. A collector swaps the shards' histograms out once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use tokio::sync::{Semaphore, watch};

use crate::config::{Overflow, Wait};
use crate::http::{Conn, Template};
use crate::record::{Shard, Window};

/// State shared by the pacer, the workers and the collector.
pub struct Shared {
    /// The request.
    pub template: Template,
    /// `host:port`.
    pub authority: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Set on a signal or when the drain bound runs out: stop sending.
    pub stop: AtomicBool,
    /// Recording shards.
    pub shards: Vec<Shard>,
    /// Arrivals the schedule produced (dropped ones included).
    pub scheduled: AtomicU64,
    /// Arrivals not sent because --max-in-flight was reached (drop policy).
    pub dropped: AtomicU64,
    /// Arrivals handed to workers and not finished yet (queued + in flight).
    pub outstanding: AtomicU64,
    /// Requests on the wire.
    pub in_flight: AtomicU64,
    /// Queued arrivals discarded because of a stop.
    pub cancelled: AtomicU64,
    stop_tx: watch::Sender<bool>,
}

impl Shared {
    /// Shared state for `shards` shards.
    pub fn new(template: Template, authority: &str, timeout: Duration, shards: usize) -> Shared {
        Shared {
            template,
            authority: authority.to_string(),
            timeout,
            stop: AtomicBool::new(false),
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            scheduled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            stop_tx: watch::channel(false).0,
        }
    }

    /// Stops scheduling and wakes every waiting worker.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_tx.send_replace(true);
    }

    /// True once a stop was requested.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Moves every shard's window into one.
    pub fn collect(&self) -> Window {
        let mut w = Window::default();
        for s in &self.shards {
            s.drain_into(&mut w);
        }
        w
    }
}

/// Where a worker's next intended send time comes from.
pub enum Source {
    /// Arrivals from the pacer; `gate` limits in-flight requests below the worker count.
    Open {
        /// Intended send times.
        rx: async_channel::Receiver<Instant>,
        /// In-flight limit when it is below the number of workers.
        gate: Option<Arc<Semaphore>>,
    },
    /// A closed-loop user: sends, waits for the answer, thinks, until `deadline`.
    Closed {
        /// Think time.
        wait: Wait,
        /// End of the run.
        deadline: Instant,
        /// Think-time draws.
        rng: rand_pcg::Pcg64,
        /// True before the first request (no think time).
        first: bool,
    },
}

impl Source {
    /// A closed-loop user with its own seeded think times.
    pub fn closed(wait: Wait, deadline: Instant, seed: u64, user: u64) -> Source {
        Source::Closed {
            wait,
            deadline,
            rng: rand_pcg::Pcg64::seed_from_u64(seed ^ user.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            first: true,
        }
    }
}

/// The send loop every worker runs until its source ends or a stop.
pub async fn worker(shared: Arc<Shared>, mut source: Source, shard: usize, keep_alive: bool) {
    let mut conn = Conn::new(&shared.authority);
    if keep_alive {
        let _ = conn.warm().await;
    }
    let mut stop_rx = shared.stop_tx.subscribe();
    let shard = &shared.shards[shard % shared.shards.len()];
    loop {
        // Next intended time (and, when limited, an in-flight slot).
        let (intended, _permit) = match &mut source {
            Source::Open { rx, gate } => {
                let permit = match gate {
                    Some(g) => match g.clone().acquire_owned().await {
                        Ok(p) => Some(p),
                        Err(_) => break,
                    },
                    None => None,
                };
                let Ok(t) = rx.recv().await else { break };
                if shared.stopped() {
                    shared.cancelled.fetch_add(1, Ordering::Relaxed);
                    shared.outstanding.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                (t, permit)
            }
            Source::Closed {
                wait,
                deadline,
                rng,
                first,
            } => {
                if !*first {
                    let think = if wait.max_s > wait.min_s {
                        rng.random_range(wait.min_s..wait.max_s)
                    } else {
                        wait.min_s
                    };
                    if think > 0.0 {
                        let until =
                            (Instant::now() + Duration::from_secs_f64(think)).min(*deadline);
                        tokio::select! {
                            _ = tokio::time::sleep_until(until.into()) => {}
                            _ = stop_rx.wait_for(|s| *s) => break,
                        }
                    }
                }
                *first = false;
                let now = Instant::now();
                if now >= *deadline || shared.stopped() {
                    break;
                }
                shared.scheduled.fetch_add(1, Ordering::Relaxed);
                shared.outstanding.fetch_add(1, Ordering::Relaxed);
                (now, None)
            }
        };
        let sent = Instant::now();
        shard.sent(sent.saturating_duration_since(intended));
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let answer = conn.send(&shared.template, shared.timeout, false).await;
        let end = Instant::now();
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        shared.outstanding.fetch_sub(1, Ordering::Relaxed);
        shard.finished(
            end.saturating_duration_since(intended),
            end.saturating_duration_since(sent),
            answer.outcome,
            answer.bytes,
        );
    }
}

/// Walks `times` (seconds from `t0`) on a dedicated thread, sleeping to each (no accumulated
/// sleeps: each target is absolute), and hands arrivals to the workers.
pub fn pacer(
    shared: Arc<Shared>,
    times: impl Iterator<Item = f64>,
    t0: Instant,
    tx: async_channel::Sender<Instant>,
    max_in_flight: u64,
    overflow: Overflow,
) {
    // Slices bound how long a stop goes unnoticed during a gap in the schedule.
    const SLICE: Duration = Duration::from_millis(20);
    for t in times {
        let target = t0 + Duration::from_secs_f64(t);
        loop {
            if shared.stopped() {
                return;
            }
            let now = Instant::now();
            if now >= target {
                break;
            }
            std::thread::sleep((target - now).min(SLICE));
        }
        shared.scheduled.fetch_add(1, Ordering::Relaxed);
        if overflow == Overflow::Drop && shared.outstanding.load(Ordering::Relaxed) >= max_in_flight
        {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.outstanding.fetch_add(1, Ordering::Relaxed);
        if tx.send_blocking(target).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        let t = Template::new(
            hyper::Method::GET,
            "127.0.0.1:9",
            "/",
            bytes::Bytes::new(),
            &[],
        );
        Arc::new(Shared::new(t, "127.0.0.1:9", Duration::from_secs(1), 1))
    }

    #[test]
    fn pacer_hands_out_absolute_times_and_drops_over_the_limit() {
        let s = shared();
        let (tx, rx) = async_channel::unbounded();
        let t0 = Instant::now();
        let times = (0..50).map(|i| i as f64 * 0.001);
        pacer(s.clone(), times, t0, tx, 20, Overflow::Drop);
        // Nothing consumed the queue, so after 20 outstanding every later arrival is dropped.
        assert_eq!(s.scheduled.load(Ordering::Relaxed), 50);
        assert_eq!(s.dropped.load(Ordering::Relaxed), 30);
        let got: Vec<Instant> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got.len(), 20);
        for (i, t) in got.iter().enumerate() {
            assert_eq!(*t, t0 + Duration::from_secs_f64(i as f64 * 0.001));
        }
        assert!(t0.elapsed() >= Duration::from_millis(49));
    }

    #[test]
    fn pacer_stops_promptly() {
        let s = shared();
        let (tx, _rx) = async_channel::unbounded();
        s.request_stop();
        let start = Instant::now();
        pacer(
            s.clone(),
            [10.0].into_iter(),
            Instant::now(),
            tx,
            1,
            Overflow::Queue,
        );
        assert!(start.elapsed() < Duration::from_millis(100));
        assert_eq!(s.scheduled.load(Ordering::Relaxed), 0);
    }
}
