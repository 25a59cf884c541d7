//! Cross-component end-to-end tests for KIS, run against real processes.
//!
//! The harness here starts a real Kubernetes control plane on loopback ([`cluster`]): etcd,
//! kube-apiserver and kube-controller-manager v1.20.2 built from Debian's source package, with a
//! throwaway PKI ([`pki`]), driven through Debian's kubectl ([`kubectl`]). Every process runs in
//! its own process group under a parent-death watchdog ([`proc`]), so nothing outlives the test
//! binary. The integration tests in `tests/` use it to check RBAC, the API aggregator and the
//! stock HPA acting on kis-adapter.

pub mod adapter;
pub mod cluster;
pub mod kubectl;
pub mod pki;
pub mod proc;

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong while setting up or driving the real processes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required binary or cache entry is absent.
    #[error("{0}")]
    Missing(String),
    /// A process could not be started or talked to.
    #[error("cannot run {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, #[source] std::io::Error),
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
}
