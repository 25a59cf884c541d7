//! Process supervision for the control plane and the adapter: kis-fixtures' [`Supervised`] and
//! [`Watchdog`] (one implementation for every real-process fixture), with this crate's errors.

pub use kis_fixtures::proc::{ProcError, StopMode, Supervised, Watchdog, log_tail};

use crate::Error;

impl From<ProcError> for Error {
    fn from(e: ProcError) -> Self {
        match e {
            ProcError::Exited {
                name,
                status,
                log_tail,
            } => Error::Exited {
                name,
                status,
                log_tail,
            },
            ProcError::Spawn { what, source } => Error::Spawn(what, source),
            other => Error::Missing(other.to_string()),
        }
    }
}

/// A free TCP port on 127.0.0.1 that this process has not handed out before.
pub fn free_port() -> Result<u16, Error> {
    Ok(kis_fixtures::free_port())
}
