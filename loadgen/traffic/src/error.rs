//! Errors of kis-traffic: every message names the field, file or line at fault.

use std::path::PathBuf;

/// What went wrong building a shape or reading a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shape parameter is out of range.
    #[error("{field} must be {expected}, got {value}")]
    Invalid {
        /// The parameter, as `pattern.field`.
        field: &'static str,
        /// What would have been accepted.
        expected: &'static str,
        /// The value given.
        value: f64,
    },
    /// Not one of the known patterns.
    #[error(
        "unknown pattern '{0}' (expected one of constant, ramp, periodic, random, spike, trace)"
    )]
    UnknownPattern(String),
    /// Not one of the known arrival kinds.
    #[error("unknown arrival process '{0}' (expected uniform or poisson)")]
    UnknownArrivals(String),
    /// A trace shape without a file.
    #[error("the trace pattern needs a trace file (t_seconds,rate_rps CSV)")]
    MissingTrace,
    /// The trace file cannot be read.
    #[error("cannot read trace {}: {source}", .path.display())]
    TraceIo {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the trace is malformed.
    #[error("trace {} line {line}: {msg}", .path.display())]
    TraceFormat {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        msg: String,
    },
    /// The trace has a header but no data.
    #[error("trace {} has no rows (expected `t_seconds,rate_rps` lines)", .path.display())]
    TraceEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The replay window falls outside the trace.
    #[error(
        "trace {}: the window starting at offset {offset} s is empty (the trace lasts {length} s)",
        .path.display()
    )]
    TraceWindow {
        /// The file.
        path: PathBuf,
        /// Requested offset in trace seconds.
        offset: f64,
        /// Length of the trace in seconds.
        length: f64,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
