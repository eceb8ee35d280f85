//! MySQL and MariaDB.
//!
//! - Dedupe without `INSERT IGNORE` (which turns every other error into a warning) and without `ON DUPLICATE
//!   KEY UPDATE` (whose affected-row count cannot tell an insert from a duplicate): in one transaction, the
//!   batch's ids already stored are looked up through the unique `event_id` index and only the others are
//!   inserted. A concurrent writer inserting the same id in between makes the unique index refuse the
//!   insert; the transaction is then retried, and the look-up sees the row.
//! - Sessions run in strict mode (`STRICT_ALL_TABLES`), so a value that does not fit is refused, never
//!   truncated; rows are also checked against `TEXT`'s 65,535 bytes before they are sent
//!   ([`EventRow::check_fits`](crate::EventRow::check_fits)).
//! - MySQL has no `ADD COLUMN IF NOT EXISTS`: Colloquy's columns are added to a table Rasa created by
//!   [`adopt`], which looks at `information_schema` first.
//! - The column collations Rasa's table gets (the database's default, e.g. `utf8mb4_general_ci`) fold case,
//!   accents and trailing blanks: `sender_id = 'alice'` also finds `Alice` and `alicé`. Every query compares
//!   conversation ids byte for byte as well ([`same_sender!`]), and Colloquy's `event_id` column is
//!   `utf8mb4_bin`, so that two ids differing in case are two events.
//! - The outbox relay locks one row of `outbox_relay_lock` with `FOR UPDATE SKIP LOCKED` for its transaction.
//!   Nothing else reads with locks: InnoDB's shared next-key locks (what `INSERT ... SELECT` takes on the rows
//!   it reads) made concurrent tracker saves deadlock, see [`insert_tracked`].
//! - Ids on MariaDB come from Rasa's sequence. SQLAlchemy gives Rasa's `id` column a `Sequence("events_seq")`,
//!   which it creates on MariaDB (10.3+ has sequences, MySQL has not) and draws every id from, explicitly —
//!   it does not use the column's AUTO_INCREMENT. A writer that relied on AUTO_INCREMENT would take ids the
//!   sequence hands Rasa later, and Rasa's next save would fail (`Duplicate entry for key 'PRIMARY'`). So the
//!   migration creates `events_seq` on MariaDB when it is missing (starting after the last id), moves it past
//!   ids taken without it, and every insert into a database that has it takes its ids from it
//!   (`NEXTVAL(events_seq)`), whoever created it. On MySQL ids stay AUTO_INCREMENT, as Rasa's are there.

use std::collections::HashSet;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlRow};
use sqlx::{Connection, Executor, MySql, MySqlConnection, MySqlPool, QueryBuilder, Row};

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
    let mut migrators = vec![sqlx::migrate!("./migrations/mysql/events")];
    if schema == Schema::TrackerStore {
        migrators.push(sqlx::migrate!("./migrations/mysql/tracker_store"));
    }
    for migrator in &mut migrators {
        migrator.set_ignore_missing(true);
    }
    migrators
}

/// Most rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 1000;
/// Most bytes of `data` per INSERT statement, well under the server's `max_allowed_packet` (16 MiB by default
/// on MariaDB, 64 MiB on MySQL 8).
const STATEMENT_DATA_BYTES: usize = 4 * 1024 * 1024;
/// How often a write is retried when it lost a race to a concurrent writer: a batch whose id another writer
/// inserted between look-up and insert, a tracked save that InnoDB chose as a deadlock's victim.
const RACE_RETRIES: usize = 3;

fn db<'a>(action: &'static str, target: &'a str) -> impl FnOnce(sqlx::Error) -> Error + 'a {
    move |error| Error::database(action, target, Dialect::MySql, error)
}

/// `$column` equal to a bound conversation id, byte for byte (bind the id twice): the first comparison finds
/// the rows through the index under the column's collation, which may hold other ids equal to it (`Alice`
/// for `alice`); the second keeps the exact id, whatever the column's character set.
macro_rules! same_sender {
    ($column:literal) => {
        concat!(
            $column,
            " = ? AND CAST(CONVERT(",
            $column,
            " USING utf8mb4) AS BINARY) = CAST(? AS BINARY)"
        )
    };
}

/// `sender_id` as bytes, for exact comparison and byte order whatever the column's collation.
const SENDER_BYTES: &str = "CAST(CONVERT(sender_id USING utf8mb4) AS BINARY)";

