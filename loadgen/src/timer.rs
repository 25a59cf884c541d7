//! A precise one-shot timer for the open-loop dispatcher: a Linux `timerfd` on
//! `CLOCK_MONOTONIC` armed with absolute deadlines and awaited through tokio's reactor.
//!
//! tokio's own timer rounds to whole milliseconds, which alone would put the send lag of an
//! open loop near 1 ms; a timerfd fires within microseconds of its deadline and, being an fd, is
//! awaited by the same epoll call that waits for the sockets, so a generator thread never needs a
//! second thread to pace it. Deadlines are absolute, so re-arming never accumulates error.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::clock_gettime;
use tokio::io::unix::AsyncFd;

/// The timerfd, as tokio's reactor wants it.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A timerfd registered with the current tokio runtime (create it inside one).
pub struct Timer {
    fd: AsyncFd<Fd>,
    /// The same moment read from `Instant` and from `CLOCK_MONOTONIC` (what `Instant` uses on
    /// Linux), to turn `Instant` deadlines into the timerfd's clock.
    base: (Instant, Duration),
    armed: Cell<Option<Instant>>,
}

fn monotonic_now() -> io::Result<Duration> {
    let ts = clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    Ok(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32))
}

/// Lets timers of this thread (epoll timeouts included) fire within 1 ns of their deadline
/// instead of the default 50 µs slack. Best effort: without it timers are just less precise.
pub fn tighten_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

impl Timer {
    /// A new, disarmed timer.
    pub fn new() -> io::Result<Timer> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let base = (Instant::now(), monotonic_now()?);
        // `with_interest` is deprecated for I/O safety: the fd must stay open while registered.
        // It does: the TimerFd is owned by the AsyncFd and closed only after deregistration.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(Fd(fd), tokio::io::Interest::READABLE)?;
        Ok(Timer {
            fd,
            base,
            armed: Cell::new(None),
        })
    }

    /// Arms the timer for `at` (a past `at` fires at once); re-arming for the same deadline is
    /// free.
    pub fn arm(&self, at: Instant) -> io::Result<()> {
        if self.armed.get() == Some(at) {
            return Ok(());
        }
        let (i0, m0) = self.base;
        let mono = match at.checked_duration_since(i0) {
            Some(d) => m0 + d,
            None => m0.saturating_sub(i0 - at),
        }
        // A zero deadline would disarm; any real deadline is far above it.
        .max(Duration::from_nanos(1));
        self.fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(mono)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )?;
        self.armed.set(Some(at));
        Ok(())
    }

    /// Waits until the armed deadline has passed (forever if the timer is not armed).
    pub async fn wait(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match nix::unistd::read(self.fd.get_ref().0.as_fd(), &mut count) {
                Ok(_) => {
                    // The read drained the fd, so the next wait can go straight to the reactor
                    // (no second read that would only say EAGAIN). Nothing can arrive in
                    // between: this thread's reactor runs only when this task yields.
                    guard.clear_ready();
                    self.armed.set(None);
                    return Ok(());
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_absolute_deadlines_not_before() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tighten_timer_slack();
            let t = Timer::new().unwrap();
            let start = Instant::now();
            let mut late = Vec::new();
            for i in 1..=20u32 {
                let at = start + Duration::from_micros(1500) * i;
                t.arm(at).unwrap();
                t.wait().await.unwrap();
                let now = Instant::now();
                assert!(now >= at, "fired {:?} early", at - now);
                late.push(now - at);
            }
            late.sort();
            // Generous for a loaded CI machine; the bench measures the real figure.
            assert!(
                late[10] < Duration::from_millis(5),
                "median lateness {:?}",
                late[10]
            );
            // A deadline in the past fires at once.
            t.arm(start).unwrap();
            tokio::time::timeout(Duration::from_secs(1), t.wait())
                .await
                .expect("a past deadline fires")
                .unwrap();
        });
    }
}
