//! PostgreSQL: batches as one `INSERT ... SELECT FROM UNNEST` (one round trip, `ON CONFLICT DO NOTHING`
//! against the unique dedupe key: the 16-byte `event_key`, or on a table not converted yet the `event_id`
//! text), a tracker save as one count-guarded statement, the outbox relay under a transaction-scoped advisory
//! lock, and the conversions of a big table that run only on request (`convert_event_key`, `convert_ids`).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};

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

/// A pool, and which unique index of the `events` table dedupes (found on first use, found again when a
/// conversion changed it under a running consumer).
#[derive(Debug, Clone)]
pub(crate) struct PgHandle {
    /// The pool itself, for what does not insert into `events` (analytics, reads, migrations).
    pub(crate) pool: PgPool,
    dedupe: Arc<AtomicU8>,
}

impl std::ops::Deref for PgHandle {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.pool
    }
}

/// The unique index an insert names as its conflict target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DedupeIndex {
    /// `event_key` (16 bytes): a new or converted table.
    Key = 1,
    /// `event_id` (text): a table that held rows before the key existed and was not converted yet.
    Id = 2,
}

impl DedupeIndex {
    fn conflict_clause(self) -> &'static str {
        match self {
            Self::Key => "ON CONFLICT (event_key) DO NOTHING",
            Self::Id => "ON CONFLICT (event_id) DO NOTHING",
        }
    }
}

impl PgHandle {
    /// The dedupe index, from the cache or, the first time, from the catalog.
    async fn dedupe_index(&self) -> Result<DedupeIndex, sqlx::Error> {
        match self.dedupe.load(Ordering::Relaxed) {
            1 => Ok(DedupeIndex::Key),
            2 => Ok(DedupeIndex::Id),
            _ => self.find_dedupe_index().await,
        }
    }

    /// Reads which unique index exists (the key's when both do, as during a conversion). With neither, the
    /// key's: the insert then fails with the database's own "no unique constraint" error, a schema fault.
    async fn find_dedupe_index(&self) -> Result<DedupeIndex, sqlx::Error> {
        let column: Option<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = to_regclass('events') AND i.indisunique AND i.indisvalid
               AND i.indnatts = 1 AND i.indpred IS NULL AND a.attname IN ('event_key', 'event_id')
             ORDER BY a.attname = 'event_key' DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let index = if column.as_deref() == Some("event_id") {
            DedupeIndex::Id
        } else {
            DedupeIndex::Key
        };
        self.dedupe.store(index as u8, Ordering::Relaxed);
        Ok(index)
    }
}

pub(crate) fn pool(url: &str, settings: &ConnectOptions) -> Result<PgHandle> {
    Ok(PgHandle {
        pool: PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.connect_timeout)
            .connect_lazy_with(options(url, settings)?),
        dedupe: Arc::default(),
    })
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

/// The dedupe key of a stored row computed in SQL: the formula of [`EventRow::dedupe_key`], byte for byte
/// (`floor` of the same IEEE product, the same clamp, the same SHA-256 prefix).
const DEDUPE_KEY_SQL: &str = r#"int8send(CASE WHEN "timestamp" IS NULL OR "timestamp" = 'NaN'::float8 THEN 0
        ELSE LEAST(GREATEST(floor("timestamp" * 1000000), 0), 9e18)::int8 END)
    || substring(sha256(convert_to(event_id, 'UTF8')) FROM 1 FOR 8)"#;

