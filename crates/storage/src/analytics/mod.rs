//! Rasa Pro's analytics tables (derived by `colloquy-analytics`) in the database: their migrations, the
//! statements that write [`Rows`] and the per-conversation derivation state, and the one procedure that
//! brings a conversation's tables up to date with its events ([`catch_up`] in each dialect's module).
//!
//! The procedure, the same for the consumer's batch transaction and for `colloquy analytics rebuild`:
//! for each conversation, read its state (`colloquy_analytics_state`: the `Conversation` as JSON and the
//! `events.id` of the last event it has seen; none → `Conversation::new`), read its events with a larger
//! `id` in `id` order (Rasa's order of a conversation), give them to `Conversation::apply` at positions
//! `next_position() ..`, and write the rows and the new state — all in the caller's transaction. Whatever
//! was inserted before (a redelivery, a replay) has a smaller id and was seen already, whatever was not
//! inserted (deduplicated) is not in the table: so a redelivery, a replay or any split into batches gives
//! the tables a one-go derivation gives. Rows of one conversation are written once per call, rows of
//! different conversations together (one statement per table on PostgreSQL).
//!
//! Assumption (the events table's, too): the events of a conversation get ascending ids in the order they
//! are committed, which holds for one writer per conversation (the consumer of a queue, the tracker store's
//! count-guarded save).

use colloquy_analytics::{Conversation, Rows, Settings};
use colloquy_events::Event;

#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod per_row;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// Why a conversation's analytics could not be derived; carried through sqlx as a decode error so that the
/// transaction rolls back like on any other failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeriveError {
    /// A stored row is not a readable event.
    #[error("row {row_id} of conversation `{sender_id}` is not a readable event: {cause}")]
    Unreadable {
        row_id: i64,
        sender_id: String,
        cause: String,
    },
    /// The derivation refused the events (a bug: positions are computed here).
    #[error(transparent)]
    Derive(#[from] colloquy_analytics::Error),
}

impl From<DeriveError> for sqlx::Error {
    fn from(error: DeriveError) -> Self {
        sqlx::Error::Decode(Box::new(error))
    }
}

/// A conversation's state as stored, and where it resumes.
pub(crate) struct State {
    pub(crate) conversation: Conversation,
    pub(crate) last_row_id: i64,
}

impl State {
    /// The state read from `colloquy_analytics_state` (`None`: nothing derived yet).
    pub(crate) fn read(
        sender_id: &str,
        stored: Option<(String, i64)>,
    ) -> Result<Self, DeriveError> {
        Ok(match stored {
            Some((json, last_row_id)) => Self {
                conversation: Conversation::from_json(&json)?,
                last_row_id,
            },
            None => Self {
                conversation: Conversation::new(sender_id),
                last_row_id: 0,
            },
        })
    }

