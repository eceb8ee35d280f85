//! The one error type of this crate, with classification methods so that callers never match on variants to
//! decide what to do.

use std::error::Error as StdError;

use crate::schema::RowError;

/// A boxed source error (database or broker), kept as a source so that transport types do not leak into the
/// public API.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

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
    /// A new event cannot be serialised or stamped.
    #[error("an event of conversation `{sender_id}` cannot be serialised")]
    Serialise {
        /// The conversation.
        sender_id: String,
        /// Why.
        #[source]
        source: colloquy_events::Error,
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
    /// The database could not be reached at start-up, after every attempt.
    #[error("the database at {target} could not be reached after {attempts} attempts")]
    Unavailable {
        /// Host, port and database name (no credentials).
        target: String,
        /// How many attempts were made.
        attempts: usize,
        /// The last attempt's error.
        #[source]
        source: BoxError,
    },
    /// A database statement failed.
    #[error("the database failed while trying to {action}")]
    Database {
        /// What the store was doing.
        action: &'static str,
        /// The database error.
        #[source]
        source: BoxError,
        /// Whether retrying may succeed (connection lost, server shutting down, serialisation failure, ...).
        transient: bool,
    },
    /// Applying the schema migrations failed.
    #[error("the schema migrations could not be applied")]
    Migrate(#[source] BoxError),
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
    /// `close` (or `drain`) gave up waiting for the broker to confirm saved events. They are stored and stay
    /// in the store's outbox: the relay of the next store opened on it publishes them.
    #[error(
        "{events} saved event(s) were not confirmed by the broker within {seconds} s; they are safe in the \
         outbox and will be published by the next store opened on it"
    )]
    Undelivered {
        /// How many events are left in the outbox.
        events: u64,
        /// How long was waited.
        seconds: u64,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is a concurrent-save conflict ([`Error::Conflict`]): retrieve and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether the same call may succeed if retried later (the database or broker was unreachable or timed
    /// out). A transient failure of `save` may have committed: retrying the same tracker is safe (see
    /// [`crate::TrackerStore::save`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database { transient, .. } => *transient,
            Self::Unavailable { .. }
            | Self::Broker(_)
            | Self::Timeout { .. }
            | Self::Undelivered { .. } => true,
            _ => false,
        }
    }

    /// Whether the caller's input is at fault (an event that cannot be stored, a bad configuration).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidEvent { .. } | Self::Serialise { .. } | Self::Config(_)
        )
    }

    pub(crate) fn database(action: &'static str, error: sqlx::Error) -> Self {
        let transient = is_transient_sqlx(&error);
        Self::Database {
            action,
            source: Box::new(error),
            transient,
        }
    }
}

/// Whether a sqlx error is worth retrying: I/O, pool and TLS trouble, and the SQLSTATE classes of a server
/// that is going away or a transaction that lost a race.
pub(crate) fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 40: transaction rollback (serialisation, deadlock);
            // 53: insufficient resources; 57P: operator intervention (admin shutdown, crash shutdown,
            // cannot connect now).
            code.starts_with("08")
                || code.starts_with("40")
                || code.starts_with("53")
                || code.starts_with("57P")
        }),
        _ => false,
    }
}
