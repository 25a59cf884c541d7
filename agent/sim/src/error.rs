//! Errors of the simulator library: invalid configuration, profiles and workloads, each naming the field.

/// What went wrong while building a simulation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration or profile value is out of range; `field` is its dotted path.
    #[error("invalid value for `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `pools.gpu.batching.max_batch`.
        field: String,
        /// Why the value was rejected, including the value.
        reason: String,
    },
    /// The traffic shape could not be built.
    #[error("invalid workload")]
    Workload(#[source] kis_traffic::Error),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result with the simulator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