    /// Derives the rows of `events` (`(id, data)` of the conversation's rows after `last_row_id`, in id
    /// order) and moves the state past them.
    pub(crate) fn apply(
        &mut self,
        settings: &Settings,
        events: &[(i64, Option<String>)],
    ) -> Result<Rows, DeriveError> {
        let Some(&(last, _)) = events.last() else {
            return Ok(Rows::default());
        };
        let parsed = events
            .iter()
            .map(|(row_id, data)| {
                Event::from_json(data.as_deref().unwrap_or_default().as_bytes()).map_err(|error| {
                    DeriveError::Unreadable {
                        row_id: *row_id,
                        sender_id: self.conversation.sender_key().to_owned(),
                        cause: error.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let first = self.conversation.next_position();
        let rows = self.conversation.apply(
            settings,
            parsed
                .iter()
                .enumerate()
                .map(|(index, event)| (first + index as u64, event)),
        )?;
        self.last_row_id = last;
        Ok(rows)
    }
}

/// The distinct conversations of a batch, in first-seen order.
pub(crate) fn senders_of<'a>(rows: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    rows.into_iter()
        .filter(|sender| seen.insert(*sender))
        .collect()
}

/// What one catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalyticsProgress {
    /// Conversations looked at.
    pub conversations: u64,
    /// Events newly derived (rows of `rasa_event` written).
    pub events: u64,
}

use crate::database::{Database, Pool};
use crate::error::{Error, Result};
use crate::rows::{DeadLetterRow, EventRow};
use crate::transaction;
use crate::url::Dialect;

/// Every table the analytics migrations create and `Database::reset_analytics` empties (the metric names
/// excepted: they are configuration).
const DERIVED_TABLES: [&str; 10] = [
    "rasa_sender",
    "rasa_session",
    "rasa_turn",
    "rasa_event",
    "rasa_user_message",
    "rasa_bot_message",
    "rasa_action",
    "rasa_slot",
    "rasa_session_slot_state",
    "colloquy_analytics_state",
];

fn migrator(dialect: Dialect) -> sqlx::migrate::Migrator {
    let mut migrator = match dialect {
        Dialect::Postgres => sqlx::migrate!("./migrations/postgres/analytics"),
        Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite/analytics"),
        Dialect::MySql => sqlx::migrate!("./migrations/mysql/analytics"),
    };
    // The events and tracker-store sets share sqlx's bookkeeping table.
    migrator.set_ignore_missing(true);
    migrator
}

impl Database {
    /// Creates or updates the analytics tables and metric views (idempotent). Only databases that ask for
    /// analytics get them (`colloquy consume --analytics`, `colloquy analytics rebuild`); it needs Rasa's
    /// `events` table and changes nothing in it.
    pub async fn migrate_analytics(&self) -> Result<()> {
        let migrator = migrator(self.dialect());
        let outcome = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => migrator.run(pool).await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => migrator.run(pool).await,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => migrator.run(pool).await,
        };
        outcome.map_err(|error| Error::migrate(&self.target, self.dialect(), error))
    }

    /// [`Database::store_batch`], and in the same transaction the analytics tables of the batch's
    /// conversations brought up to date with their events: the events this batch inserted (after dedupe),
    /// and any event of the conversation not derived yet, at their positions in the conversation. A
    /// redelivery, a replay or any split of a conversation into batches leaves the tables a one-go
    /// derivation gives. Needs [`Database::migrate_analytics`].
    pub async fn store_batch_with_analytics(
        &self,
        events: &[EventRow],
        dead_letters: &[DeadLetterRow],
        settings: &Settings,
    ) -> Result<u64> {
        self.store_batch_with(events, dead_letters, Some(settings))
            .await
    }

    /// Brings the analytics tables of `sender_ids` up to date with their events in one transaction (what
    /// `colloquy analytics rebuild` runs per group of conversations): idempotent, and resumable, since each
    /// conversation's state says which events it has seen. Works on a database Rasa wrote (no `event_id`).
    pub async fn derive_analytics(
        &self,
        sender_ids: &[String],
        settings: &Settings,
    ) -> Result<AnalyticsProgress> {
        let senders: Vec<&str> = sender_ids.iter().map(String::as_str).collect();
        let outcome = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    postgres::catch_up(conn, &senders, settings).await
                })
                .await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => {
                transaction::write(pool, "BEGIN IMMEDIATE", async |conn| {
                    sqlite::catch_up(conn, &senders, settings).await
                })
                .await
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    mysql::catch_up(conn, &senders, settings).await
                })
                .await
            }
        };
        outcome.map_err(|error| {
            Error::database("derive analytics", &self.target, self.dialect(), error)
        })
    }

    /// Writes `rows` into the analytics tables in one transaction (insert, or replace the row with the same
    /// id, as [`Rows`] says). Rows of one conversation must come from one `Conversation::apply`.
    pub async fn write_analytics_rows(&self, rows: &Rows) -> Result<()> {
        let outcome = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    postgres::write_rows(conn, rows).await
                })
                .await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => {
                transaction::write(pool, "BEGIN IMMEDIATE", async |conn| {
                    sqlite::write_rows(conn, rows).await
                })
                .await
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    mysql::write_rows(conn, rows).await
                })
                .await
            }
        };
        outcome.map_err(|error| {
            Error::database("write analytics rows", &self.target, self.dialect(), error)
        })
    }

    /// Every row of the nine Rasa Pro tables as one line of text (`table: values`, each value rendered by
    /// the database), sorted: to compare two states of a database, e.g. what the consumer kept with what a
    /// rebuild computes.
    pub async fn analytics_dump(&self) -> Result<Vec<String>> {
        let tables = &DERIVED_TABLES[..9];
        let outcome: Result<Vec<String>, sqlx::Error> = async { match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => {
                let mut all = Vec::new();
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text FROM {table} t ORDER BY 1"
                    )))
                    .fetch_all(pool)
                    .await?;
                    all.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
                }
                Ok(all)
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => {
                let mut all = Vec::new();
                for table in tables {
                    let columns: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT group_concat('quote(' || name || ')', ' || '','' || ') FROM pragma_table_info('{table}')"
                    )))
                    .fetch_one(pool)
                    .await?;
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT {columns} FROM {table} ORDER BY id"
                    )))
                    .fetch_all(pool)
                    .await?;
                    all.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
                }
                Ok(all)
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => {
                let mut all = Vec::new();
                for table in tables {
                    let columns: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT GROUP_CONCAT(CONCAT('QUOTE(', column_name, ')') ORDER BY ordinal_position \
                         SEPARATOR ', \\',\\', ') FROM information_schema.columns \
                         WHERE table_schema = DATABASE() AND table_name = '{table}'"
                    )))
                    .fetch_one(pool)
                    .await?;
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT CONCAT({columns}) FROM {table} ORDER BY id"
                    )))
                    .fetch_all(pool)
                    .await?;
                    all.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
                }
                Ok(all)
            }
        } }.await;
        outcome.map_err(|error| {
            Error::database(
                "read the analytics tables",
                &self.target,
                self.dialect(),
                error,
            )
        })
    }

    /// Empties the derived analytics tables and every conversation's derivation state in one transaction
    /// (the metric names stay): the next derivation starts from each conversation's first event.
    pub async fn reset_analytics(&self) -> Result<()> {
        async fn delete_all<DB: sqlx::Database>(
            pool: &sqlx::Pool<DB>,
            begin: &'static str,
        ) -> Result<(), sqlx::Error>
        where
            for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
        {
            transaction::write(pool, begin, async |conn| {
                for table in DERIVED_TABLES {
                    sqlx::Executor::execute(
                        &mut *conn,
                        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DELETE FROM {table}"))),
                    )
                    .await?;
                }
                Ok(())
            })
            .await
        }
        let outcome = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => delete_all(pool, "BEGIN").await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => delete_all(pool, "BEGIN IMMEDIATE").await,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => delete_all(pool, "BEGIN").await,
        };
        outcome.map_err(|error| {
            Error::database(
                "reset the analytics tables",
                &self.target,
                self.dialect(),
                error,
            )
        })
    }
}