/// Appends `sender_id IN (ids)`, exact: the collation's `IN` for the index, then the bytes.
fn push_senders_in(query: &mut QueryBuilder<MySql>, ids: &[String]) {
    query.push("sender_id IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    query.push(") AND ").push(SENDER_BYTES).push(" IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push("CAST(")
            .push_bind_unseparated(id.as_str())
            .push_unseparated(" AS BINARY)");
    }
    query.push(")");
}

fn options(url: &str) -> Result<MySqlConnectOptions> {
    let url = url.replacen("mariadb://", "mysql://", 1);
    MySqlConnectOptions::from_str(&url).map_err(|error| bad_url(&url, &error))
}

/// A MySQL/MariaDB pool, and where the `events` table's ids come from (see the module doc). Dereferences to
/// the pool, so every operation that needs only the pool takes it as it is.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    /// The pool itself, for what does not insert into `events` (analytics, reads, migrations).
    pub(crate) pool: MySqlPool,
    /// Whether the database has Rasa's sequence `events_seq`: known after the migration, or after the first
    /// look of an insert into a database this handle did not migrate.
    sequence: Arc<OnceLock<bool>>,
}

impl Deref for Handle {
    type Target = MySqlPool;

    fn deref(&self) -> &MySqlPool {
        &self.pool
    }
}

impl Handle {
    /// Whether inserts take their ids from `events_seq` (looked up once).
    async fn ids_from_sequence(&self, target: &str) -> Result<bool> {
        if let Some(known) = self.sequence.get() {
            return Ok(*known);
        }
        let found = has_sequence(&self.pool)
            .await
            .map_err(db("look for the sequence of the events ids", target))?;
        Ok(*self.sequence.get_or_init(|| found))
    }
}

/// Whether the current database has a sequence named `events_seq`.
async fn has_sequence(pool: &MySqlPool) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_name = 'events_seq' AND table_type = 'SEQUENCE'",
    )
    .fetch_one(pool)
    .await?;
    Ok(found > 0)
}

pub(crate) fn pool(url: &str, settings: &ConnectOptions) -> Result<Handle> {
    let read_only = settings.read_only;
    let pool = MySqlPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // Refuse what does not fit instead of truncating it, whatever the server's default mode.
                conn.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")
                    .await?;
                if read_only {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options(url)?);
    Ok(Handle {
        pool,
        sequence: Arc::new(OnceLock::new()),
    })
}

pub(crate) async fn create_if_absent(
    url: &str,
    login_db: &str,
    _settings: &ConnectOptions,
) -> Result<()> {
    let options = options(url)?;
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let target = crate::url::target(url);
    let mut conn = MySqlConnection::connect_with(&options.clone().database(login_db))
        .await
        .map_err(db("connect to the login database", &target))?;
    let statement = format!(
        "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
        database.replace('`', "``")
    );
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .map_err(db("create the database", &target))?;
    conn.close().await.ok();
    Ok(())
}

