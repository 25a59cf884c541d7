//! Cross-component end-to-end tests for KIS, run against real processes.
//!
//! The harness here starts a real Kubernetes control plane on loopback ([`cluster`]): etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 built from Debian's source
//! package, with a throwaway PKI ([`pki`]), driven through Debian's kubectl ([`kubectl`]). Every
//! process runs in its own process group under a parent-death watchdog ([`proc`]), so nothing
//! outlives the test binary. The integration tests in `tests/` use it to check RBAC, the API
//! aggregator and the stock HPA acting on kis-adapter.
//!
//! [`testbed`] adds the one stand-in, the process kubelet ([`kubelet`]), which runs every Pod as
//! a real Triton server serving the emulated accelerator ([`emulated`]), scraped by Prometheus
//! ([`prometheus`]) and behind nginx ([`balancer`]): a live cluster on one machine, brought up and down by the `kis-e2e testbed` command.

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

pub mod adapter;
pub mod balancer;
pub mod cluster;
pub mod emulated;
pub mod kubectl;
pub mod kubelet;
pub mod pki;
pub mod proc;
pub mod prometheus;
pub mod refresher;
pub mod testbed;

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while setting up or driving the real processes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required binary or cache entry is absent.
    #[error("{0}")]
    Missing(String),
    // The OS error is part of the message and not also a `source`: these errors end up in
    // `panic!("{e}")` and `to_string()`, which print no chain, while a chain printer (anyhow)
    // would print a cause that is both in the message and the source twice.
    /// A process could not be started or talked to.
    #[error("cannot run {0}: {1}")]
    Spawn(String, std::io::Error),
    /// A file could not be read or written.
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    /// A command exited with a failure.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// A supervised process exited while it should be running.
    #[error("{name} exited ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Process name.
        name: String,
        /// Exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// A bounded wait ran out.
    #[error("timed out waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The last observed state.
        last: String,
    },
    /// Output that could not be parsed.
    #[error("cannot parse the output of {0}: {1}")]
    Parse(String, String),
    /// An inconsistent setting.
    #[error("bad configuration: {0}")]
    Config(String),
}

/// Polls `check` every 250 ms until it returns `Ok`, for at most `timeout`. `Err(state)` means
/// "not yet" and describes what was seen; the last one is reported on time-out. Built on
/// [`kis_fixtures::poll_until`], the one bounded poll of the test crates.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> Result<T, String>,
) -> Result<T, Error> {
    let (Ok(last) | Err(last)) =
        kis_fixtures::poll_until(timeout, Duration::from_millis(250), check, Result::is_ok);
    last.map_err(|last| Error::Timeout {
        what: what.to_string(),
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_the_value_or_the_last_state() {
        let mut n = 0;
        let v = wait_until("n to reach 3", Duration::from_secs(10), || {
            n += 1;
            if n >= 3 { Ok(n) } else { Err(format!("n={n}")) }
        })
        .unwrap();
        assert_eq!(v, 3);

        let err = wait_until::<()>("never", Duration::from_millis(300), || {
            Err("still no".into())
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("never") && msg.contains("still no"), "{msg}");
    }

    #[test]
    fn errors_state_their_cause_once() {
        use std::error::Error as _;
        let os = || std::io::Error::from(std::io::ErrorKind::NotFound);
        for e in [
            Error::Spawn("kubectl".into(), os()),
            Error::Io(PathBuf::from("/x/y"), os()),
        ] {
            let msg = e.to_string();
            let cause = os().to_string();
            assert_eq!(msg.matches(&cause).count(), 1, "{msg}");
            // No source either, so a chain printer does not print it a second time.
            assert!(e.source().is_none(), "{msg}");
        }
    }
}