pub(crate) async fn events_status(pool: &PgPool, target: &str) -> Result<EventsStatus> {
    let row = sqlx::query(
        "SELECT GREATEST(c.reltuples, 0)::int8 AS rows, pg_total_relation_size(c.oid) AS bytes,
                (SELECT data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'id')
                    AS id_type,
                pg_get_serial_sequence('events', 'id') AS id_sequence,
                (SELECT COALESCE(max(id), 0)::int8 FROM events) AS max_id,
                EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('events_event_key')
                        AND indisvalid) AS compact_key,
                to_regclass('events_event_id_key') IS NOT NULL AS event_id_index,
                to_regclass('events_sender_id_id') IS NOT NULL AS second_sender_index
         FROM pg_class c WHERE c.oid = 'events'::regclass",
    )
    .fetch_one(pool)
    .await
    .map_err(db("read the state of the events table", target))?;
    let mut last_id: i64 = row.get("max_id");
    if let Some(sequence) = row.get::<Option<String>, _>("id_sequence") {
        // The sequence may be ahead of the rows (rolled back inserts): what it gave out counts.
        let given: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"
        )))
        .fetch_one(pool)
        .await
        .map_err(db("read the id sequence", target))?;
        last_id = last_id.max(given);
    }
    let mut legacy_indexes = Vec::new();
    if row.get("event_id_index") {
        legacy_indexes.push("events_event_id_key (unique, on the event_id text)".to_owned());
    }
    if row.get("second_sender_index") {
        legacy_indexes.push("events_sender_id_id (a second index on sender_id)".to_owned());
    }
    Ok(EventsStatus {
        rows: row.get::<i64, _>("rows") as u64,
        bytes: Some(row.get::<i64, _>("bytes") as u64),
        id_bits: if row.get::<Option<String>, _>("id_type").as_deref() == Some("bigint") {
            64
        } else {
            32
        },
        last_id,
        compact_key: row.get("compact_key"),
        legacy_indexes,
    })
}

pub(crate) async fn convert_event_key(
    pool: &PgPool,
    target: &str,
    chunk_rows: i64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<ConversionStep>> {
    let mut steps = Vec::new();
    let chunk_rows = chunk_rows.max(1);
    // 1. The keys of the rows stored before: by id ranges, each its own statement and transaction.
    let started = std::time::Instant::now();
    sqlx::query("ALTER TABLE events ADD COLUMN IF NOT EXISTS event_key BYTEA")
        .execute(pool)
        .await
        .map_err(db("add the event_key column", target))?;
    let (low, high): (i64, i64) =
        sqlx::query_as("SELECT COALESCE(min(id), 0)::int8, COALESCE(max(id), 0)::int8 FROM events")
            .fetch_one(pool)
            .await
            .map_err(db("read the id range", target))?;
    let fill = format!(
        "UPDATE events SET event_key = {DEDUPE_KEY_SQL}
         WHERE id >= $1 AND id < $2 AND event_key IS NULL AND event_id IS NOT NULL"
    );
    let mut filled = 0u64;
    let mut from = low;
    while from <= high {
        let to = from.saturating_add(chunk_rows);
        filled += sqlx::query(sqlx::AssertSqlSafe(fill.clone()))
            .bind(from)
            .bind(to)
            .execute(pool)
            .await
            .map_err(db("fill event_key of stored rows", target))?
            .rows_affected();
        progress(filled);
        from = to;
    }
    steps.push(ConversionStep {
        what: format!("filled event_key of {filled} stored rows"),
        took: started.elapsed(),
    });
    // 2. Its unique index, built without blocking writes. A build that was interrupted left an invalid index:
    //    dropped and built again.
    let started = std::time::Instant::now();
    let invalid: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('events_event_key')
                        AND NOT indisvalid)",
    )
    .fetch_one(pool)
    .await
    .map_err(db("look for the event_key index", target))?;
    if invalid {
        sqlx::query("DROP INDEX CONCURRENTLY IF EXISTS events_event_key")
            .execute(pool)
            .await
            .map_err(db("drop an unfinished event_key index", target))?;
    }
    sqlx::query(
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_event_key ON events (event_key)",
    )
    .execute(pool)
    .await
    .map_err(db("build the unique index on event_key", target))?;
    steps.push(ConversionStep {
        what: "built the unique index events_event_key (writes went on meanwhile)".into(),
        took: started.elapsed(),
    });
    // 3. The indexes a converted table does without. An old schema may hold `event_id`'s uniqueness as a
    //    constraint rather than an index.
    let started = std::time::Instant::now();
    let constraint: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint
                        WHERE conrelid = 'events'::regclass AND conname = 'events_event_id_key')",
    )
    .fetch_one(pool)
    .await
    .map_err(db("look for the event_id constraint", target))?;
    if constraint {
        sqlx::query("ALTER TABLE events DROP CONSTRAINT events_event_id_key")
            .execute(pool)
            .await
            .map_err(db("drop the unique constraint on event_id", target))?;
    }
    for index in ["events_event_id_key", "events_sender_id_id"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {index}"
        )))
        .execute(pool)
        .await
        .map_err(db("drop an index the converted table does without", target))?;
    }
    steps.push(ConversionStep {
        what: "dropped events_event_id_key and events_sender_id_id".into(),
        took: started.elapsed(),
    });
    Ok(steps)
}

