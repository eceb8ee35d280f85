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
//! different conversations together (one statement for all tables on PostgreSQL).
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

/// The active patterns (`rasa_pattern` rows with `is_active`), as one marker configuration: marker `i` is
/// pattern `ids[i]`.
pub(crate) struct ActivePatterns {
    ids: Vec<String>,
    config: colloquy_analytics::markers::MarkerConfig,
}

impl ActivePatterns {
    /// From `(id, config)` rows; `None` when there is no active pattern.
    pub(crate) fn of(rows: Vec<(String, String)>) -> Result<Option<Self>, DeriveError> {
        if rows.is_empty() {
            return Ok(None);
        }
        let config = colloquy_analytics::markers::config_of_patterns(
            rows.iter().map(|(_, config)| config.as_str()),
            colloquy_analytics::markers::TagNegation::AsRasa3_6,
        )?;
        Ok(Some(Self {
            ids: rows.into_iter().map(|(id, _)| id).collect(),
            config,
        }))
    }
}

/// A row of `rasa_marker`: where an active pattern applied.
pub(crate) struct MarkerRow {
    pub(crate) id: String,
    pub(crate) pattern_id: String,
    pub(crate) sender_id: String,
    pub(crate) session_id: String,
    pub(crate) event_id: String,
    pub(crate) num_preceding_user_turns: i64,
    pub(crate) created_at: Option<f64>,
}

