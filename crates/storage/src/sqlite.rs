//! SQLite: one writer connection (SQLite serialises writes anyway, and one connection keeps `id` order
//! simple), WAL with `synchronous = FULL` (a commit is on disk before a delivery is acknowledged), write
//! transactions opened with `BEGIN IMMEDIATE`.
//!
//! The outbox relay takes no lock across processes: the SQLite tracker store is for one process, as SQLite
//! itself is for embedded use. It reads the outbox, publishes, and deletes in a short transaction, so the
//! write lock is never held while the broker confirms.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::database::{
    ConnectOptions, ConversationRows, ConversionStep, EventsStatus, ExportSelection, OutboxEntry,
    RelayError, RelayPass, Schema, StoredDeadLetter, StoredEvent, bad_url, first_of_each_id,
};
use crate::error::{Error, ErrorKind, Result};
use crate::rows::{DeadLetterRow, EventRow};
use crate::transaction;
use crate::url::Dialect;

/// The migrations of [`Schema::Events`] and those [`Schema::TrackerStore`] adds. Both sets share sqlx's
/// bookkeeping table, so each ignores the other's versions.
fn migrators(schema: Schema) -> Vec<Migrator> {
    let mut migrators = vec![sqlx::migrate!("./migrations/sqlite/events")];
    if schema == Schema::TrackerStore {
        migrators.push(sqlx::migrate!("./migrations/sqlite/tracker_store"));
    }
    for migrator in &mut migrators {
        migrator.set_ignore_missing(true);
    }
    migrators
}

/// SQLite allows 32766 bound parameters per statement; 8 per row at most.
const ROWS_PER_STATEMENT: usize = 4000;

fn db<'a>(action: &'static str, target: &'a str) -> impl FnOnce(sqlx::Error) -> Error + 'a {
    move |error| Error::database(action, target, Dialect::Sqlite, error)
}

pub(crate) fn pool(url: &str, settings: &ConnectOptions) -> Result<SqlitePool> {
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(|error| bad_url(url, &error))?
        .busy_timeout(Duration::from_secs(5));
    options = if settings.read_only {
        // Never create the file (a mistyped path is an error, not an empty database) nor change its mode.
        options.read_only(true).create_if_missing(false)
    } else {
        options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A commit is on disk before we ack: FULL survives power loss, not only process crashes.
            .synchronous(SqliteSynchronous::Full)
    };
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.connect_timeout)
        .connect_lazy_with(options))
}

pub(crate) async fn migrate(pool: &SqlitePool, target: &str, schema: Schema) -> Result<()> {
    adopt(pool, target).await?;
    for migrator in migrators(schema) {
        migrator
            .run(pool)
            .await
            .map_err(|error| Error::migrate(target, Dialect::Sqlite, error))?;
    }
    Ok(())
}

/// Adds Colloquy's `event_id` column to an `events` table that lacks it — one Rasa created — so that the
/// first migration, which skips the existing table, can index it. SQLite has no `ADD COLUMN IF NOT EXISTS`.
async fn adopt(pool: &SqlitePool, target: &str) -> Result<()> {
    let (table, column): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'),
                EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'event_id')",
    )
    .fetch_one(pool)
    .await
    .map_err(db("look at the events table", target))?;
    if table && !column {
        tracing::info!(target = %target, "Adding Colloquy's column to Rasa's events table.");
        sqlx::query("ALTER TABLE events ADD COLUMN event_id TEXT")
            .execute(pool)
            .await
            .map_err(db("add Colloquy's columns to the events table", target))?;
    }
    Ok(())
}

pub(crate) async fn ping(pool: &SqlitePool, target: &str) -> Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(db("answer", target))?;
    Ok(())
}

async fn insert_events(
    conn: &mut SqliteConnection,
    rows: &[&EventRow],
    first_seq: Option<i64>,
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for (chunk_index, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, seq) "#,
        );
        let offset = (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut position = 0;
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.sender_id.as_str())
                .push_bind(row.type_name.as_str())
                .push_bind(row.timestamp)
                .push_bind(row.intent_name.as_deref())
                .push_bind(row.action_name.as_deref())
                .push_bind(row.data.as_str())
                .push_bind(row.event_id.as_deref())
                .push_bind(first_seq.map(|first| first + offset + position));
            position += 1;
        });
        if first_seq.is_none() {
            insert.push(" ON CONFLICT (event_id) DO NOTHING");
        }
        inserted += insert.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