/// What Colloquy adds to an `events` table, each step with the column or index it creates (a step runs only
/// while that is missing, so a migration interrupted half-way is completed by the next one).
const EVENT_ID_STEPS: [(&str, &str); 3] = [
    (
        "event_id",
        "ALTER TABLE events ADD COLUMN event_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    ),
    (
        "events_event_id_key",
        "CREATE UNIQUE INDEX events_event_id_key ON events (event_id)",
    ),
    (
        "events_sender_id_id",
        "CREATE INDEX events_sender_id_id ON events (sender_id, id)",
    ),
];

/// The tracker store's `seq`, and the unique guard against two saves claiming one position. The guard is on a
/// generated binary key (`sender_id`'s bytes, NUL, `seq`), not on `(sender_id, seq)`: under the collation of
/// Rasa's column, `alice` and `Alice` would claim each other's positions.
const SEQ_STEPS: [(&str, &str); 3] = [
    ("seq", "ALTER TABLE events ADD COLUMN seq BIGINT"),
    (
        "seq_key",
        "ALTER TABLE events ADD COLUMN seq_key VARBINARY(1100) \
         AS (CONCAT(CAST(CONVERT(sender_id USING utf8mb4) AS BINARY), 0x00, seq)) STORED",
    ),
    (
        "events_sender_id_seq",
        "CREATE UNIQUE INDEX events_sender_id_seq ON events (seq_key)",
    ),
];

pub(crate) async fn migrate(handle: &Handle, target: &str, schema: Schema) -> Result<()> {
    let pool = &handle.pool;
    let mut migrators = migrators(schema).into_iter();
    let events = migrators.next();
    if let Some(migrator) = events {
        run(&migrator, pool, target).await?;
    }
    adopt(pool, target, &EVENT_ID_STEPS).await?;
    let sequence = ensure_sequence(pool)
        .await
        .map_err(db("create the sequence of the events ids", target))?;
    let _ = handle.sequence.set(sequence);
    if schema == Schema::TrackerStore {
        adopt(pool, target, &SEQ_STEPS).await?;
    }
    for migrator in migrators {
        run(&migrator, pool, target).await?;
    }
    // 64-bit ids for a table with no row yet (a new database): changing it costs nothing now. A table that
    // holds rows keeps its `id` until `colloquy migrate --convert-ids`, which rewrites it.
    let stored: i64 = sqlx::query_scalar("SELECT CAST(EXISTS (SELECT 1 FROM events) AS SIGNED)")
        .fetch_one(pool)
        .await
        .map_err(db("look at the events table", target))?;
    if stored == 0 {
        widen_ids(pool, target).await?;
    }
    Ok(())
}

/// On MariaDB, makes sure `events_seq` exists (as SQLAlchemy creates it for Rasa's model) and will not hand
/// out an id the table holds already; returns whether the database has it (never on MySQL).
async fn ensure_sequence(pool: &MySqlPool) -> Result<bool, sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(pool)
        .await?;
    if !version.contains("MariaDB") {
        return Ok(false);
    }
    let last_id: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM events")
            .fetch_one(pool)
            .await?;
    if !has_sequence(pool).await? {
        tracing::info!(
            "Creating the sequence events_seq that Rasa's SQLTrackerStore draws ids from on MariaDB."
        );
        // Rasa's definition (SQLAlchemy's defaults on MariaDB), starting after the ids taken already.
        let statement = format!(
            "CREATE SEQUENCE IF NOT EXISTS events_seq START WITH {} MINVALUE 1 \
             MAXVALUE 9223372036854775806 INCREMENT BY 1 CACHE 1000 NOCYCLE ENGINE=InnoDB",
            last_id + 1
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(pool)
            .await?;
    }
    // Ids taken without the sequence (AUTO_INCREMENT) must not come out of it again; SETVAL never moves it
    // backwards, so a concurrent Rasa is safe.
    if last_id > 0 {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT SETVAL(events_seq, {last_id})"
        )))
        .execute(pool)
        .await?;
    }
    Ok(true)
}

/// `id` and the outbox's reference to it as BIGINT; returns whether anything changed.
async fn widen_ids(pool: &MySqlPool, target: &str) -> Result<bool> {
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns
         WHERE table_schema = DATABASE()
           AND ((table_name = 'events' AND column_name = 'id')
                OR (table_name = 'outbox' AND column_name = 'event_row_id'))",
    )
    .fetch_all(pool)
    .await
    .map_err(db("look at the id column", target))?;
    let mut changed = false;
    for (table, data_type) in types {
        if data_type.eq_ignore_ascii_case("bigint") {
            continue;
        }
        let statement = if table == "events" {
            "ALTER TABLE events MODIFY id BIGINT NOT NULL AUTO_INCREMENT"
        } else {
            "ALTER TABLE outbox MODIFY event_row_id BIGINT NOT NULL"
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(pool)
            .await
            .map_err(db("widen the id column to BIGINT", target))?;
        changed = true;
    }
    Ok(changed)
}

pub(crate) async fn events_status(pool: &MySqlPool, target: &str) -> Result<EventsStatus> {
    let (rows, bytes, data_type): (Option<u64>, Option<u64>, Option<String>) = sqlx::query_as(
        "SELECT CAST(t.table_rows AS UNSIGNED), CAST(t.data_length + t.index_length AS UNSIGNED),
                (SELECT CAST(data_type AS CHAR) FROM information_schema.columns
                 WHERE table_schema = DATABASE() AND table_name = 'events' AND column_name = 'id')
         FROM information_schema.tables t WHERE t.table_schema = DATABASE() AND t.table_name = 'events'",
    )
    .fetch_one(pool)
    .await
    .map_err(db("read the state of the events table", target))?;
    let last_id: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(max(id), 0) AS SIGNED) FROM events")
            .fetch_one(pool)
            .await
            .map_err(db("read the largest id", target))?;
    Ok(EventsStatus {
        rows: rows.unwrap_or_default(),
        bytes,
        id_bits: if data_type.is_some_and(|t| t.eq_ignore_ascii_case("bigint")) {
            64
        } else {
            32
        },
        last_id,
        // MySQL keeps the unique index on `event_id` (see the module's notes on dedupe).
        compact_key: false,
        legacy_indexes: Vec::new(),
    })
}

