//! The consumer's errors.

/// Errors of the consumer service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL is not one we can use.
    #[error("unsupported database URL {url:?}: use postgres://… or sqlite://…")]
    UnsupportedDatabase {
        /// The URL, with any password removed.
        url: String,
    },
    /// A database operation failed.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("applying the database migrations failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
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
            Error::Database(error) => is_transient_sqlx(error),
            _ => false,
        }
    }
}

/// Classifies a database error: connection trouble and contention are transient; bad data is not.
pub(crate) fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: 08 connection exception, 53 insufficient resources, 57P0x shutdown / cannot connect
            // now, 40001/40P01 serialization failure / deadlock. SQLite: 5 BUSY, 6 LOCKED, 10 IOERR, 13 FULL.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
                || matches!(code.as_ref(), "5" | "6" | "10" | "13" | "261" | "517")
        }
        _ => false,
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        Error::Migrate(error)
    }
}

impl From<colloquy_broker::Error> for Error {
    fn from(error: colloquy_broker::Error) -> Self {
        Error::Broker(error)
    }
}
