//! The library's error type: every variant prints as one line that names the problem.

use std::path::PathBuf;

/// Everything that can stop a run before or while it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag value or combination that cannot work.
    #[error("{0}")]
    Usage(String),
    /// The traffic shape was rejected by kis-traffic.
    #[error("traffic shape: {0}")]
    Shape(#[from] kis_traffic::Error),
    /// The target never answered (connection refused, DNS, timeout).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The target answered but is not ready in time.
    #[error("{url} not ready after {waited_s:.1} s (last answer: {last})")]
    NotReady {
        /// The readiness URL.
        url: String,
        /// Seconds waited.
        waited_s: f64,
        /// Last status or error seen.
        last: String,
    },
    /// The KServe server does not know the model.
    #[error("unknown model {model:?} at {url} (HTTP {status}: {message})")]
    UnknownModel {
        /// Model name.
        model: String,
        /// Server base URL.
        url: String,
        /// Status returned.
        status: u16,
        /// Server's error text.
        message: String,
    },
    /// The model's metadata could not be turned into a request.
    #[error("model {model:?}: {reason}")]
    Model {
        /// Model name.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output could not be produced.
    #[error("writing {what}: {reason}")]
    Output {
        /// Which output.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for errors in how the tool was invoked (exit status 2), false for runtime ones (1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_) | Error::Shape(_))
    }
}