pub(crate) async fn convert_event_key(
    _pool: &MySqlPool,
    target: &str,
    _chunk_rows: i64,
    _progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<ConversionStep>> {
    Err(Error::Unsupported {
        target: target.to_owned(),
        dialect: Dialect::MySql,
        what: "the compact dedupe key is PostgreSQL's so far; MySQL keeps the unique index on event_id",
    })
}

pub(crate) async fn convert_ids(pool: &MySqlPool, target: &str) -> Result<Vec<ConversionStep>> {
    let started = std::time::Instant::now();
    let changed = widen_ids(pool, target).await?;
    Ok(vec![ConversionStep {
        what: if changed {
            "rebuilt events with a BIGINT id (and the outbox's reference)".into()
        } else {
            "id is BIGINT already: nothing to do".into()
        },
        took: started.elapsed(),
    }])
}

async fn run(migrator: &Migrator, pool: &MySqlPool, target: &str) -> Result<()> {
    migrator
        .run(pool)
        .await
        .map_err(|error| Error::migrate(target, Dialect::MySql, error))
}

/// Adds Colloquy's columns and indexes that the `events` table lacks — a table Rasa created, or one whose
/// migration was interrupted. MySQL has no `ADD COLUMN IF NOT EXISTS`.
async fn adopt(pool: &MySqlPool, target: &str, steps: &[(&str, &'static str)]) -> Result<()> {
    for (name, statement) in steps {
        let present: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM information_schema.columns
                     WHERE table_schema = DATABASE() AND table_name = 'events' AND column_name = ?)
                  + (SELECT count(*) FROM information_schema.statistics
                     WHERE table_schema = DATABASE() AND table_name = 'events' AND index_name = ?)",
        )
        .bind(name)
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(db("look at the events table", target))?;
        if present == 0 {
            tracing::info!(target = %target, name, "Adding Colloquy's column or index to the events table.");
            sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                .execute(pool)
                .await
                .map_err(db("add Colloquy's columns to the events table", target))?;
        }
    }
    Ok(())
}

pub(crate) async fn ping(pool: &MySqlPool, target: &str) -> Result<()> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(db("answer", target))?;
    Ok(())
}

/// Consecutive chunks of at most [`ROWS_PER_STATEMENT`] rows and [`STATEMENT_DATA_BYTES`] of data.
fn statement_chunks<'a, 'r>(rows: &'a [&'r EventRow]) -> impl Iterator<Item = &'a [&'r EventRow]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut end = 0;
        while end < rest.len()
            && end < ROWS_PER_STATEMENT
            && (end == 0 || bytes + rest[end].data.len() <= STATEMENT_DATA_BYTES)
        {
            bytes += rest[end].data.len();
            end += 1;
        }
        let (chunk, tail) = rest.split_at(end);
        rest = tail;
        Some(chunk)
    })
}

