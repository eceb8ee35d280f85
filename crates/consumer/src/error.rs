//! The consumer's errors.

/// Errors of the consumer service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed (see [`colloquy_storage::Error::kind`] for what it means).
    #[error(transparent)]
    Storage(colloquy_storage::Error),
    /// The broker failed.
    #[error("broker: {0}")]
    Broker(colloquy_broker::Error),
    /// The database stayed unreachable through the shutdown grace period: the batch in hand was not stored
    /// and not acknowledged, so the broker will deliver it again.
    #[error(
        "{events} events were not stored before shutdown (the database did not answer); they stay in the queue"
    )]
    Unstored {
        /// How many messages stayed unacknowledged.
        events: usize,
    },
    /// The HTTP endpoint could not start.
    #[error("cannot serve HTTP on {addr}")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A background task failed unexpectedly.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl Error {
    /// Whether retrying the same operation later can succeed (the database or broker was unreachable, busy or
    /// restarting), as opposed to a problem with the data itself.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Storage(error) => error.is_transient(),
            _ => false,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<colloquy_storage::Error> for Error {
    fn from(error: colloquy_storage::Error) -> Self {
        Error::Storage(error)
    }
}

impl From<colloquy_broker::Error> for Error {
    fn from(error: colloquy_broker::Error) -> Self {
        Error::Broker(error)
    }
}
