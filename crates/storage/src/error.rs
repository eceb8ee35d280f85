//! The one error type of the storage layer, and the one classification of database errors.
//!
//! Every dialect's errors are sorted into an [`ErrorKind`] here, once, so that callers decide what to do
//! (retry, dead-letter a row, stop with a configuration error) by asking, never by matching on SQLSTATE codes
//! or driver types.

use std::error::Error as StdError;

use crate::Dialect;

/// A boxed source error, so that driver types do not leak into the public API.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What a database error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The same call may succeed later: the server is unreachable, restarting, out of disk or memory,
    /// read-only for now, or the transaction lost a race (deadlock, serialisation failure, busy).
    Transient,
    /// A unique index holds the key already.
    UniqueViolation,
    /// The database refused the data itself (too long, out of range, bad encoding): retrying the same row
    /// cannot help, other rows may pass.
    Refused,
    /// A table, column or the unique index the statement needs does not exist: the schema is not what
    /// Colloquy expects (run `colloquy migrate`, or someone dropped it).
    SchemaMissing,
    /// The settings are wrong and will stay wrong: refused credentials, a database that does not exist, a
    /// bad URL, a file that cannot be opened.
    Config,
    /// Anything else.
    Other,
}

/// Errors of the storage layer. `Display` carries the whole story: each message ends with the driver's own
/// error (after what it means, such as "connection refused" or "database `x` does not exist"), so there is no
/// source chain to walk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database statement failed. The message ends with the database's own.
    #[error("the database at {target} failed to {action}: {cause}")]
    Database {
        /// What was being done (`insert a batch of events`, ...).
        action: &'static str,
        /// Host, port and database (no credentials).
        target: String,
        /// What the error means.
        kind: ErrorKind,
        /// The driver's error (in the message; not repeated as a source).
        cause: BoxError,
    },
    /// The database could not be reached at start-up after every attempt.
    #[error("the database at {target} could not be reached after {attempts} attempts: {cause}")]
    Unavailable {
        /// Host, port and database (no credentials).
        target: String,
        /// How many attempts were made.
        attempts: usize,
        /// The last attempt's error (in the message).
        cause: BoxError,
    },
    /// Applying the schema migrations failed.
    #[error("the schema migrations of {target} could not be applied: {cause}")]
    Migrate {
        /// Host, port and database (no credentials).
        target: String,
        /// What the error means.
        kind: ErrorKind,
        /// The migrator's error (in the message).
        cause: BoxError,
    },
    /// The database lacks what a read-only command needs (it was never migrated, or it is not a tracker
    /// store at all).
    #[error("the database at {target} has no {what}: {hint}")]
    SchemaMissing {
        /// Host, port and database (no credentials).
        target: String,
        /// The missing table or column.
        what: String,
        /// What to check.
        hint: &'static str,
    },
    /// A row does not fit the dialect's schema; nothing was written.
    #[error("the database at {target} cannot hold an event of conversation `{sender_id}`: {cause}")]
    Row {
        /// Host, port and database (no credentials).
        target: String,
        /// The conversation.
        sender_id: String,
        /// Why (in the message).
        cause: crate::RowError,
    },
    /// The operation does not exist for this dialect (e.g. a conversion that only PostgreSQL needs).
    #[error("the database at {target} ({dialect}) does not support this: {what}")]
    Unsupported {
        /// Host, port and database (no credentials).
        target: String,
        /// The dialect.
        dialect: Dialect,
        /// What was asked, and why it is not offered.
        what: &'static str,
    },
    /// The URL names no dialect this build supports, or cannot be read.
    #[error("{0}")]
    Url(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What the error means.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Database { kind, .. } | Self::Migrate { kind, .. } => *kind,
            Self::Unavailable { .. } => ErrorKind::Transient,
            Self::SchemaMissing { .. } => ErrorKind::SchemaMissing,
            Self::Url(_) | Self::Unsupported { .. } => ErrorKind::Config,
            Self::Row { .. } => ErrorKind::Refused,
        }
    }

    /// Whether the same call may succeed if retried later.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// Whether a unique index refused the row.
    pub fn is_unique_violation(&self) -> bool {
        self.kind() == ErrorKind::UniqueViolation
    }

    /// Whether the database refused the data itself (other rows may pass).
    pub fn is_refused(&self) -> bool {
        self.kind() == ErrorKind::Refused
    }

    /// Whether the schema lacks a table, column or index that Colloquy needs.
    pub fn is_schema_missing(&self) -> bool {
        self.kind() == ErrorKind::SchemaMissing
    }

    /// Whether the settings are at fault and waiting cannot help (credentials, missing database, bad URL):
    /// a command stops with exit code 2. A missing schema counts too.
    pub fn is_config(&self) -> bool {
        matches!(self.kind(), ErrorKind::Config | ErrorKind::SchemaMissing)
    }

    pub(crate) fn database(
        action: &'static str,
        target: &str,
        dialect: Dialect,
        error: sqlx::Error,
    ) -> Self {
        let kind = classify(&error, dialect);
        Self::Database {
            action,
            target: target.to_owned(),
            kind,
            cause: explain(target, dialect, error),
        }
    }

    pub(crate) fn migrate(
        target: &str,
        dialect: Dialect,
        error: sqlx::migrate::MigrateError,
    ) -> Self {
        let kind = match &error {
            sqlx::migrate::MigrateError::Execute(error)
            | sqlx::migrate::MigrateError::ExecuteMigration(error, _) => classify(error, dialect),
            _ => ErrorKind::Config,
        };
        Self::Migrate {
            target: target.to_owned(),
            kind,
            cause: Box::new(error),
        }
    }
}