/// Inserts `rows` in order; with `sequence`, each row's id is the next value of `events_seq`.
async fn insert_rows(
    conn: &mut MySqlConnection,
    rows: &[&EventRow],
    first_seq: Option<i64>,
    sequence: bool,
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    let mut position = 0;
    for chunk in statement_chunks(rows) {
        let mut insert: QueryBuilder<MySql> = QueryBuilder::new(if sequence {
            "INSERT INTO events (id, sender_id, type_name, `timestamp`, intent_name, action_name, data, event_id"
        } else {
            "INSERT INTO events (sender_id, type_name, `timestamp`, intent_name, action_name, data, event_id"
        });
        insert.push(if first_seq.is_some() { ", seq) " } else { ") " });
        insert.push_values(chunk, |mut values, row| {
            if sequence {
                values.push("NEXTVAL(events_seq)");
            }
            values
                .push_bind(row.sender_id.as_str())
                .push_bind(row.type_name.as_str())
                .push_bind(row.timestamp)
                .push_bind(row.intent_name.as_deref())
                .push_bind(row.action_name.as_deref())
                .push_bind(row.data.as_str())
                .push_bind(row.event_id.as_deref());
            if let Some(first) = first_seq {
                values.push_bind(first + position);
            }
            position += 1;
        });
        inserted += insert.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(inserted)
}

/// The ids among `rows` that `events` holds already.
async fn stored_ids(
    conn: &mut MySqlConnection,
    rows: &[&EventRow],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut stored = HashSet::new();
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|row| row.event_id.as_deref())
        .collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<MySql> =
            // FORCE INDEX: the look-up uses the unique index, and fails (a schema fault) where it was dropped.
            QueryBuilder::new(
                "SELECT event_id FROM events FORCE INDEX (events_event_id_key) WHERE event_id IN (",
            );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        let found: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        stored.extend(found);
    }
    Ok(stored)
}

pub(crate) async fn store_batch(
    handle: &Handle,
    target: &str,
    events: &[EventRow],
    dead_letters: &[DeadLetterRow],
    analytics: crate::AnalyticsHook<'_>,
) -> Result<u64> {
    let sequence = handle.ids_from_sequence(target).await?;
    let pool = &handle.pool;
    let events = first_of_each_id(events);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = transaction::write(pool, "BEGIN", async |conn| {
            let stored = stored_ids(conn, &events).await?;
            let new: Vec<&EventRow> = events
                .iter()
                .copied()
                .filter(|row| {
                    row.event_id
                        .as_deref()
                        .is_none_or(|id| !stored.contains(id))
                })
                .collect();
            let inserted = insert_rows(conn, &new, None, sequence).await?;
            for chunk in dead_letters.chunks(ROWS_PER_STATEMENT) {
                let mut insert: QueryBuilder<MySql> = QueryBuilder::new(
                    "INSERT INTO dead_letters (source, body, properties, error) ",
                );
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
                    let senders = crate::analytics::senders_of(
                        events.iter().map(|row| row.sender_id.as_str()),
                    );
                    crate::analytics::mysql::catch_up(conn, &senders, settings).await?;
                }
                #[cfg(not(feature = "analytics"))]
                match *settings {}
            }
            Ok(inserted)
        })
        .await
        .map_err(db("insert a batch of events", target));
        match outcome {
            Err(error) if error.is_unique_violation() && attempt <= RACE_RETRIES => {
                if sequence && clashes_on_primary_key(&error) {
                    resync_sequence(pool, target).await?;
                }
                continue;
            }
            outcome => return outcome,
        }
    }
}

/// Whether a unique violation is on the primary key (an id the sequence handed out was taken by a writer that
/// used AUTO_INCREMENT), not on `event_id` or the tracker store's positions.
fn clashes_on_primary_key(error: &Error) -> bool {
    // MariaDB: "Duplicate entry '9' for key 'PRIMARY'"; MySQL 8: "... for key 'events.PRIMARY'".
    error.to_string().contains("PRIMARY'")
}

/// Moves `events_seq` past the largest id in the table (never backwards).
async fn resync_sequence(pool: &MySqlPool, target: &str) -> Result<()> {
    tracing::warn!(target = %target, "An id from events_seq was taken by another writer; moving the sequence on.");
    let last_id: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM events")
            .fetch_one(pool)
            .await
            .map_err(db("read the largest event id", target))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT SETVAL(events_seq, {})",
        last_id.max(1)
    )))
    .execute(pool)
    .await
    .map_err(db("move the sequence of the events ids", target))?;
    Ok(())
}

pub(crate) async fn insert_tracked(
    handle: &Handle,
    target: &str,
    sender_id: &str,
    first_seq: u64,
    rows: &[EventRow],
    with_outbox: bool,
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sequence = handle.ids_from_sequence(target).await?;
    let rows: Vec<&EventRow> = rows.iter().collect();
    let first_seq = i64::try_from(first_seq).unwrap_or(i64::MAX);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match save_tracked(
            &handle.pool,
            sender_id,
            first_seq,
            &rows,
            with_outbox,
            sequence,
        )
        .await
        {
            Ok(inserted) => return Ok(inserted),
            // InnoDB may still choose a save as a deadlock's victim (none is known since the outbox insert
            // stopped locking, see `save_tracked`): run it again, its count guard then sees the other's rows.
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some("40001") && attempt <= RACE_RETRIES =>
            {
                tracing::warn!(target = %target, %error, "A save was rolled back by the server; running it again.");
                continue;
            }
            Err(error) => {
                return match db("insert the new events", target)(error) {
                    error
                        if sequence
                            && clashes_on_primary_key(&error)
                            && attempt <= RACE_RETRIES =>
                    {
                        resync_sequence(&handle.pool, target).await?;
                        continue;
                    }
                    error if error.kind() == ErrorKind::UniqueViolation => Ok(0),
                    error => Err(error),
                };
            }
        }
    }
}