pub(crate) async fn store_batch(
    pool: &SqlitePool,
    target: &str,
    events: &[EventRow],
    dead_letters: &[DeadLetterRow],
    analytics: crate::AnalyticsHook<'_>,
) -> Result<u64> {
    let events = first_of_each_id(events);
    transaction::write(pool, "BEGIN IMMEDIATE", async |conn| {
        let inserted = insert_events_without_seq(conn, &events).await?;
        for chunk in dead_letters.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO dead_letters (source, body, properties, error) ");
            insert.push_values(chunk, |mut values, row| {
                values
                    .push_bind(row.source.as_str())
                    .push_bind(row.body.as_slice())
                    .push_bind(row.properties.as_str())
                    .push_bind(row.error.as_str());
            });
            insert.build().execute(&mut *conn).await?;
        }
        if let Some(settings) = analytics {
            #[cfg(feature = "analytics")]
            {
                let senders =
                    crate::analytics::senders_of(events.iter().map(|row| row.sender_id.as_str()));
                crate::analytics::sqlite::catch_up(conn, &senders, settings).await?;
            }
            #[cfg(not(feature = "analytics"))]
            match *settings {}
        }
        Ok(inserted)
    })
    .await
    .map_err(db("insert a batch of events", target))
}

/// The consumer's insert: a database without the tracker store's `seq` column takes the rows as well.
async fn insert_events_without_seq(
    conn: &mut SqliteConnection,
    rows: &[&EventRow],
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id) "#,
        );
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.sender_id.as_str())
                .push_bind(row.type_name.as_str())
                .push_bind(row.timestamp)
                .push_bind(row.intent_name.as_deref())
                .push_bind(row.action_name.as_deref())
                .push_bind(row.data.as_str())
                .push_bind(row.event_id.as_deref());
        });
        insert.push(" ON CONFLICT (event_id) DO NOTHING");
        inserted += insert.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

pub(crate) async fn insert_tracked(
    pool: &SqlitePool,
    target: &str,
    sender_id: &str,
    first_seq: u64,
    rows: &[EventRow],
    with_outbox: bool,
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let rows: Vec<&EventRow> = rows.iter().collect();
    let first_seq = i64::try_from(first_seq).unwrap_or(i64::MAX);
    let outcome = transaction::write(pool, "BEGIN IMMEDIATE", async |conn| {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE sender_id = ?1")
            .bind(sender_id)
            .fetch_one(&mut *conn)
            .await?;
        if stored != first_seq {
            return Ok(0);
        }
        let inserted = insert_events(conn, &rows, Some(first_seq)).await?;
        if with_outbox {
            sqlx::query(
                "INSERT INTO outbox (event_row_id)
                 SELECT id FROM events WHERE sender_id = ?1 AND seq >= ?2 ORDER BY id",
            )
            .bind(sender_id)
            .bind(first_seq)
            .execute(&mut *conn)
            .await?;
        }
        Ok(inserted)
    })
    .await;
    match outcome {
        Ok(inserted) => Ok(inserted),
        Err(error) => match db("insert the new events", target)(error) {
            error if error.kind() == ErrorKind::UniqueViolation => Ok(0),
            error => Err(error),
        },
    }
}

pub(crate) async fn count_events(pool: &SqlitePool, target: &str, sender_id: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE sender_id = ?1")
        .bind(sender_id)
        .fetch_one(pool)
        .await
        .map_err(db("count the conversation's events", target))?;
    Ok(count as u64)
}

pub(crate) async fn count_stored_ids(
    pool: &SqlitePool,
    target: &str,
    sender_id: &str,
    event_ids: &[&str],
) -> Result<u64> {
    let mut found = 0;
    for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT count(*) FROM events WHERE sender_id = ");
        query.push_bind(sender_id).push(" AND event_id IN (");
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(*id);
        }
        query.push(")");
        let count: i64 = query
            .build_query_scalar()
            .fetch_one(pool)
            .await
            .map_err(db("look for events by id", target))?;
        found += count as u64;
    }
    Ok(found)
}

