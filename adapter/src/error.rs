//! Start-up errors of the server: each names the flag or file at fault.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::tls::TlsError;

/// Start-up failures: each names the flag or file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag is wrong (found by [`crate::config::Config::from_cli`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A flag combination or value is wrong.
    #[error("{0}")]
    Flag(String),
    /// A file could not be read.
    #[error("cannot read {flag} {}: {err}", .path.display())]
    Read {
        /// Flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// A certificate, key or CA is unusable.
    #[error("{flag}: {err}")]
    Tls {
        /// Flag or source naming the input.
        flag: &'static str,
        /// Cause.
        err: TlsError,
    },
    /// The kube client could not be configured or the ConfigMap read.
    #[error("{0}")]
    Kube(String),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        err: std::io::Error,
    },
}