/// One attempt of [`insert_tracked`].
async fn save_tracked(
    pool: &MySqlPool,
    sender_id: &str,
    first_seq: i64,
    rows: &[&EventRow],
    with_outbox: bool,
    sequence: bool,
) -> Result<u64, sqlx::Error> {
    transaction::write(pool, "BEGIN", async |conn| {
        let stored: i64 = sqlx::query_scalar(concat!(
            "SELECT count(*) FROM events WHERE ",
            same_sender!("sender_id")
        ))
        .bind(sender_id)
        .bind(sender_id)
        .fetch_one(&mut *conn)
        .await?;
        if stored != first_seq {
            return Ok(0);
        }
        let inserted = insert_rows(conn, rows, Some(first_seq), sequence).await?;
        if with_outbox {
            // A plain SELECT, then the ids as values: `INSERT ... SELECT` would read the conversation's index
            // range with shared next-key locks, which wait on another save's uncommitted row and lock the gap
            // after the conversation, where other conversations insert; both deadlocked under concurrent
            // saves. This read takes no locks and sees exactly the rows inserted above: a row of another
            // writer at these positions would have failed the insert on the unique `seq` index.
            let ids: Vec<i64> = sqlx::query_scalar(concat!(
                "SELECT id FROM events WHERE ",
                same_sender!("sender_id"),
                " AND seq >= ? ORDER BY id"
            ))
            .bind(sender_id)
            .bind(sender_id)
            .bind(first_seq)
            .fetch_all(&mut *conn)
            .await?;
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut insert: QueryBuilder<MySql> =
                    QueryBuilder::new("INSERT INTO outbox (event_row_id) ");
                insert.push_values(chunk, |mut row, id| {
                    row.push_bind(*id);
                });
                insert.build().execute(&mut *conn).await?;
            }
        }
        Ok(inserted)
    })
    .await
}

pub(crate) async fn count_events(pool: &MySqlPool, target: &str, sender_id: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(concat!(
        "SELECT count(*) FROM events WHERE ",
        same_sender!("sender_id")
    ))
    .bind(sender_id)
    .bind(sender_id)
    .fetch_one(pool)
    .await
    .map_err(db("count the conversation's events", target))?;
    Ok(count as u64)
}