/// The driver's error, prefixed with what it means in the words a user acts on where the driver's own
/// words are obscure or differ between dialects: "connection refused" (nothing listens at that host and
/// port), "database `x` does not exist", "no connection within the connect timeout".
fn explain(target: &str, dialect: Dialect, error: sqlx::Error) -> BoxError {
    let meaning = match &error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some("connection refused: is the server running, and on this host and port?".to_owned())
        }
        sqlx::Error::PoolTimedOut => Some(
            "no connection within the connect timeout (the server did not answer in time)"
                .to_owned(),
        ),
        sqlx::Error::Database(db) if is_missing_database(db.as_ref(), dialect) => {
            let name = target.rsplit('/').next().unwrap_or(target);
            Some(format!("database `{name}` does not exist"))
        }
        _ => None,
    };
    match meaning {
        Some(meaning) => Box::new(Explained {
            meaning,
            cause: error,
        }),
        None => Box::new(error),
    }
}

fn is_missing_database(error: &dyn sqlx::error::DatabaseError, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => error.code().as_deref() == Some("3D000"),
        Dialect::MySql => mysql_number(error) == Some(1049),
        Dialect::Sqlite => false,
    }
}

/// A driver error with its meaning in front: `meaning (driver's message)`.
#[derive(Debug)]
struct Explained {
    meaning: String,
    cause: sqlx::Error,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.meaning, self.cause)
    }
}

impl StdError for Explained {}

/// What a driver error means.
pub(crate) fn classify(error: &sqlx::Error, dialect: Dialect) -> ErrorKind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => ErrorKind::Transient,
        sqlx::Error::Configuration(_) => ErrorKind::Config,
        sqlx::Error::Database(db) if db.is_unique_violation() => ErrorKind::UniqueViolation,
        sqlx::Error::Database(db) => match dialect {
            Dialect::Postgres => classify_sqlstate(db.code().as_deref().unwrap_or("")),
            Dialect::MySql => classify_mysql(mysql_number(db.as_ref())),
            Dialect::Sqlite => classify_sqlite(db.code().as_deref().unwrap_or(""), db.message()),
        },
        _ => ErrorKind::Other,
    }
}

