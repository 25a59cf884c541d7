//! The crate's error type: one line each, naming the file and what is wrong with it.

use std::path::PathBuf;

/// Errors of reading, checking and running a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read or written.
    #[error("cannot access {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something is wrong inside a named file (the source says what).
    #[error("{}", .path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<Error>,
    },
    /// Not a file of this kind, truncated, or failing its checksum.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// A well-formed policy that does not fit the environment (observation spec, action space).
    #[error("incompatible: {0}")]
    Incompatible(String),
    /// A caller passed buffers or settings that do not fit together.
    #[error("invalid: {0}")]
    Invalid(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Attaches the file name to an error about that file's content.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Error {
        match self {
            e @ (Error::Io { .. } | Error::InFile { .. }) => e,
            e => Error::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }
}
