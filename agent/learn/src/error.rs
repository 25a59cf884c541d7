//! The learner's error type.

/// Errors of training, checkpointing and device selection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading, checking or writing a policy or checkpoint file.
    #[error(transparent)]
    Policy(#[from] kis_policy::Error),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A checkpoint that does not fit this run.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The requested device cannot be used.
    #[error("device: {0}")]
    Device(String),
    /// Settings that cannot work.
    #[error("config: {0}")]
    Config(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
