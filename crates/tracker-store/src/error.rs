//! The one error type of this crate, with classification methods so that callers never match on variants to
//! decide what to do.

use colloquy_storage::RowError;

/// A boxed source error, so that client types do not leak into the public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the tracker stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another save of the same conversation got there first: the store holds `stored` events, the tracker
    /// expected `expected`. Nothing was written. Retrieve the tracker again and re-apply the new events.
    #[error(
        "conversation `{sender_id}` was saved by someone else in the meantime: the store holds {stored} events, \
         the tracker expected {expected}"
    )]
    Conflict {
        /// The conversation.
        sender_id: String,
        /// How many events the tracker believed were stored.
        expected: u64,
        /// How many events the store holds.
        stored: u64,
    },
    /// A new event cannot be written as a row of Rasa's schema (nothing was written).
    #[error("event {seq} of conversation `{sender_id}` cannot be stored")]
    InvalidEvent {
        /// The conversation.
        sender_id: String,
        /// The event's position in the conversation.
        seq: u64,
        /// Why.
        #[source]
        source: RowError,
    },
    /// A stored row is not a readable event.
    #[error("row {row_id} of conversation `{sender_id}` is not a readable event")]
    StoredEvent {
        /// The conversation.
        sender_id: String,
        /// The row's `id`.
        row_id: i64,
        /// Why.
        #[source]
        source: colloquy_events::Error,
    },
    /// The database failed (see [`colloquy_storage::Error::kind`] for what it means: unreachable, refused
    /// credentials, a missing schema, ...).
    #[error(transparent)]
    Storage(colloquy_storage::Error),
    /// `close` waited for the outbox to drain and gave up: `events` committed events are not confirmed by
    /// the broker yet. They are safe in the outbox; the next store on this database publishes them.
    #[error(
        "{events} saved events were not confirmed by the broker within {seconds} s; they are safe in the \
         outbox and the next start of a store on this database publishes them"
    )]
    Unpublished {
        /// How many events are left in the outbox.
        events: u64,
        /// How long `close` waited.
        seconds: u64,
    },
    /// Redis could not be reached at start-up, after every attempt.
    #[error("Redis at {target} could not be reached after {attempts} attempts")]
    Unavailable {
        /// Host, port and database number (no credentials).
        target: String,
        /// How many attempts were made.
        attempts: usize,
        /// The last attempt's error.
        #[source]
        source: BoxError,
    },
    /// A Redis command failed. (SQL databases report through [`Error::Storage`].)
    #[error("Redis failed while trying to {action}")]
    Database {
        /// What the store was doing.
        action: &'static str,
        /// The error.
        #[source]
        source: BoxError,
        /// Whether retrying may succeed (connection lost, server loading or busy, ...).
        transient: bool,
    },
    /// The broker refused or failed to take the events.
    #[error("the event broker failed")]
    Broker(#[source] colloquy_broker::Error),
    /// A broker or database wait took longer than allowed.
    #[error("{what} did not finish within {seconds} s")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// The connection settings are invalid.
    #[error("invalid tracker store configuration: {0}")]
    Config(String),
    /// A Redis key where a tracker belongs holds something else (another Redis type, or a string that is not
    /// the JSON of a Rasa dialogue). Nothing was written to it.
    #[error("Redis key `{key}` does not hold a Rasa tracker ({reason}); nothing was written to it")]
    NotATracker {
        /// The whole Redis key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

    /// Whether this is a concurrent-save conflict ([`Error::Conflict`]): retrieve and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether the same call may succeed if retried later (the database or broker was unreachable or timed
    /// out; a broker error as the broker classifies it: refused credentials or a closed broker are not). A transient failure of `save` may have committed: retrying the same tracker is safe (see
    /// [`crate::TrackerStore::save`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Storage(error) => error.is_transient(),
            Self::Broker(error) => error.is_transient(),
            Self::Database { transient, .. } => *transient,
            Self::Unavailable { .. } | Self::Timeout { .. } | Self::Unpublished { .. } => true,
            _ => false,
        }
    }

    /// Whether the settings are at fault and retrying cannot help (refused credentials, a missing database or
    /// schema, an invalid URL or section): a command stops with exit code 2.
    pub fn is_config(&self) -> bool {
        match self {
            Self::Storage(error) => error.is_config(),
            Self::Config(_) => true,
            _ => false,
        }
    }

    /// Whether the caller's input is at fault (an event that cannot be stored, a bad configuration).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidEvent { .. } | Self::Config(_))
    }
}

impl From<colloquy_storage::Error> for Error {
    fn from(error: colloquy_storage::Error) -> Self {
        Self::Storage(error)
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn a_broker_error_is_transient_as_the_broker_classifies_it() {
        assert!(!Error::Broker(colloquy_broker::Error::Closed).is_transient());
        assert!(!Error::Broker(colloquy_broker::Error::Config("bad".into())).is_transient());
        let full = colloquy_broker::Error::BufferFull {
            capacity: 1,
            rejected: 1,
        };
        assert!(Error::Broker(full).is_transient());
    }
}