/// PostgreSQL's SQLSTATE codes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn classify_sqlstate(code: &str) -> ErrorKind {
    let class = code.get(..2).unwrap_or_default();
    match (class, code) {
        // No unique index matches ON CONFLICT; undefined table, column, object, schema.
        (_, "42P10" | "42P01" | "42703" | "42704" | "3F000") => ErrorKind::SchemaMissing,
        // Invalid authorization or password, a missing or dropped database, no privilege, other syntax or
        // access rule violations.
        (_, "3D000" | "57P04") | ("28" | "42", _) => ErrorKind::Config,
        // A read-only transaction (a standby, a database set read-only for maintenance): it can pass.
        (_, "25006") => ErrorKind::Transient,
        // Data exceptions (too long, out of range, bad encoding), integrity constraints, program limits (a
        // row or value too large).
        ("22" | "23" | "54", _) => ErrorKind::Refused,
        // Connection exception, transaction rollback (serialisation, deadlock), insufficient resources (disk
        // full, out of memory, too many connections), object not in prerequisite state (lock not available),
        // operator intervention (shutdown, cannot connect now), system error, internal error.
        ("08" | "40" | "53" | "55" | "57" | "58" | "XX", _) => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// MySQL's and MariaDB's error numbers.
fn classify_mysql(number: Option<u16>) -> ErrorKind {
    match number {
        // Unknown table, unknown column, no such index.
        Some(1146 | 1054 | 1176 | 1091) => ErrorKind::SchemaMissing,
        // Access denied, unknown database, command denied.
        Some(1044 | 1045 | 1049 | 1142 | 1227 | 1698) => ErrorKind::Config,
        // Lock wait timeout, deadlock, read-only server, disk full, table full, out of memory or resources,
        // too many connections, server shutting down, query interrupted, statement timeout.
        Some(
            1205 | 1213 | 1290 | 1836 | 1021 | 1114 | 1037 | 1041 | 1040 | 1053 | 1317 | 3024
            | 1927,
        ) => ErrorKind::Transient,
        // Data too long, out of range, incorrect value, NULL into NOT NULL, bad string, truncated, packet
        // too large.
        Some(1406 | 1264 | 1366 | 1292 | 1265 | 1048 | 1300 | 3140 | 1153) => ErrorKind::Refused,
        _ => ErrorKind::Other,
    }
}

/// SQLite's (extended) result codes; an extended code keeps its primary code in the low byte. A schema that
/// lacks a table, a column or the unique index an upsert names is the generic `SQLITE_ERROR` (1), told apart
/// only by its message.
fn classify_sqlite(code: &str, message: &str) -> ErrorKind {
    const SCHEMA_MISSING: [&str; 4] = [
        "no such table",
        "no such column",
        "no such index",
        "ON CONFLICT clause does not match",
    ];
    match code.parse::<u32>().map(|code| code & 0xff) {
        Ok(1) if SCHEMA_MISSING.iter().any(|what| message.contains(what)) => {
            ErrorKind::SchemaMissing
        }
        // Busy, locked, out of memory, read-only (a file made read-only can pass), I/O error, full disk.
        Ok(5 | 6 | 7 | 8 | 10 | 13) => ErrorKind::Transient,
        // Cannot open, not a database, authorisation denied.
        Ok(14 | 26 | 23) => ErrorKind::Config,
        // Too big, datatype mismatch, constraint.
        Ok(18..=20) => ErrorKind::Refused,
        _ => ErrorKind::Other,
    }
}

#[cfg(feature = "mysql")]
fn mysql_number(error: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    error
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(sqlx::mysql::MySqlDatabaseError::number)
}

#[cfg(not(feature = "mysql"))]
fn mysql_number(_error: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_the_codes_of_each_dialect() {
        let cases = [
            (classify_sqlstate("42P10"), ErrorKind::SchemaMissing),
            (classify_sqlstate("28P01"), ErrorKind::Config),
            (classify_sqlstate("3D000"), ErrorKind::Config),
            (classify_sqlstate("25006"), ErrorKind::Transient),
            (classify_sqlstate("53100"), ErrorKind::Transient),
            (classify_sqlstate("57P01"), ErrorKind::Transient),
            (classify_sqlstate("22001"), ErrorKind::Refused),
            (classify_sqlstate("42501"), ErrorKind::Config),
            (classify_sqlstate("57P04"), ErrorKind::Config),
            (classify_sqlstate("54000"), ErrorKind::Refused),
            (classify_sqlstate("58030"), ErrorKind::Transient),
            (classify_mysql(Some(1146)), ErrorKind::SchemaMissing),
            (classify_mysql(Some(1045)), ErrorKind::Config),
            (classify_mysql(Some(1290)), ErrorKind::Transient),
            (classify_mysql(Some(1406)), ErrorKind::Refused),
            (
                classify_sqlite("13", "database or disk is full"),
                ErrorKind::Transient,
            ),
            (
                classify_sqlite("1032", "attempt to write a readonly database"),
                ErrorKind::Transient,
            ),
            (
                classify_sqlite("14", "unable to open database file"),
                ErrorKind::Config,
            ),
            (
                classify_sqlite("18", "string or blob too big"),
                ErrorKind::Refused,
            ),
            (
                classify_sqlite("1", "no such table: events"),
                ErrorKind::SchemaMissing,
            ),
            (
                classify_sqlite(
                    "1",
                    "ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint",
                ),
                ErrorKind::SchemaMissing,
            ),
            (
                classify_sqlite("1", "near \"x\": syntax error"),
                ErrorKind::Other,
            ),
        ];
        for (i, (got, expected)) in cases.into_iter().enumerate() {
            assert_eq!(got, expected, "case {i}");
        }
    }
}