pub(crate) async fn convert_ids(pool: &PgPool, target: &str) -> Result<Vec<ConversionStep>> {
    let started = std::time::Instant::now();
    let converted = transaction::write(pool, "BEGIN", async |conn| {
        let id_type: Option<String> = sqlx::query_scalar(
            "SELECT data_type FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'id'",
        )
        .fetch_optional(&mut *conn)
        .await?;
        if id_type.as_deref() == Some("bigint") {
            return Ok(false);
        }
        sqlx::query("ALTER TABLE events ALTER COLUMN id TYPE BIGINT")
            .execute(&mut *conn)
            .await?;
        let sequence: Option<String> =
            sqlx::query_scalar("SELECT pg_get_serial_sequence('events', 'id')")
                .fetch_one(&mut *conn)
                .await?;
        if let Some(sequence) = sequence {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER SEQUENCE {sequence} AS BIGINT"
            )))
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "DO $$ BEGIN
                 IF to_regclass('outbox') IS NOT NULL THEN
                     ALTER TABLE outbox ALTER COLUMN event_row_id TYPE BIGINT;
                 END IF;
             END $$",
        )
        .execute(&mut *conn)
        .await?;
        Ok(true)
    })
    .await
    .map_err(db("widen the id column to BIGINT", target))?;
    Ok(vec![ConversionStep {
        what: if converted {
            "rewrote events with a BIGINT id (and the outbox's reference)".into()
        } else {
            "id is BIGINT already: nothing to do".into()
        },
        took: started.elapsed(),
    }])
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
    event_keys: Vec<Option<Vec<u8>>>,
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
            event_keys: rows
                .iter()
                .map(|row| row.dedupe_key().map(|key| key.to_vec()))
                .collect(),
        }
    }
}

async fn insert_events(
    conn: &mut PgConnection,
    rows: &[&EventRow],
    dedupe: DedupeIndex,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let result = insert_events_query(rows, dedupe, "").execute(conn).await?;
    Ok(result.rows_affected())
}

/// [`insert_events`], returning `(id, sender_id, event_key)` of each row inserted (the analytics derivation
/// takes these rows from the batch instead of reading them back).
#[cfg(feature = "analytics")]
async fn insert_events_returning(
    conn: &mut PgConnection,
    rows: &[&EventRow],
    dedupe: DedupeIndex,
) -> Result<Vec<crate::analytics::postgres::Inserted>, sqlx::Error> {
    use sqlx::Row;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let returned = insert_events_query(rows, dedupe, "RETURNING id::int8, sender_id, event_key")
        .fetch_all(conn)
        .await?;
    Ok(returned
        .into_iter()
        .map(|row| crate::analytics::postgres::Inserted {
            id: row.get(0),
            sender_id: row.get(1),
            event_key: row.get(2),
        })
        .collect())
}

fn insert_events_query<'q>(
    rows: &[&'q EventRow],
    dedupe: DedupeIndex,
    returning: &str,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let columns = Columns::of(rows);
    // The conflict target is named (not a bare ON CONFLICT): if its unique index is gone, the insert fails
    // as a schema fault instead of storing duplicates.
    let statement = format!(
        r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id,
                               event_key)
           SELECT sender_id, type_name, ts, intent_name, action_name, data, event_id, event_key
           FROM UNNEST($1::varchar[], $2::varchar[], $3::float8[], $4::varchar[], $5::varchar[], $6::text[],
                       $7::text[], $8::bytea[])
                WITH ORDINALITY AS batch(sender_id, type_name, ts, intent_name, action_name, data, event_id,
                                         event_key, position)
           ORDER BY position
           {} {returning}"#,
        dedupe.conflict_clause()
    );
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(columns.sender_ids)
        .bind(columns.type_names)
        .bind(columns.timestamps)
        .bind(columns.intent_names)
        .bind(columns.action_names)
        .bind(columns.datas)
        .bind(columns.event_ids)
        .bind(columns.event_keys)
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
    handle: &PgHandle,
    target: &str,
    events: &[EventRow],
    dead_letters: &[DeadLetterRow],
    analytics: crate::AnalyticsHook<'_>,
) -> Result<u64> {
    let events = first_of_each_id(events);
    let dedupe = handle
        .dedupe_index()
        .await
        .map_err(db("look for the dedupe index", target))?;
    match store_batch_with(handle, &events, dead_letters, dedupe, analytics).await {
        // No unique index matches: a conversion may have replaced it since it was looked up. Look again; the
        // same answer means it is really missing (a schema fault).
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P10") => {
            let found = handle
                .find_dedupe_index()
                .await
                .map_err(db("look for the dedupe index", target))?;
            if found == dedupe {
                return Err(db("insert a batch of events", target)(
                    sqlx::Error::Database(error),
                ));
            }
            store_batch_with(handle, &events, dead_letters, found, analytics).await
        }
        other => other,
    }
    .map_err(db("insert a batch of events", target))
}