pub(crate) async fn read_conversation(
    pool: &SqlitePool,
    target: &str,
    sender_id: &str,
    latest_session_only: bool,
) -> Result<Option<ConversationRows>> {
    let rows = sqlx::query(
        r#"WITH session AS (
               SELECT max("timestamp") AS start FROM events
               WHERE sender_id = ?1 AND type_name = 'session_started'),
           total AS (SELECT count(*) AS n FROM events WHERE sender_id = ?1)
           SELECT e.*, total.n AS total
           FROM events e, session, total
           WHERE e.sender_id = ?1
             AND (NOT ?2 OR session.start IS NULL OR e."timestamp" >= session.start)
           ORDER BY e.id"#,
    )
    .bind(sender_id)
    .bind(latest_session_only)
    .fetch_all(pool)
    .await
    .map_err(db("read a conversation", target))?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let total: i64 = first.get("total");
    Ok(Some(ConversationRows {
        total: total as u64,
        rows: rows.iter().map(stored_event).collect(),
    }))
}

fn stored_event(row: &SqliteRow) -> StoredEvent {
    StoredEvent {
        row_id: row
            .try_get::<i64, _>("id")
            .or_else(|_| row.try_get::<i32, _>("id").map(i64::from))
            .unwrap_or_default(),
        sender_id: row.try_get("sender_id").unwrap_or_default(),
        type_name: row.try_get("type_name").unwrap_or_default(),
        intent_name: row.try_get("intent_name").ok().flatten(),
        action_name: row.try_get("action_name").ok().flatten(),
        data: row
            .try_get::<Option<String>, _>("data")
            .ok()
            .flatten()
            .unwrap_or_default(),
        // Absent from a database Colloquy never migrated.
        event_id: row.try_get("event_id").ok().flatten(),
        timestamp: row.try_get("timestamp").ok().flatten(),
    }
}

pub(crate) async fn conversation_exists(
    pool: &SqlitePool,
    target: &str,
    sender_id: &str,
) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE sender_id = ?1)")
        .bind(sender_id)
        .fetch_one(pool)
        .await
        .map_err(db("look for a conversation", target))
}

pub(crate) async fn outbox_len(pool: &SqlitePool, target: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .map_err(db("count the outbox", target))?;
    Ok(count as u64)
}

pub(crate) async fn relay_outbox<F, Fut, E>(
    pool: &SqlitePool,
    target: &str,
    limit: u32,
    publish: F,
) -> Result<RelayPass, RelayError<E>>
where
    F: FnOnce(Vec<OutboxEntry>) -> Fut + Send,
    Fut: Future<Output = std::result::Result<(), E>> + Send,
    E: Send,
{
    let storage = |action| move |error| RelayError::Storage(db(action, target)(error));
    let entries: Vec<OutboxEntry> = sqlx::query(
        "SELECT o.event_row_id AS row_id, e.sender_id, e.seq, e.event_id, e.data
         FROM outbox o JOIN events e ON e.id = o.event_row_id
         ORDER BY o.event_row_id
         LIMIT ?1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(storage("read the outbox"))?
    .iter()
    .map(|row| OutboxEntry {
        row_id: row.get("row_id"),
        sender_id: row.get("sender_id"),
        seq: row.get("seq"),
        event_id: row.get("event_id"),
        data: row.get::<Option<String>, _>("data").unwrap_or_default(),
    })
    .collect();
    if entries.is_empty() {
        return Ok(RelayPass::Published(0));
    }
    let row_ids: Vec<i64> = entries.iter().map(|entry| entry.row_id).collect();
    publish(entries).await.map_err(RelayError::Publish)?;
    transaction::write(pool, "BEGIN IMMEDIATE", async |conn| {
        for chunk in row_ids.chunks(ROWS_PER_STATEMENT) {
            let mut delete: QueryBuilder<Sqlite> =
                QueryBuilder::new("DELETE FROM outbox WHERE event_row_id IN (");
            let mut ids = delete.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            delete.push(")");
            delete.build().execute(&mut *conn).await?;
        }
        Ok(())
    })
    .await
    .map_err(storage("delete confirmed outbox entries"))?;
    Ok(RelayPass::Published(row_ids.len()))
}

pub(crate) async fn table_exists(pool: &SqlitePool, target: &str, table: &str) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .map_err(db("look for a table", target))
}

