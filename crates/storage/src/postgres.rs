//! PostgreSQL: batches as one `INSERT ... SELECT FROM UNNEST` (one round trip, `ON CONFLICT DO NOTHING`
//! against the unique `event_id`), a tracker save as one count-guarded statement, the outbox relay under a
//! transaction-scoped advisory lock.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::database::{
    ConnectOptions, ConversationRows, ExportSelection, OutboxEntry, RelayError, RelayPass, Schema,
    StoredDeadLetter, StoredEvent, bad_url, first_of_each_id,
};
use crate::error::{Error, ErrorKind, Result};
use crate::rows::{DeadLetterRow, EventRow};
use crate::transaction;
use crate::url::Dialect;

/// The migrations of [`Schema::Events`] and those [`Schema::TrackerStore`] adds. Both sets share sqlx's
/// bookkeeping table, so each ignores the other's versions.
fn migrators(schema: Schema) -> Vec<Migrator> {
    let mut migrators = vec![sqlx::migrate!("./migrations/postgres/events")];
    if schema == Schema::TrackerStore {
        migrators.push(sqlx::migrate!("./migrations/postgres/tracker_store"));
    }
    for migrator in &mut migrators {
        migrator.set_ignore_missing(true);
    }
    migrators
}

/// The two-key advisory lock of the outbox relay.
const RELAY_LOCK: (i32, i32) = (0x636f_6c6c, 1);

/// How much event data one INSERT message carries at most. sqlx does not set TCP_NODELAY, so a message larger
/// than one TCP segment (64 KiB on loopback) can have its tail held back by Nagle's algorithm until the server's
/// delayed ACK, some 40 ms; messages below this size go out at once. Larger batches are inserted in chunks of
/// this size within one transaction.
const STATEMENT_DATA_BYTES: usize = 48 * 1024;

fn db<'a>(action: &'static str, target: &'a str) -> impl FnOnce(sqlx::Error) -> Error + 'a {
    move |error| Error::database(action, target, Dialect::Postgres, error)
}

fn options(url: &str, options: &ConnectOptions) -> Result<PgConnectOptions> {
    let mut parsed = PgConnectOptions::from_str(url)
        .map_err(|error| bad_url(url, &error))?
        .application_name(options.application_name);
    if options.read_only {
        parsed = parsed.options([("default_transaction_read_only", "on")]);
    }
    Ok(parsed)
}

pub(crate) fn pool(url: &str, settings: &ConnectOptions) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .connect_lazy_with(options(url, settings)?))
}

pub(crate) async fn create_if_absent(
    url: &str,
    login_db: &str,
    settings: &ConnectOptions,
) -> Result<()> {
    let options = options(url, settings)?;
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let target = crate::url::target(url);
    let mut conn = PgConnection::connect_with(&options.clone().database(login_db))
        .await
        .map_err(db("connect to the login database", &target))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut conn)
            .await
            .map_err(db("look for the database", &target))?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %database, "Created the database."),
            // Another process created it in the meantime.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => {}
            Err(error) => return Err(db("create the database", &target)(error)),
        }
    }
    conn.close().await.ok();
    Ok(())
}

pub(crate) async fn migrate(pool: &PgPool, target: &str, schema: Schema) -> Result<()> {
    for migrator in migrators(schema) {
        migrator
            .run(pool)
            .await
            .map_err(|error| Error::migrate(target, Dialect::Postgres, error))?;
    }
    Ok(())
}

pub(crate) async fn ping(pool: &PgPool, target: &str) -> Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(db("answer", target))?;
    Ok(())
}

/// `rows` as one array per column, for an `UNNEST` insert.
struct Columns<'a> {
    sender_ids: Vec<&'a str>,
    type_names: Vec<&'a str>,
    timestamps: Vec<Option<f64>>,
    intent_names: Vec<Option<&'a str>>,
    action_names: Vec<Option<&'a str>>,
    datas: Vec<&'a str>,
    event_ids: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(rows: &[&'a EventRow]) -> Self {
        Self {
            sender_ids: rows.iter().map(|row| row.sender_id.as_str()).collect(),
            type_names: rows.iter().map(|row| row.type_name.as_str()).collect(),
            timestamps: rows.iter().map(|row| row.timestamp).collect(),
            intent_names: rows.iter().map(|row| row.intent_name.as_deref()).collect(),
            action_names: rows.iter().map(|row| row.action_name.as_deref()).collect(),
            datas: rows.iter().map(|row| row.data.as_str()).collect(),
            event_ids: rows.iter().map(|row| row.event_id.as_deref()).collect(),
        }
    }
}