async fn store_batch_with(
    pool: &PgPool,
    events: &[&EventRow],
    dead_letters: &[DeadLetterRow],
    dedupe: DedupeIndex,
    analytics: crate::AnalyticsHook<'_>,
) -> Result<u64, sqlx::Error> {
    if let Some(settings) = analytics {
        #[cfg(feature = "analytics")]
        return store_with_analytics(pool, events, dead_letters, dedupe, settings).await;
        #[cfg(not(feature = "analytics"))]
        match *settings {}
    }
    let fits_one_segment =
        events.iter().map(|row| row.data.len()).sum::<usize>() <= STATEMENT_DATA_BYTES;
    if dead_letters.is_empty() && fits_one_segment {
        // One statement is atomic on its own: a small batch needs one round trip, not BEGIN + INSERT + COMMIT.
        return transaction::single(pool, async |conn| insert_events(conn, events, dedupe).await)
            .await;
    }
    transaction::write(pool, "BEGIN", async |conn| {
        let mut inserted = 0;
        for chunk in segment_sized_chunks(events) {
            inserted += insert_events(conn, chunk, dedupe).await?;
        }
        insert_dead_letters(conn, dead_letters).await?;
        Ok(inserted)
    })
    .await
}

/// How many transactions a batch stored with analytics is split into, run at once, each on a connection of
/// its own and holding whole conversations. Deriving a batch's analytics rows costs the database several
/// times what inserting its events does, and one transaction is a chain of statements that keeps the
/// database to one core and idle between statements: two chains side by side drained 1.26x (worst case) to
/// 1.35x (Rasa-shaped turns) faster on 2 cores, three no faster than two (docs/BENCHMARKS.md, "Third look").
#[cfg(feature = "analytics")]
const ANALYTICS_WRITERS: usize = 2;

/// Stores a batch with its analytics rows: the batch's conversations in [`ANALYTICS_WRITERS`] groups, each
/// group's events, dead letters (the first group's), derived rows and derivation states in one transaction,
/// the groups concurrently, each to its end. `Ok` once every group committed. What that keeps:
/// - a conversation's events and the rows derived from them commit together, in the conversation's order;
/// - a group that fails leaves the others committed and the batch unacknowledged: stored again (the
///   consumer's retry, or the redelivery), the committed events are skipped by their dedupe key (every row
///   the consumer writes has one) and their conversations' states are already past them, so nothing is
///   stored or derived twice.
///
/// Across conversations the ids no longer follow the batch's order (each group's rows ascend), which no
/// reader relies on: Rasa reads a conversation by `sender_id` in id order.
#[cfg(feature = "analytics")]
async fn store_with_analytics(
    pool: &PgPool,
    events: &[&EventRow],
    dead_letters: &[DeadLetterRow],
    dedupe: DedupeIndex,
    settings: &colloquy_analytics::Settings,
) -> Result<u64, sqlx::Error> {
    let groups = conversation_groups(events);
    let writes = groups.iter().enumerate().map(|(n, group)| {
        let dead_letters = if n == 0 { dead_letters } else { &[] };
        transaction::write(pool, "BEGIN", async move |conn| {
            // The analytics derivation takes the inserted rows from the batch (their ids returned).
            let mut returned = Vec::new();
            for chunk in segment_sized_chunks(group) {
                returned.extend(insert_events_returning(conn, chunk, dedupe).await?);
            }
            insert_dead_letters(conn, dead_letters).await?;
            crate::analytics::postgres::catch_up_batch(conn, group, &returned, settings).await?;
            Ok(returned.len() as u64)
        })
    });
    // Every group runs to its end (commit or failure), whatever the others do.
    let mut inserted = 0;
    for outcome in futures_util::future::join_all(writes).await {
        inserted += outcome?;
    }
    Ok(inserted)
}

