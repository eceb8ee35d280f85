//! The database the consumer writes to: PostgreSQL or SQLite, behind the [`EventSink`] seam.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_tracker_store::schema::{self, DeadLetterRow, EventRow};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};

use crate::error::{Error, Result};

/// Where stored events go. One call to [`EventSink::store`] is one transaction.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Stores events (skipping those whose `event_id` is stored already) and dead letters in one transaction;
    /// returns how many events were inserted.
    async fn store(&self, events: &[EventRow], dead_letters: &[DeadLetterRow]) -> Result<u64>;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;
    /// Makes the database ready to store (applies the migrations); the consumer calls it before the first
    /// batch, waiting out failures that can pass.
    async fn prepare(&self) -> Result<()> {
        Ok(())
    }
}

/// A connected database, PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub enum Database {
    /// PostgreSQL (`postgres://` or `postgresql://`).
    Postgres(PgPool),
    /// SQLite (`sqlite://path`), created when missing.
    Sqlite(SqlitePool),
}

/// A dead letter as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDeadLetter {
    /// Its row id.
    pub id: i64,
    /// When it was received (database time, as text).
    pub received_at: String,
    /// The queue it came from.
    pub source: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The message properties (JSON object).
    pub properties: String,
    /// Why it is not an event.
    pub error: String,
}

/// How long one attempt to reach the database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Database {
    /// Connects lazily (the first query connects, so a database that is down at start-up is retried like any
    /// other outage) to the database at `url`.
    pub fn connect_lazy(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?.application_name("colloquy");
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // A commit is on disk before we ack: FULL survives power loss, not only process crashes.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5));
            // One writer: SQLite serialises writes anyway, and one connection keeps `id` order simple.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options);
            Ok(Self::Sqlite(pool))
        } else {
            Err(Error::UnsupportedDatabase { url: redact(url) })
        }
    }

    /// Applies the schema migrations (idempotent; adopts a database Rasa created).
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Self::Postgres(pool) => schema::POSTGRES_MIGRATOR.run(pool).await?,
            Self::Sqlite(pool) => schema::SQLITE_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// The dead letters with `id > after`, oldest first, at most `limit`.
    pub async fn dead_letters(&self, after: i64, limit: i64) -> Result<Vec<StoredDeadLetter>> {
        let rows = match self {
            Self::Postgres(pool) => sqlx::query(
                "SELECT id, received_at::text AS received_at, source, body, properties, error
                     FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| dead_letter_of(&row))
            .collect::<Result<_, sqlx::Error>>()?,
            Self::Sqlite(pool) => sqlx::query(
                "SELECT id, received_at, source, body, properties, error
                 FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| dead_letter_of(&row))
            .collect::<Result<_, sqlx::Error>>()?,
        };
        Ok(rows)
    }

    /// Deletes the dead letter `id` (after it was requeued).
    pub async fn delete_dead_letter(&self, id: i64) -> Result<()> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Self::Sqlite(pool) => {
                sqlx::query("DELETE FROM dead_letters WHERE id = ?1")
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

fn dead_letter_of<R: Row>(row: &R) -> Result<StoredDeadLetter, sqlx::Error>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(StoredDeadLetter {
        id: row.try_get("id")?,
        received_at: row.try_get("received_at")?,
        source: row.try_get("source")?,
        body: row.try_get("body")?,
        properties: row.try_get("properties")?,
        error: row.try_get("error")?,
    })
}

#[async_trait]
impl EventSink for Database {
    async fn store(&self, events: &[EventRow], dead_letters: &[DeadLetterRow]) -> Result<u64> {
        let inserted = match self {
            // One statement is atomic on its own: a small batch of events needs one round trip, not
            // BEGIN + INSERT + COMMIT.
            Self::Postgres(pool) if dead_letters.is_empty() && fits_one_segment(events) => {
                schema::insert_events_postgres(&mut *pool.acquire().await?, events).await?
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let mut inserted = 0;
                for chunk in segment_sized_chunks(events) {
                    inserted += schema::insert_events_postgres(&mut tx, chunk).await?;
                }
                schema::insert_dead_letters_postgres(&mut tx, dead_letters).await?;
                tx.commit().await?;
                inserted
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let inserted = schema::insert_events_sqlite(&mut tx, events).await?;
                schema::insert_dead_letters_sqlite(&mut tx, dead_letters).await?;
                tx.commit().await?;
                inserted
            }
        };
        Ok(inserted)
    }

    async fn prepare(&self) -> Result<()> {
        self.migrate().await
    }

    async fn ping(&self) -> Result<()> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }
}

/// How much event data one INSERT message carries at most. sqlx does not set TCP_NODELAY, so a message larger
/// than one TCP segment (64 KiB on loopback) can have its tail held back by Nagle's algorithm until the server's
/// delayed ACK, some 40 ms; messages below this size go out at once. Larger batches are inserted in chunks of
/// this size within one transaction.
const STATEMENT_DATA_BYTES: usize = 48 * 1024;

fn fits_one_segment(events: &[EventRow]) -> bool {
    events.iter().map(|row| row.data.len()).sum::<usize>() <= STATEMENT_DATA_BYTES
}

/// Consecutive chunks of `events` of at most [`STATEMENT_DATA_BYTES`] of data each (at least one row each).
fn segment_sized_chunks(events: &[EventRow]) -> impl Iterator<Item = &[EventRow]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut end = 0;
        while end < rest.len() && (end == 0 || bytes + rest[end].data.len() <= STATEMENT_DATA_BYTES)
        {
            bytes += rest[end].data.len();
            end += 1;
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://colloquy.db"), "sqlite://colloquy.db");
    }
}