async fn insert_events(conn: &mut PgConnection, rows: &[&EventRow]) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns = Columns::of(rows);
    let result = sqlx::query(
        r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id)
           SELECT sender_id, type_name, ts, intent_name, action_name, data, event_id
           FROM UNNEST($1::varchar[], $2::varchar[], $3::float8[], $4::varchar[], $5::varchar[], $6::text[],
                       $7::text[])
                WITH ORDINALITY AS batch(sender_id, type_name, ts, intent_name, action_name, data, event_id, position)
           ORDER BY position
           ON CONFLICT (event_id) DO NOTHING"#,
    )
    .bind(columns.sender_ids)
    .bind(columns.type_names)
    .bind(columns.timestamps)
    .bind(columns.intent_names)
    .bind(columns.action_names)
    .bind(columns.datas)
    .bind(columns.event_ids)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

async fn insert_dead_letters(
    conn: &mut PgConnection,
    rows: &[DeadLetterRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = rows.iter().map(|row| row.source.as_str()).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|row| row.body.as_slice()).collect();
    let properties: Vec<&str> = rows.iter().map(|row| row.properties.as_str()).collect();
    let errors: Vec<&str> = rows.iter().map(|row| row.error.as_str()).collect();
    sqlx::query(
        "INSERT INTO dead_letters (source, body, properties, error)
         SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[], $4::text[])",
    )
    .bind(sources)
    .bind(bodies)
    .bind(properties)
    .bind(errors)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn store_batch(
    pool: &PgPool,
    target: &str,
    events: &[EventRow],
    dead_letters: &[DeadLetterRow],
    analytics: Option<&colloquy_analytics::Settings>,
) -> Result<u64> {
    let events = first_of_each_id(events);
    let fits_one_segment =
        events.iter().map(|row| row.data.len()).sum::<usize>() <= STATEMENT_DATA_BYTES;
    if dead_letters.is_empty() && fits_one_segment && analytics.is_none() {
        // One statement is atomic on its own: a small batch needs one round trip, not BEGIN + INSERT + COMMIT.
        return transaction::single(pool, async |conn| insert_events(conn, &events).await)
            .await
            .map_err(db("insert a batch of events", target));
    }
    transaction::write(pool, "BEGIN", async |conn| {
        let mut inserted = 0;
        for chunk in segment_sized_chunks(&events) {
            inserted += insert_events(conn, chunk).await?;
        }
        insert_dead_letters(conn, dead_letters).await?;
        if let Some(settings) = analytics {
            let senders =
                crate::analytics::senders_of(events.iter().map(|row| row.sender_id.as_str()));
            crate::analytics::postgres::catch_up(conn, &senders, settings).await?;
        }
        Ok(inserted)
    })
    .await
    .map_err(db("insert a batch of events", target))
}