pub(crate) async fn count_stored_ids(
    pool: &MySqlPool,
    target: &str,
    sender_id: &str,
    event_ids: &[&str],
) -> Result<u64> {
    let mut found = 0;
    for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<MySql> =
            QueryBuilder::new("SELECT count(*) FROM events WHERE sender_id = ");
        query
            .push_bind(sender_id)
            .push(" AND ")
            .push(SENDER_BYTES)
            .push(" = CAST(")
            .push_bind(sender_id)
            .push(" AS BINARY) AND event_id IN (");
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
    pool: &MySqlPool,
    target: &str,
    sender_id: &str,
    latest_session_only: bool,
) -> Result<Option<ConversationRows>> {
    let rows = sqlx::query(concat!(
        "SELECT e.*, t.n AS total
         FROM events e
         CROSS JOIN (SELECT max(`timestamp`) AS start FROM events
                     WHERE ",
        same_sender!("sender_id"),
        " AND type_name = 'session_started') s
         CROSS JOIN (SELECT count(*) AS n FROM events WHERE ",
        same_sender!("sender_id"),
        ") t
         WHERE ",
        same_sender!("e.sender_id"),
        " AND (NOT ? OR s.start IS NULL OR e.`timestamp` >= s.start)
         ORDER BY e.id"
    ))
    .bind(sender_id)
    .bind(sender_id)
    .bind(sender_id)
    .bind(sender_id)
    .bind(sender_id)
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

fn stored_event(row: &MySqlRow) -> StoredEvent {
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
    pool: &MySqlPool,
    target: &str,
    sender_id: &str,
) -> Result<bool> {
    let exists: i64 = sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM events WHERE ",
        same_sender!("sender_id"),
        ")"
    ))
    .bind(sender_id)
    .bind(sender_id)
    .fetch_one(pool)
    .await
    .map_err(db("look for a conversation", target))?;
    Ok(exists != 0)
}

pub(crate) async fn outbox_len(pool: &MySqlPool, target: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .map_err(db("count the outbox", target))?;
    Ok(count as u64)
}

pub(crate) async fn relay_outbox<F, Fut, E>(
    pool: &MySqlPool,
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
        sqlx::raw_sql("BEGIN")
            .execute(&mut *conn)
            .await
            .map_err(storage("begin a relay pass"))?;
        let locked: Option<i32> = sqlx::query_scalar(
            "SELECT id FROM outbox_relay_lock WHERE id = 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(storage("take the relay lock"))?;
        if locked.is_none() {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut *conn)
                .await
                .map_err(storage("end a relay pass"))?;
            return Ok(RelayPass::Busy);
        }
        let entries: Vec<OutboxEntry> = sqlx::query(
            "SELECT o.event_row_id AS row_id, e.sender_id, e.seq, e.event_id, e.data
             FROM outbox o JOIN events e ON e.id = o.event_row_id
             ORDER BY o.event_row_id
             LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(storage("read the outbox"))?
        .iter()
        .map(|row| OutboxEntry {
            row_id: row.try_get("row_id").unwrap_or_default(),
            sender_id: row.get("sender_id"),
            seq: row.get("seq"),
            event_id: row.get("event_id"),
            data: row.get::<Option<String>, _>("data").unwrap_or_default(),
        })
        .collect();
        let row_ids: Vec<i64> = entries.iter().map(|entry| entry.row_id).collect();
        if !entries.is_empty() {
            publish(entries).await.map_err(RelayError::Publish)?;
            for chunk in row_ids.chunks(ROWS_PER_STATEMENT) {
                let mut delete: QueryBuilder<MySql> =
                    QueryBuilder::new("DELETE FROM outbox WHERE event_row_id IN (");
                let mut ids = delete.separated(", ");
                for id in chunk {
                    ids.push_bind(*id);
                }
                delete.push(")");
                delete
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(storage("delete confirmed outbox entries"))?;
            }
        }
        sqlx::raw_sql("COMMIT")
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

pub(crate) async fn table_exists(pool: &MySqlPool, target: &str, table: &str) -> Result<bool> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_name = ?",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .map_err(db("look for a table", target))?;
    Ok(count > 0)
}

pub(crate) async fn export_conversations(
    pool: &MySqlPool,
    target: &str,
    selection: &ExportSelection,
) -> Result<Vec<String>> {
    let mut query: QueryBuilder<MySql> =
        QueryBuilder::new("SELECT sender_id FROM events WHERE 1 = 1");
    if !selection.only.is_empty() {
        query.push(" AND ");
        push_senders_in(&mut query, &selection.only);
    }
    if let Some(from) = &selection.from {
        query
            .push(" AND ")
            .push(SENDER_BYTES)
            .push(" >= CAST(")
            .push_bind(from.as_str())
            .push(" AS BINARY)");
    }
    // Byte order, whatever the column's collation (which may fold case or accents).
    query
        .push(" GROUP BY ")
        .push(SENDER_BYTES)
        .push(", sender_id ORDER BY ")
        .push(SENDER_BYTES);
    query
        .build_query_scalar()
        .fetch_all(pool)
        .await
        .map_err(db("list the conversations", target))
}

pub(crate) async fn count_selected(
    pool: &MySqlPool,
    target: &str,
    conversations: &[String],
    selection: &ExportSelection,
) -> Result<u64> {
    if conversations.is_empty() {
        return Ok(0);
    }
    let mut query: QueryBuilder<MySql> = QueryBuilder::new("SELECT count(*) FROM events WHERE ");
    push_senders_in(&mut query, conversations);
    if selection.minimum_timestamp.is_some() || selection.maximum_timestamp.is_some() {
        query.push(" AND `timestamp` IS NOT NULL");
    }
    if let Some(min) = selection.minimum_timestamp {
        query.push(" AND `timestamp` >= ").push_bind(min);
    }
    if let Some(max) = selection.maximum_timestamp {
        query.push(" AND `timestamp` < ").push_bind(max);
    }
    let count: i64 = query
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(db("count the events to export", target))?;
    Ok(count as u64)
}

pub(crate) async fn conversation_page(
    pool: &MySqlPool,
    target: &str,
    sender_id: &str,
    after_row_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query(concat!(
        "SELECT * FROM events WHERE ",
        same_sender!("sender_id"),
        " AND id > ? ORDER BY id LIMIT ?"
    ))
    // Not a cached prepared statement: its columns change when a migration adopts the table.
    .persistent(false)
    .bind(sender_id)
    .bind(sender_id)
    .bind(after_row_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db("read a page of a conversation", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn conversation_rows(
    pool: &MySqlPool,
    target: &str,
    sender_id: &str,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query(concat!(
        "SELECT * FROM events WHERE ",
        same_sender!("sender_id"),
        " ORDER BY id"
    ))
    // Not a cached prepared statement: its columns change when a migration adopts the table.
    .persistent(false)
    .bind(sender_id)
    .bind(sender_id)
    .fetch_all(pool)
    .await
    .map_err(db("read a conversation", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn event_counts(
    pool: &MySqlPool,
    target: &str,
) -> Result<(Vec<(String, i64)>, i64)> {
    let by_type = sqlx::query_as(
        "SELECT type_name, count(*) AS n FROM events GROUP BY type_name ORDER BY n DESC, type_name",
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
    pool: &MySqlPool,
    target: &str,
    after: i64,
    limit: i64,
    preview_bytes: Option<usize>,
) -> Result<Vec<StoredDeadLetter>> {
    let preview = preview_bytes.map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
    let rows = sqlx::query(
        "SELECT id, CAST(received_at AS CHAR) AS received_at, source,
                CASE WHEN ? IS NULL THEN body ELSE SUBSTRING(body, 1, ?) END AS body,
                LENGTH(body) AS body_len, properties, error
         FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?",
    )
    .bind(preview)
    .bind(preview)
    .bind(after)
    .bind(limit)
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

pub(crate) async fn last_dead_letter_id(pool: &MySqlPool, target: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM dead_letters")
        .fetch_one(pool)
        .await
        .map_err(db("read the dead letters", target))
}

pub(crate) async fn delete_dead_letter(pool: &MySqlPool, target: &str, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM dead_letters WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await
        .map_err(db("delete a dead letter", target))?;
    Ok(())
}

pub(crate) async fn events_after(
    pool: &MySqlPool,
    target: &str,
    after_row_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    let rows = sqlx::query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?")
        .bind(after_row_id)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db("read the events", target))?;
    Ok(rows.iter().map(stored_event).collect())
}

pub(crate) async fn table_counts(pool: &MySqlPool, target: &str) -> Result<(u64, u64)> {
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

const Q_DAY: &str = "SELECT CAST(day AS CHAR), CAST(sessions AS SIGNED) FROM colloquy_sessions_per_day ORDER BY day";
const Q_CHANNEL: &str = "SELECT CAST(channel AS CHAR), CAST(sessions AS SIGNED) FROM colloquy_sessions_per_channel ORDER BY sessions DESC, channel";
const Q_INTENTS: &str = "SELECT CAST(intent AS CHAR), CAST(messages AS SIGNED) FROM colloquy_top_intents ORDER BY messages DESC, intent LIMIT 20";
const Q_TURNS: &str = "SELECT CAST(turns AS SIGNED), CAST(count(*) AS SIGNED) FROM colloquy_turns_per_session GROUP BY turns ORDER BY turns";
const Q_SENDERS: &str = "SELECT CAST(senders AS SIGNED) FROM colloquy_senders";
const Q_RESPONSE: &str = "SELECT avg(seconds) * 1.0E0 FROM colloquy_bot_response_time";
const Q_RATES: &str = "SELECT (SELECT escalation_rate * 1.0E0 FROM colloquy_escalation_rate), (SELECT abandonment_rate * 1.0E0 FROM colloquy_abandonment_rate), (SELECT containment_rate * 1.0E0 FROM colloquy_containment_rate), (SELECT fallback_rate * 1.0E0 FROM colloquy_fallback_rate)";

/// The analytics metric views, read for a dashboard.
pub(crate) async fn analytics_metrics(
    pool: &MySqlPool,
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