/// The marker hits of `patterns` on a conversation (`events`: all its rows, `(id, data)` in id order) at
/// positions `first_new ..`. Markers are evaluated per session over the whole conversation, as
/// `rasa evaluate markers` does (one conversation at a time, from a fresh evaluator); whether a marker applies
/// at an event depends only on the events up to it, so hits found once stay hits, and each is written once
/// (its id is derived from the pattern, the conversation and the position).
pub(crate) fn marker_rows(
    patterns: &ActivePatterns,
    sender_key: &str,
    events: &[(i64, Option<String>)],
    first_new: u64,
) -> Result<Vec<MarkerRow>, DeriveError> {
    let parsed = events
        .iter()
        .map(|(row_id, data)| {
            Event::from_json(data.as_deref().unwrap_or_default().as_bytes()).map_err(|error| {
                DeriveError::Unreadable {
                    row_id: *row_id,
                    sender_id: sender_key.to_owned(),
                    cause: error.to_string(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let derived =
        colloquy_analytics::derive_conversation(&Settings::default(), sender_key, &parsed);
    // The evaluator drops legacy `topic` events (as Rasa does when it reads a tracker): map its indices back.
    let kept: Vec<usize> = parsed
        .iter()
        .enumerate()
        .filter(|(_, event)| {
            !matches!(&event.kind, colloquy_events::EventKind::Other(name) if name == "topic")
        })
        .map(|(position, _)| position)
        .collect();
    let mut evaluator = colloquy_analytics::markers::Evaluator::new(&patterns.config);
    let result = evaluator.evaluate(sender_key, kept.iter().map(|&position| &parsed[position]));
    let mut rows = Vec::new();
    for session in &result.sessions {
        for ((_, hits), pattern_id) in session.iter().zip(&patterns.ids) {
            for hit in hits {
                let position = kept[hit.idx];
                if (position as u64) < first_new {
                    continue;
                }
                let event = &derived.events[position];
                rows.push(MarkerRow {
                    id: colloquy_analytics::ids::uuid_of(&[
                        "rasa_marker",
                        pattern_id,
                        sender_key,
                        &position.to_string(),
                    ]),
                    pattern_id: pattern_id.clone(),
                    sender_id: event.sender_id.clone(),
                    session_id: event.session_id.clone(),
                    event_id: event.id.clone(),
                    num_preceding_user_turns: hit.preceding_user_turns as i64,
                    created_at: event.timestamp,
                });
            }
        }
    }
    Ok(rows)
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

/// The tables the derivation writes: Rasa Pro's nine, `rasa_marker`, and each conversation's state
/// (`Database::reset_analytics` empties them; the patterns and metric names are configuration and stay).
const DERIVED_TABLES: [&str; 11] = [
    "rasa_sender",
    "rasa_session",
    "rasa_turn",
    "rasa_event",
    "rasa_user_message",
    "rasa_bot_message",
    "rasa_action",
    "rasa_slot",
    "rasa_session_slot_state",
    "rasa_marker",
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
        let outcome: Result<(), sqlx::migrate::MigrateError> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(crate::postgres::PgHandle { pool, .. }) => {
                match migrator.run(pool).await {
                    Ok(()) => postgres::ensure_events_index(pool)
                        .await
                        .map_err(sqlx::migrate::MigrateError::Execute),
                    Err(error) => Err(error),
                }
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => migrator.run(pool).await,
            #[cfg(feature = "mysql")]
            Pool::MySql(crate::mysql::Handle { pool, .. }) => migrator.run(pool).await,
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
        };
        outcome.map_err(|error| Error::migrate(&self.target, self.dialect(), error))
    }

    /// [`Database::store_batch`], and in the same transaction the analytics tables of the batch's
    /// conversations brought up to date with their events: the events this batch inserted (after dedupe),
    /// and any event of the conversation not derived yet, at their positions in the conversation. A
    /// redelivery, a replay or any split of a conversation into batches leaves the tables a one-go
    /// derivation gives. Needs [`Database::migrate_analytics`].
    ///
    /// On PostgreSQL the batch is split by conversation into two transactions run at once, each holding whole
    /// conversations with their derived rows: an error may leave one committed, and storing the same batch
    /// again (as the consumer's retry and the broker's redelivery do) stores and derives each event once.
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
        let outcome: Result<AnalyticsProgress, sqlx::Error> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(crate::postgres::PgHandle { pool, .. }) => {
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
            Pool::MySql(crate::mysql::Handle { pool, .. }) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    mysql::catch_up(conn, &senders, settings).await
                })
                .await
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
        };
        outcome.map_err(|error| {
            Error::database("derive analytics", &self.target, self.dialect(), error)
        })
    }

    /// Stores the markers of an upload (`colloquy markers upload`) as `rasa_pattern` rows in one transaction:
    /// each of `patterns` inserted or updated (same name, same id) and active, every other pattern inactive.
    /// From the next batch on, the consumer with analytics evaluates the active patterns on the new events.
    pub async fn upload_patterns(
        &self,
        patterns: &[colloquy_analytics::markers::Pattern],
    ) -> Result<()> {
        let outcome: Result<(), sqlx::Error> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(crate::postgres::PgHandle { pool, .. }) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    postgres::upload_patterns(conn, patterns).await
                })
                .await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => {
                transaction::write(pool, "BEGIN IMMEDIATE", async |conn| {
                    sqlite::upload_patterns(conn, patterns).await
                })
                .await
            }
            #[cfg(feature = "mysql")]
            Pool::MySql(crate::mysql::Handle { pool, .. }) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    mysql::upload_patterns(conn, patterns).await
                })
                .await
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
        };
        outcome.map_err(|error| {
            Error::database(
                "upload marker patterns",
                &self.target,
                self.dialect(),
                error,
            )
        })
    }

    /// Writes `rows` into the analytics tables in one transaction (insert, or replace the row with the same
    /// id, as [`Rows`] says). Rows of one conversation must come from one `Conversation::apply`.
    pub async fn write_analytics_rows(&self, rows: &Rows) -> Result<()> {
        let outcome: Result<(), sqlx::Error> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(crate::postgres::PgHandle { pool, .. }) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    postgres::write_rows(conn, rows, &postgres::States::default()).await
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
            Pool::MySql(crate::mysql::Handle { pool, .. }) => {
                transaction::write(pool, "BEGIN", async |conn| {
                    mysql::write_rows(conn, rows).await
                })
                .await
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
        };
        outcome.map_err(|error| {
            Error::database("write analytics rows", &self.target, self.dialect(), error)
        })
    }

    /// Every row of the nine Rasa Pro tables and `rasa_marker` as one line of text (`table: values`, each value rendered by
    /// the database), sorted: to compare two states of a database, e.g. what the consumer kept with what a
    /// rebuild computes.
    pub async fn analytics_dump(&self) -> Result<Vec<String>> {
        let tables = &DERIVED_TABLES[..10];
        let outcome: Result<Vec<String>, sqlx::Error> = async { match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(crate::postgres::PgHandle { pool, .. }) => {
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
            Pool::MySql(crate::mysql::Handle { pool, .. }) => {
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
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
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
        let outcome: Result<(), sqlx::Error> = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(crate::postgres::PgHandle { pool, .. }) => {
                delete_all(pool, "BEGIN").await
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => delete_all(pool, "BEGIN IMMEDIATE").await,
            #[cfg(feature = "mysql")]
            Pool::MySql(crate::mysql::Handle { pool, .. }) => delete_all(pool, "BEGIN").await,
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
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