/// Consecutive chunks of `events` of at most [`STATEMENT_DATA_BYTES`] of data each (at least one row each).
fn segment_sized_chunks<'a, 'r>(
    events: &'a [&'r EventRow],
) -> impl Iterator<Item = &'a [&'r EventRow]> {
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

pub(crate) async fn insert_tracked(
    pool: &PgPool,
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
    let columns = Columns::of(&rows);
    // One statement, atomic on its own: it inserts only if the conversation holds exactly `first_seq` rows,
    // and the unique (sender_id, seq) index refuses a concurrent save that took these positions first, even
    // where this statement's snapshot cannot see it yet.
    let query = if with_outbox {
        sqlx::query(
            r#"WITH inserted AS (
                 INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, seq)
                 SELECT $1, type_name, ts, intent_name, action_name, data, event_id, $2 + position - 1
                 FROM UNNEST($3::varchar[], $4::float8[], $5::varchar[], $6::varchar[], $7::text[], $8::text[])
                      WITH ORDINALITY AS batch(type_name, ts, intent_name, action_name, data, event_id, position)
                 WHERE (SELECT count(*) FROM events WHERE sender_id = $1) = $2
                 ORDER BY position
                 RETURNING id)
               INSERT INTO outbox (event_row_id) SELECT id FROM inserted"#,
        )
    } else {
        sqlx::query(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, seq)
               SELECT $1, type_name, ts, intent_name, action_name, data, event_id, $2 + position - 1
               FROM UNNEST($3::varchar[], $4::float8[], $5::varchar[], $6::varchar[], $7::text[], $8::text[])
                    WITH ORDINALITY AS batch(type_name, ts, intent_name, action_name, data, event_id, position)
               WHERE (SELECT count(*) FROM events WHERE sender_id = $1) = $2
               ORDER BY position"#,
        )
    };
    let first_seq = i64::try_from(first_seq).unwrap_or(i64::MAX);
    let outcome = transaction::single(pool, async |conn| {
        query
            .bind(sender_id)
            .bind(first_seq)
            .bind(columns.type_names)
            .bind(columns.timestamps)
            .bind(columns.intent_names)
            .bind(columns.action_names)
            .bind(columns.datas)
            .bind(columns.event_ids)
            .execute(conn)
            .await
    })
    .await;
    match outcome {
        Ok(result) => Ok(result.rows_affected()),
        Err(error) => match db("insert the new events", target)(error) {
            error if error.kind() == ErrorKind::UniqueViolation => Ok(0),
            error => Err(error),
        },
    }
}

pub(crate) async fn count_events(pool: &PgPool, target: &str, sender_id: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE sender_id = $1")
        .bind(sender_id)
        .fetch_one(pool)
        .await
        .map_err(db("count the conversation's events", target))?;
    Ok(count as u64)
}

pub(crate) async fn count_stored_ids(
    pool: &PgPool,
    target: &str,
    sender_id: &str,
    event_ids: &[&str],
) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE sender_id = $1 AND event_id = ANY($2::text[])",
    )
    .bind(sender_id)
    .bind(event_ids)
    .fetch_one(pool)
    .await
    .map_err(db("look for events by id", target))?;
    Ok(count as u64)
}

pub(crate) async fn read_conversation(
    pool: &PgPool,
    target: &str,
    sender_id: &str,
    latest_session_only: bool,
) -> Result<Option<ConversationRows>> {
    // One statement, so the rows and the total come from one snapshot; the latest session is selected as
    // Rasa's `_event_query` selects it.
    let rows = sqlx::query(
        r#"WITH session AS (
               SELECT max("timestamp") AS start FROM events
               WHERE sender_id = $1 AND type_name = 'session_started'),
           total AS (SELECT count(*) AS n FROM events WHERE sender_id = $1)
           SELECT e.*, total.n AS total
           FROM events e, session, total
           WHERE e.sender_id = $1
             AND (NOT $2 OR session.start IS NULL OR e."timestamp" >= session.start)
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

fn stored_event(row: &sqlx::postgres::PgRow) -> StoredEvent {
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
    pool: &PgPool,
    target: &str,
    sender_id: &str,
) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE sender_id = $1)")
        .bind(sender_id)
        .fetch_one(pool)
        .await
        .map_err(db("look for a conversation", target))
}

pub(crate) async fn outbox_len(pool: &PgPool, target: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .map_err(db("count the outbox", target))?;
    Ok(count as u64)
}

