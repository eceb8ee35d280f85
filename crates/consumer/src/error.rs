//! The consumer's errors, and what a database failure means for it: a fault that can pass (wait and retry),
//! data the database refused (dead-letter it), or a configuration the operator must fix (stop). The storage
//! layer classifies every dialect's errors once ([`colloquy_storage::ErrorKind`]); this maps its kinds onto
//! the consumer's three decisions.

use colloquy_storage::ErrorKind;

/// Errors of the consumer service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed; the message ends with the database's own.
    #[error(transparent)]
    Storage(colloquy_storage::Error),
    /// A stop was requested while the database kept failing, and it still failed when the shutdown grace
    /// period ended: the batch in hand was not stored and not acknowledged, so the broker delivers it again.
    #[error(
        "{events} messages were not stored before shutdown, the database still failing ({cause}); they stay in \
         the queue"
    )]
    Unstored {
        /// How many messages stayed unacknowledged.
        events: usize,
        /// The database's last failure.
        cause: Box<Error>,
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

/// What a database failure means for the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// It can pass without anyone acting on the data or the configuration: the database is down, starting,
    /// restarting, busy, full or read-only. Wait and retry, holding the deliveries unacknowledged.
    Transient,
    /// The database refused this data (an invalid value, a constraint): dead-letter the message.
    Refused,
    /// It cannot pass until the operator acts: refused credentials, a missing database, table, column or
    /// unique index, a permission. Stop (exit code 2).
    Configuration,
}

impl Error {
    /// The error and all its causes in one line, `: `-separated: what to show a user or write in a log.
    /// (`Display` alone shows this error's own message; the causes are its [`source`](std::error::Error::source)
    /// chain, as with the broker's [`colloquy_broker::Error::chain`].)
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// Whether retrying the same operation later can succeed without anyone acting: the database was
    /// unreachable, starting, busy, full or read-only.
    pub fn is_transient(&self) -> bool {
        self.fault() == Some(Fault::Transient)
    }

    /// Whether the database refused the data itself (an invalid value, a constraint): the row will never be
    /// stored as it is, the others can be.
    pub fn is_refused(&self) -> bool {
        self.fault() == Some(Fault::Refused)
    }

    /// Whether the configuration is at fault and only the operator can fix it: an unsupported URL, refused
    /// credentials, a missing database, table, column or unique index, a permission, a migration that does
    /// not match the database. Such a failure ends the consumer with exit code 2.
    pub fn is_configuration(&self) -> bool {
        self.fault() == Some(Fault::Configuration)
    }

    /// What a database failure means; `None` for failures that are not the database's.
    fn fault(&self) -> Option<Fault> {
        match self {
            Error::Storage(error) => Some(match error.kind() {
                ErrorKind::Transient => Fault::Transient,
                ErrorKind::Config | ErrorKind::SchemaMissing => Fault::Configuration,
                // An unknown database error counts as a refusal of the data: the batch is then stored row by
                // row and what is refused is dead-lettered, which loses nothing.
                _ => Fault::Refused,
            }),
            Error::Unstored { cause, .. } => cause.fault(),
            _ => None,
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