/// `events` in at most [`ANALYTICS_WRITERS`] lists, all the events of a conversation in the same one, in their
/// order: a conversation's list follows from a hash of its sender id. Empty lists are left out, but there is
/// always one list (perhaps empty), for the dead letters.
#[cfg(feature = "analytics")]
fn conversation_groups<'r>(events: &[&'r EventRow]) -> Vec<Vec<&'r EventRow>> {
    use std::hash::{Hash, Hasher};
    let mut lists = vec![Vec::new(); ANALYTICS_WRITERS];
    for row in events {
        let mut hasher = std::hash::DefaultHasher::new();
        row.sender_id.hash(&mut hasher);
        lists[(hasher.finish() % ANALYTICS_WRITERS as u64) as usize].push(*row);
    }
    lists.retain(|list| !list.is_empty());
    if lists.is_empty() {
        lists.push(Vec::new());
    }
    lists
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
                 INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, event_key, seq)
                 SELECT $1, type_name, ts, intent_name, action_name, data, event_id, event_key, $2 + position - 1
                 FROM UNNEST($3::varchar[], $4::float8[], $5::varchar[], $6::varchar[], $7::text[], $8::text[], $9::bytea[])
                      WITH ORDINALITY AS batch(type_name, ts, intent_name, action_name, data, event_id, event_key, position)
                 WHERE (SELECT count(*) FROM events WHERE sender_id = $1) = $2
                 ORDER BY position
                 RETURNING id)
               INSERT INTO outbox (event_row_id) SELECT id FROM inserted"#,
        )
    } else {
        sqlx::query(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id, event_key, seq)
               SELECT $1, type_name, ts, intent_name, action_name, data, event_id, event_key, $2 + position - 1
               FROM UNNEST($3::varchar[], $4::float8[], $5::varchar[], $6::varchar[], $7::text[], $8::text[], $9::bytea[])
                    WITH ORDINALITY AS batch(type_name, ts, intent_name, action_name, data, event_id, event_key, position)
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
            .bind(columns.event_keys)
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

pub(crate) async fn conversation_page(
    pool: &PgPool,
    target: &str,
    sender_id: &str,
    after_row_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    // The conversation's rows first (by the `sender_id` index), then the page: with `ORDER BY id LIMIT` alone the
    // planner may walk the primary key in id order, filtering on sender_id, through most of the table when a long
    // conversation's rows are far from its start (measured: 0.6-0.9 s on 1M rows instead of milliseconds).
    let rows = sqlx::query(
        "WITH conversation AS MATERIALIZED (SELECT * FROM events WHERE sender_id = $1 AND id > $2) \
         SELECT * FROM conversation ORDER BY id LIMIT $3",
    )
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

const Q_DAY: &str = "SELECT day::text, sessions::int8 FROM colloquy_sessions_per_day ORDER BY day";
const Q_CHANNEL: &str = "SELECT channel::text, sessions::int8 FROM colloquy_sessions_per_channel ORDER BY sessions DESC, channel";
const Q_INTENTS: &str = "SELECT intent::text, messages::int8 FROM colloquy_top_intents ORDER BY messages DESC, intent LIMIT 20";
const Q_TURNS: &str = "SELECT turns::int8, count(*)::int8 FROM colloquy_turns_per_session GROUP BY turns ORDER BY turns";
const Q_SENDERS: &str = "SELECT senders::int8 FROM colloquy_senders";
const Q_RESPONSE: &str = "SELECT avg(seconds)::float8 FROM colloquy_bot_response_time";
const Q_RATES: &str = "SELECT (SELECT escalation_rate::float8 FROM colloquy_escalation_rate), (SELECT abandonment_rate::float8 FROM colloquy_abandonment_rate), (SELECT containment_rate::float8 FROM colloquy_containment_rate), (SELECT fallback_rate::float8 FROM colloquy_fallback_rate)";

/// The analytics metric views, read for a dashboard.
pub(crate) async fn analytics_metrics(
    pool: &PgPool,
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
