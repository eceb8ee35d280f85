//! The consumer's errors, and how to tell what a database failure means: a fault that can pass (wait and
//! retry), data the database refused (dead-letter it), or a configuration the operator must fix (stop).

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
        match self {
            Error::UnsupportedDatabase { .. } => true,
            _ => self.fault() == Some(Fault::Configuration),
        }
    }

    /// What a database failure means; `None` for failures that are not the database's.
    fn fault(&self) -> Option<Fault> {
        use sqlx::migrate::MigrateError;
        match self {
            Error::Database(error) => Some(classify(error)),
            Error::Migrate(
                MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _),
            ) => Some(classify(error)),
            // Applied migrations that differ from ours, a dirty or unknown version: someone must look.
            Error::Migrate(_) => Some(Fault::Configuration),
            Error::Unstored { cause, .. } => cause.fault(),
            _ => None,
        }
    }
}

/// Classifies a database error by its SQLSTATE (PostgreSQL) or result code (SQLite). An unknown database
/// error counts as a refusal of the data: the consumer then stores the batch row by row and dead-letters what
/// is refused, which loses nothing.
fn classify(error: &sqlx::Error) -> Fault {
    match error {
        sqlx::Error::Configuration(_) => Fault::Configuration,
        sqlx::Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                classify_sqlite(sqlite)
            } else {
                classify_sqlstate(&db.code().unwrap_or_default())
            }
        }
        sqlx::Error::ColumnNotFound(_) | sqlx::Error::ColumnIndexOutOfBounds { .. } => {
            Fault::Configuration
        }
        sqlx::Error::Encode(_) | sqlx::Error::InvalidArgument(_) => Fault::Refused,
        // Connection trouble: I/O, TLS, protocol, a pool that timed out or closed, a crashed worker.
        _ => Fault::Transient,
    }
}

/// PostgreSQL's SQLSTATE classes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn classify_sqlstate(code: &str) -> Fault {
    let class = code.get(..2).unwrap_or_default();
    match (class, code) {
        // 57P04 database dropped; 28 invalid authorization (password, role); 3D000 missing database; 3F000
        // missing schema; 42 missing table, column or unique index (42P10 for ON CONFLICT), no privilege.
        (_, "57P04" | "3D000" | "3F000") | ("28" | "42", _) => Fault::Configuration,
        // 22 data exception (a NUL character, an invalid value); 23 integrity constraint; 54 program limit
        // (a row or value too large).
        ("22" | "23" | "54", _) => Fault::Refused,
        // 08 connection exception; 25006 read-only transaction (a standby, or read-only set for a while);
        // 40 serialization failure / deadlock; 53 insufficient resources (disk full, out of memory, too many
        // connections); 55 object in use / lock not available; 57 operator intervention (shutdown, cancel,
        // cannot connect now); 58 system (I/O) error; XX internal error.
        ("08" | "40" | "53" | "55" | "57" | "58" | "XX", _) | (_, "25006") => Fault::Transient,
        _ => Fault::Refused,
    }
}

/// SQLite's primary result codes (<https://www.sqlite.org/rescode.html>).
fn classify_sqlite(error: &sqlx::sqlite::SqliteError) -> Fault {
    use sqlx::error::DatabaseError;
    let extended: i32 = error
        .code()
        .and_then(|code| code.parse().ok())
        .unwrap_or_default();
    match extended & 0xff {
        // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, PROTOCOL.
        5 | 6 | 7 | 8 | 10 | 13 | 15 => Fault::Transient,
        // CANTOPEN, CORRUPT, NOTADB, AUTH, PERM.
        14 | 11 | 26 | 23 | 3 => Fault::Configuration,
        // ERROR: a missing table, column or unique index (for ON CONFLICT) is the schema's fault.
        1 if [
            "no such table",
            "no such column",
            "ON CONFLICT clause does not match",
        ]
        .iter()
        .any(|schema| error.message().contains(schema)) =>
        {
            Fault::Configuration
        }
        _ => Fault::Refused,
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

#[cfg(test)]
mod tests {
    use super::{Fault, classify_sqlstate};

    #[test]
    fn sqlstates() {
        for (code, fault) in [
            ("08006", Fault::Transient),
            ("25006", Fault::Transient),
            ("40001", Fault::Transient),
            ("53100", Fault::Transient),
            ("57P01", Fault::Transient),
            ("57P03", Fault::Transient),
            ("58030", Fault::Transient),
            ("28P01", Fault::Configuration),
            ("28000", Fault::Configuration),
            ("3D000", Fault::Configuration),
            ("42P01", Fault::Configuration),
            ("42P10", Fault::Configuration),
            ("42501", Fault::Configuration),
            ("57P04", Fault::Configuration),
            ("22021", Fault::Refused),
            ("23502", Fault::Refused),
            ("54000", Fault::Refused),
            ("P0001", Fault::Refused),
        ] {
            assert_eq!(classify_sqlstate(code), fault, "{code}");
        }
    }
}