pub(crate) async fn export_conversations(
    pool: &SqlitePool,
    target: &str,
    selection: &ExportSelection,
) -> Result<Vec<String>> {
    // SQLite compares text by bytes (BINARY collation) unless told otherwise.
    let mut query: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT sender_id FROM events WHERE 1 = 1");
    if !selection.only.is_empty() {
        query.push(" AND sender_id IN (");
        let mut ids = query.separated(", ");
        for id in &selection.only {
            ids.push_bind(id.as_str());
        }
        query.push(")");
    }
    if let Some(from) = &selection.from {
        query
            .push(" AND sender_id COLLATE BINARY >= ")
            .push_bind(from.as_str());
    }
    query.push(" GROUP BY sender_id ORDER BY sender_id COLLATE BINARY");
    query
        .build_query_scalar()
        .fetch_all(pool)
        .await
        .map_err(db("list the conversations", target))
}

pub(crate) async fn count_selected(
    pool: &SqlitePool,
    target: &str,
    conversations: &[String],
    selection: &ExportSelection,
) -> Result<u64> {
    let mut query: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT count(*) FROM events WHERE sender_id IN (");
    let mut ids = query.separated(", ");
    for id in conversations {
        ids.push_bind(id.as_str());
    }
    query.push(")");
    if selection.minimum_timestamp.is_some() || selection.maximum_timestamp.is_some() {
        query.push(r#" AND "timestamp" IS NOT NULL"#);
    }
    if let Some(min) = selection.minimum_timestamp {
        query.push(r#" AND "timestamp" >= "#).push_bind(min);
    }
    if let Some(max) = selection.maximum_timestamp {
        query.push(r#" AND "timestamp" < "#).push_bind(max);
    }
    let count: i64 = query
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(db("count the events to export", target))?;
    Ok(count as u64)
}

pub(crate) async fn conversation_rows(
    pool: &SqlitePool,
    target: &str,
    sender_id: &str,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query("SELECT * FROM events WHERE sender_id = ?1 ORDER BY id")
        // Not a cached prepared statement: its columns change when a migration adopts the table.
        .persistent(false)
        .bind(sender_id)
        .fetch_all(pool)
        .await
        .map_err(db("read a conversation", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn conversation_page(
    pool: &SqlitePool,
    target: &str,
    sender_id: &str,
    after_row_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    let rows =
        sqlx::query("SELECT * FROM events WHERE sender_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
            // Not a cached prepared statement: its columns change when a migration adopts the table.
            .persistent(false)
            .bind(sender_id)
            .bind(after_row_id)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db("read a page of a conversation", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn event_counts(
    pool: &SqlitePool,
    target: &str,
) -> Result<(Vec<(String, i64)>, i64)> {
    let by_type = sqlx::query_as(
        "SELECT type_name, count(*) FROM events GROUP BY type_name ORDER BY count(*) DESC, type_name",
    )
    .fetch_all(pool)
    .await
    .map_err(db("count the events", target))?;
    let conversations = sqlx::query_scalar("SELECT count(DISTINCT sender_id) FROM events")
        .fetch_one(pool)
        .await
        .map_err(db("count the conversations", target))?;
    Ok((by_type, conversations))
}

pub(crate) async fn dead_letters(
    pool: &SqlitePool,
    target: &str,
    after: i64,
    limit: i64,
    preview_bytes: Option<usize>,
) -> Result<Vec<StoredDeadLetter>> {
    let preview = preview_bytes.map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
    let rows = sqlx::query(
        "SELECT id, received_at, source,
                CASE WHEN ?3 IS NULL THEN body ELSE substr(body, 1, ?3) END AS body,
                length(body) AS body_len, properties, error
         FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2",
    )
    .bind(after)
    .bind(limit)
    .bind(preview)
    .fetch_all(pool)
    .await
    .map_err(db("read the dead letters", target))?;
    Ok(rows
        .iter()
        .map(|row| StoredDeadLetter {
            id: row.get("id"),
            received_at: row.get("received_at"),
            source: row.get("source"),
            body: row.get("body"),
            body_len: row.get("body_len"),
            properties: row.get("properties"),
            error: row.get("error"),
        })
        .collect())
}

pub(crate) async fn last_dead_letter_id(pool: &SqlitePool, target: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM dead_letters")
        .fetch_one(pool)
        .await
        .map_err(db("read the dead letters", target))
}

pub(crate) async fn delete_dead_letter(pool: &SqlitePool, target: &str, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM dead_letters WHERE id = ?1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db("delete a dead letter", target))?;
    Ok(())
}

pub(crate) async fn events_after(
    pool: &SqlitePool,
    target: &str,
    after_row_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query("SELECT * FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")
        .bind(after_row_id)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db("read the events", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn table_counts(pool: &SqlitePool, target: &str) -> Result<(u64, u64)> {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .map_err(db("count the events", target))?;
    let dead_letters: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(pool)
        .await
        .map_err(db("count the dead letters", target))?;
    Ok((events as u64, dead_letters as u64))
}

pub(crate) async fn events_status(pool: &SqlitePool, target: &str) -> Result<EventsStatus> {
    let (rows, last_id): (i64, i64) =
        sqlx::query_as("SELECT count(*), COALESCE(max(id), 0) FROM events")
            .fetch_one(pool)
            .await
            .map_err(db("read the state of the events table", target))?;
    Ok(EventsStatus {
        rows: rows as u64,
        bytes: None,
        // An INTEGER PRIMARY KEY is the 64-bit rowid.
        id_bits: 64,
        last_id,
        // SQLite keeps the unique index on `event_id`: its tables stay small enough not to need the key.
        compact_key: false,
        legacy_indexes: Vec::new(),
    })
}

pub(crate) async fn convert_event_key(
    _pool: &SqlitePool,
    target: &str,
    _chunk_rows: i64,
    _progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<ConversionStep>> {
    Err(Error::Unsupported {
        target: target.to_owned(),
        dialect: Dialect::Sqlite,
        what: "the compact dedupe key is PostgreSQL's; SQLite keeps the unique index on event_id",
    })
}

pub(crate) async fn convert_ids(_pool: &SqlitePool, _target: &str) -> Result<Vec<ConversionStep>> {
    Ok(vec![ConversionStep {
        what: "SQLite's INTEGER PRIMARY KEY is 64-bit already: nothing to do".into(),
        took: Duration::ZERO,
    }])
}

const Q_DAY: &str =
    "SELECT CAST(day AS TEXT), sessions FROM colloquy_sessions_per_day ORDER BY day";
const Q_CHANNEL: &str =
    "SELECT channel, sessions FROM colloquy_sessions_per_channel ORDER BY sessions DESC, channel";
const Q_INTENTS: &str =
    "SELECT intent, messages FROM colloquy_top_intents ORDER BY messages DESC, intent LIMIT 20";
const Q_TURNS: &str =
    "SELECT turns, count(*) FROM colloquy_turns_per_session GROUP BY turns ORDER BY turns";
const Q_SENDERS: &str = "SELECT senders FROM colloquy_senders";
const Q_RESPONSE: &str = "SELECT CAST(avg(seconds) AS REAL) FROM colloquy_bot_response_time";
const Q_RATES: &str = "SELECT (SELECT CAST(escalation_rate AS REAL) FROM colloquy_escalation_rate), (SELECT CAST(abandonment_rate AS REAL) FROM colloquy_abandonment_rate), (SELECT CAST(containment_rate AS REAL) FROM colloquy_containment_rate), (SELECT CAST(fallback_rate AS REAL) FROM colloquy_fallback_rate)";

/// The analytics metric views, read for a dashboard.
pub(crate) async fn analytics_metrics(
    pool: &SqlitePool,
    target: &str,
) -> Result<crate::database::AnalyticsMetrics> {
    let failed = || db("read the analytics metrics", target);
    let sessions_per_day = sqlx::query_as(Q_DAY)
        .fetch_all(pool)
        .await
        .map_err(failed())?;
    let sessions_per_channel = sqlx::query_as(Q_CHANNEL)
        .fetch_all(pool)
        .await
        .map_err(failed())?;
    let top_intents = sqlx::query_as(Q_INTENTS)
        .fetch_all(pool)
        .await
        .map_err(failed())?;
    let turns_per_session = sqlx::query_as(Q_TURNS)
        .fetch_all(pool)
        .await
        .map_err(failed())?;
    let senders: Option<i64> = sqlx::query_scalar(Q_SENDERS)
        .fetch_optional(pool)
        .await
        .map_err(failed())?;
    let average_bot_response_seconds: Option<f64> = sqlx::query_scalar(Q_RESPONSE)
        .fetch_one(pool)
        .await
        .map_err(failed())?;
    let rates: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(Q_RATES)
        .fetch_one(pool)
        .await
        .map_err(failed())?;
    Ok(crate::database::AnalyticsMetrics {
        sessions_per_day,
        sessions_per_channel,
        top_intents,
        turns_per_session,
        senders: senders.unwrap_or(0),
        average_bot_response_seconds,
        escalation_rate: rates.0,
        abandonment_rate: rates.1,
        containment_rate: rates.2,
        fallback_rate: rates.3,
    })
}