pub(crate) async fn relay_outbox<F, Fut, E>(
    pool: &PgPool,
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
    // Closed, not reused, unless the pass ends cleanly: a pass given up half-way must not leave the relay
    // lock held by an idle connection in the pool.
    let mut conn = transaction::Discarding::acquire(pool)
        .await
        .map_err(storage("begin a relay pass"))?;
    let outcome = async {
        sqlx::query("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(storage("begin a relay pass"))?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(RELAY_LOCK.0)
            .bind(RELAY_LOCK.1)
            .fetch_one(&mut *conn)
            .await
            .map_err(storage("take the relay lock"))?;
        if !locked {
            sqlx::query("ROLLBACK")
                .execute(&mut *conn)
                .await
                .map_err(storage("end a relay pass"))?;
            return Ok(RelayPass::Busy);
        }
        let entries: Vec<OutboxEntry> = sqlx::query(
            "SELECT o.event_row_id::int8 AS row_id, e.sender_id, e.seq, e.event_id, e.data
             FROM outbox o JOIN events e ON e.id = o.event_row_id
             ORDER BY o.event_row_id
             LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
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
        let row_ids: Vec<i64> = entries.iter().map(|entry| entry.row_id).collect();
        if !entries.is_empty() {
            publish(entries).await.map_err(RelayError::Publish)?;
            sqlx::query("DELETE FROM outbox WHERE event_row_id = ANY($1::int8[])")
                .bind(&row_ids)
                .execute(&mut *conn)
                .await
                .map_err(storage("delete confirmed outbox entries"))?;
        }
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(storage("commit a relay pass"))?;
        Ok(RelayPass::Published(row_ids.len()))
    }
    .await;
    if outcome.is_ok() {
        conn.keep();
    }
    outcome
}

pub(crate) async fn table_exists(pool: &PgPool, target: &str, table: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await
        .map_err(db("look for a table", target))
}

pub(crate) async fn export_conversations(
    pool: &PgPool,
    target: &str,
    selection: &ExportSelection,
) -> Result<Vec<String>> {
    let only = (!selection.only.is_empty()).then_some(&selection.only);
    sqlx::query_scalar(
        r#"SELECT sender_id FROM events
           WHERE ($1::text[] IS NULL OR sender_id = ANY($1))
             AND ($2::text IS NULL OR sender_id COLLATE "C" >= $2 COLLATE "C")
           GROUP BY sender_id ORDER BY sender_id COLLATE "C""#,
    )
    .bind(only)
    .bind(selection.from.as_deref())
    .fetch_all(pool)
    .await
    .map_err(db("list the conversations", target))
}

pub(crate) async fn count_selected(
    pool: &PgPool,
    target: &str,
    conversations: &[String],
    selection: &ExportSelection,
) -> Result<u64> {
    let bounded = selection.minimum_timestamp.is_some() || selection.maximum_timestamp.is_some();
    let count: i64 = sqlx::query_scalar(
        r#"SELECT count(*) FROM events
           WHERE sender_id = ANY($1)
             AND (NOT $4 OR "timestamp" IS NOT NULL)
             AND ($2::float8 IS NULL OR "timestamp" >= $2)
             AND ($3::float8 IS NULL OR "timestamp" < $3)"#,
    )
    .bind(conversations)
    .bind(selection.minimum_timestamp)
    .bind(selection.maximum_timestamp)
    .bind(bounded)
    .fetch_one(pool)
    .await
    .map_err(db("count the events to export", target))?;
    Ok(count as u64)
}

pub(crate) async fn conversation_rows(
    pool: &PgPool,
    target: &str,
    sender_id: &str,
) -> Result<Vec<StoredEvent>> {
    // `*`, so that a database Rasa created (no `event_id` column) reads the same way.
    let rows = sqlx::query("SELECT * FROM events WHERE sender_id = $1 ORDER BY id")
        // Not a cached prepared statement: its columns change when a migration adopts the table.
        .persistent(false)
        .bind(sender_id)
        .fetch_all(pool)
        .await
        .map_err(db("read a conversation", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn event_counts(pool: &PgPool, target: &str) -> Result<(Vec<(String, i64)>, i64)> {
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
    pool: &PgPool,
    target: &str,
    after: i64,
    limit: i64,
    preview_bytes: Option<usize>,
) -> Result<Vec<StoredDeadLetter>> {
    let preview = preview_bytes.map(|bytes| i32::try_from(bytes).unwrap_or(i32::MAX));
    let rows = sqlx::query(
        "SELECT id, received_at::text AS received_at, source,
                CASE WHEN $3::int4 IS NULL THEN body ELSE substring(body FROM 1 FOR $3) END AS body,
                octet_length(body)::int8 AS body_len, properties, error
         FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
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

pub(crate) async fn last_dead_letter_id(pool: &PgPool, target: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::int8 FROM dead_letters")
        .fetch_one(pool)
        .await
        .map_err(db("read the dead letters", target))
}

pub(crate) async fn delete_dead_letter(pool: &PgPool, target: &str, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM dead_letters WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db("delete a dead letter", target))?;
    Ok(())
}

pub(crate) async fn events_after(
    pool: &PgPool,
    target: &str,
    after_row_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query("SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2")
        .bind(after_row_id)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db("read the events", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn table_counts(pool: &PgPool, target: &str) -> Result<(u64, u64)> {
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
