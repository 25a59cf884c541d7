//! The library's error type: every variant prints as one line that names the problem. A variant
//! with a cause (`#[source]`) names only its own context; callers print the chain
//! (`anyhow`'s `{:#}`: "context: cause"), so the cause is never repeated.

use std::path::PathBuf;

/// Everything that can stop a run before or while it starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag value or combination that cannot work.
    #[error("{0}")]
    Usage(String),
    /// The traffic shape was rejected by kis-traffic (its message names the field or file).
    #[error(transparent)]
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
    #[error("{flag} {}", path.display())]
    File {
        /// The flag that named the file (`--input`, `--json`, ...).
        flag: &'static str,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A variant with a source names only its context; the chain shows the cause once.
    #[test]
    fn displays_do_not_repeat_their_source() {
        let e = Error::File {
            flag: "--input",
            path: "/nonexistent".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let own = e.to_string();
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(own, "--input /nonexistent");
        assert_eq!(
            format!("{:#}", anyhow::Error::from(e)),
            format!("{own}: {cause}")
        );
        // A kis-traffic error is shown as it is, once.
        let shape = kis_traffic::ShapeSpec::Constant {
            rate: -1.0,
            duration: 1.0,
        }
        .build(1)
        .unwrap_err();
        let text = shape.to_string();
        let e = Error::from(shape);
        assert_eq!(format!("{:#}", anyhow::Error::from(e)), text);
    }
}
