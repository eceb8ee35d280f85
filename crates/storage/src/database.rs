//! [`Database`]: a connection pool to one database of any dialect, and every operation Colloquy performs on
//! it. Each operation is written once per dialect, in `postgres.rs`, `sqlite.rs` and `mysql.rs`; this module
//! only dispatches.

use std::time::Duration;

use colloquy_retry::Policy;

use crate::error::{Error, Result};
use crate::rows::{DeadLetterRow, EventRow, RowError};
use crate::url::{Dialect, redact, target};

/// A pool of connections to one database.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::PgHandle),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "mysql")]
    MySql(crate::mysql::Handle),
    /// Built without any dialect feature: this variant cannot be made (so neither can a `Database`); it
    /// keeps the matches below exhaustive so that the crate still compiles.
    #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
    NoDialect(std::convert::Infallible),
}

/// Runs `$body` with `$pool` bound to the dialect's pool and `$dialect` to the dialect's module.
macro_rules! dispatch {
    ($database:expr, $pool:ident, $dialect:ident => $body:expr) => {
        match &$database.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres($pool) => {
                use crate::postgres as $dialect;
                $body
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($pool) => {
                use crate::sqlite as $dialect;
                $body
            }
            #[cfg(feature = "mysql")]
            Pool::MySql($pool) => {
                use crate::mysql as $dialect;
                $body
            }
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
        }
    };
}

/// Opens one connection with the pool's settings outside the pool, within its connect timeout, and closes it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn probe<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> std::result::Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions as _, Connection as _};
    let options = pool.connect_options();
    let connection = tokio::time::timeout(pool.options().get_acquire_timeout(), options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    connection.close().await
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The most connections the pool opens (SQLite always uses one writer).
    pub max_connections: u32,
    /// How long one connection attempt, or a wait for a pooled connection, may take.
    pub connect_timeout: Duration,
    /// Read only: never create a database file, a table or a column (export, `dead-letters list`, serve).
    pub read_only: bool,
    /// How the connections name themselves to the server (PostgreSQL's `application_name`).
    pub application_name: &'static str,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            connect_timeout: Duration::from_secs(10),
            read_only: false,
            application_name: "colloquy",
        }
    }
}

impl ConnectOptions {
    /// Options for a command that only reads: nothing is created or altered.
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            ..Self::default()
        }
    }
}

/// Which of Colloquy's schemas a database gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schema {
    /// Rasa's `events` table (with Colloquy's `event_id`) and `dead_letters`: what the consumer needs.
    Events,
    /// [`Schema::Events`] plus what the SQL tracker store needs: each event's position (`seq`) and the
    /// transactional outbox.
    TrackerStore,
}

/// One database of any dialect: where events, dead letters and the outbox live. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) pool: Pool,
    pub(crate) target: String,
    dialect: Dialect,
}

/// A stored event, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The row's `id` (Rasa's order of a conversation).
    pub row_id: i64,
    /// The conversation.
    pub sender_id: String,
    /// The event type.
    pub type_name: String,
    /// `parse_data.intent.name` of a user event.
    pub intent_name: Option<String>,
    /// The event's `name` key.
    pub action_name: Option<String>,
    /// The event's JSON without `sender_id` (NULL in the table reads as empty).
    pub data: String,
    /// Colloquy's dedupe key; `None` for rows Rasa wrote, and for every row of a database Colloquy never
    /// migrated (it has no such column).
    pub event_id: Option<String>,
    /// The `timestamp` column.
    pub timestamp: Option<f64>,
}

/// A conversation's rows, read in one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRows {
    /// How many events the conversation holds in all (also when only the latest session was read).
    pub total: u64,
    /// The rows read, in `id` order.
    pub rows: Vec<StoredEvent>,
}

/// An event waiting in the outbox for the broker's confirm.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The event's row `id`.
    pub row_id: i64,
    /// The conversation.
    pub sender_id: String,
    /// The event's position in its conversation.
    pub seq: Option<i64>,
    /// The event's stable id.
    pub event_id: Option<String>,
    /// The event's JSON without `sender_id`.
    pub data: String,
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
    /// The raw body, or its first bytes when read with a preview limit.
    pub body: Vec<u8>,
    /// The length of the whole body in bytes.
    pub body_len: i64,
    /// The message properties (JSON object).
    pub properties: String,
    /// Why it is not an event.
    pub error: String,
}

/// What the analytics metric views say (`colloquy_*` views over Rasa Pro's analytics tables), for a dashboard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyticsMetrics {
    /// Sessions started per day (`YYYY-MM-DD`, UTC), oldest first.
    pub sessions_per_day: Vec<(String, i64)>,
    /// Sessions per channel (`None`: no channel), most first.
    pub sessions_per_channel: Vec<(Option<String>, i64)>,
    /// The 20 most frequent intents with their message counts, most first.
    pub top_intents: Vec<(String, i64)>,
    /// How many sessions had each number of turns, by turns.
    pub turns_per_session: Vec<(i64, i64)>,
    /// How many senders there are.
    pub senders: i64,
    /// The mean seconds from a user message to the first bot message of its turn.
    pub average_bot_response_seconds: Option<f64>,
    /// Share of sessions escalated (0..1; `None` without sessions).
    pub escalation_rate: Option<f64>,
    /// Share of sessions abandoned.
    pub abandonment_rate: Option<f64>,
    /// Share of sessions contained.
    pub containment_rate: Option<f64>,
    /// Share of turns that fell back.
    pub fallback_rate: Option<f64>,
}

/// Which events an export reads.
#[derive(Debug, Clone, Default)]
pub struct ExportSelection {
    /// Only these conversations (all when empty).
    pub only: Vec<String>,
    /// Conversations whose id is at or after this one in byte order.
    pub from: Option<String>,
    /// Events with `timestamp >= minimum`.
    pub minimum_timestamp: Option<f64>,
    /// Events with `timestamp < maximum`.
    pub maximum_timestamp: Option<f64>,
}

impl ExportSelection {
    /// Whether an event with `timestamp` is selected (an event without one only when no bound is set).
    pub fn selects(&self, timestamp: Option<f64>) -> bool {
        let bounded = self.minimum_timestamp.is_some() || self.maximum_timestamp.is_some();
        match timestamp {
            None => !bounded,
            Some(t) => {
                self.minimum_timestamp.is_none_or(|min| t >= min)
                    && self.maximum_timestamp.is_none_or(|max| t < max)
            }
        }
    }
}

/// The state of the `events` table as `colloquy migrate` reports it: how far its `id` is from the limit of
/// its type, and whether it has the compact dedupe key and one index on `sender_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsStatus {
    /// Rows in the table (the planner's estimate on PostgreSQL, which is free; exact elsewhere).
    pub rows: u64,
    /// The table's size on disk with its indexes, where the dialect says it cheaply.
    pub bytes: Option<u64>,
    /// The width of the `id` column: 32 (Rasa's int4 `SERIAL`) or 64.
    pub id_bits: u32,
    /// The largest `id` given out so far (0 when none).
    pub last_id: i64,
    /// Whether the unique index is on the 16-byte `event_key` ([`EventRow::dedupe_key`]); otherwise it is on
    /// the `event_id` text (a table that held rows before Colloquy's issue-12 migration).
    pub compact_key: bool,
    /// Indexes that a converted table no longer has and this one still has (the `event_id` unique index,
    /// the second index on `sender_id`).
    pub legacy_indexes: Vec<String>,
}

impl EventsStatus {
    /// The largest `id` the column can hold.
    pub fn id_limit(&self) -> i64 {
        if self.id_bits == 32 {
            i64::from(i32::MAX)
        } else {
            i64::MAX
        }
    }

    /// How much of the `id` range is used, in percent.
    pub fn id_used_percent(&self) -> f64 {
        self.last_id as f64 / self.id_limit() as f64 * 100.0
    }
}

/// One step of a conversion and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversionStep {
    /// What was done (one line).
    pub what: String,
    /// How long it took.
    pub took: Duration,
}

/// What a relay pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayPass {
    /// Another relay holds the outbox; nothing was done.
    Busy,
    /// This many entries were published, confirmed and deleted.
    Published(usize),
}

/// Why a relay pass failed: the database, or the publishing.
#[derive(Debug)]
pub enum RelayError<E> {
    /// The database failed; the entries stay in the outbox.
    Storage(Error),
    /// Publishing failed; the entries stay in the outbox.
    Publish(E),
}

impl Database {
    /// A pool for the database at `url`, connecting on first use (so a database that is down at start-up
    /// is waited for like any other outage). A URL that cannot be used is an error at once.
    pub fn connect_lazy(url: &str, options: &ConnectOptions) -> Result<Self> {
        let dialect = Dialect::of_url(url)?;
        let pool = match dialect {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => Pool::Postgres(crate::postgres::pool(url, options)?),
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => Pool::Sqlite(crate::sqlite::pool(url, options)?),
            #[cfg(feature = "mysql")]
            Dialect::MySql => Pool::MySql(crate::mysql::pool(url, options)?),
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::Url(format!(
                    "this build of Colloquy has no {other} support (cargo feature `{}`)",
                    format!("{other:?}").to_lowercase()
                )));
            }
        };
        Ok(Self {
            pool,
            target: target(url),
            dialect,
        })
    }

    /// Connects now, retrying a database that is not reachable yet up to `attempts` times
    /// ([`Policy::START_UP`]); a configuration error (refused credentials, missing database) fails at once.
    pub async fn connect(url: &str, options: &ConnectOptions, attempts: usize) -> Result<Self> {
        let database = Self::connect_lazy(url, options)?;
        let mut delays = Policy::START_UP.with_attempts(attempts).delays();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match database.ping().await {
                Ok(()) => return Ok(database),
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => error,
            };
            match delays.next() {
                Some(delay) => {
                    tracing::warn!(target = %database.target, attempt, error = %error, "The database is not reachable yet; retrying.");
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(Error::Unavailable {
                        target: database.target.clone(),
                        attempts: attempt,
                        cause: Box::new(error),
                    });
                }
            }
        }
    }

    /// Creates the database named in `url` when it does not exist, connecting to `login_db` first (Rasa's
    /// `login_db`). PostgreSQL and MySQL; an SQLite file is created when a writer opens it.
    #[cfg_attr(
        not(any(feature = "postgres", feature = "mysql")),
        allow(unused_variables)
    )]
    pub async fn create_if_absent(
        url: &str,
        login_db: &str,
        options: &ConnectOptions,
    ) -> Result<()> {
        match Dialect::of_url(url)? {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => crate::postgres::create_if_absent(url, login_db, options).await,
            #[cfg(feature = "mysql")]
            Dialect::MySql => crate::mysql::create_if_absent(url, login_db, options).await,
            _ => Ok(()),
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Host, port and database (or the SQLite file), without credentials.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Creates or updates `schema` (idempotent). A table Rasa created is adopted: its rows are kept and
    /// Colloquy's columns are added beside Rasa's.
    pub async fn migrate(&self, schema: Schema) -> Result<()> {
        dispatch!(self, pool, dialect => dialect::migrate(pool, &self.target, schema).await)
    }

    /// The state of the `events` table (see [`EventsStatus`]); reads only.
    pub async fn events_status(&self) -> Result<EventsStatus> {
        dispatch!(self, pool, dialect => dialect::events_status(pool, &self.target).await)
    }

    /// Converts a table that held rows before the compact dedupe key existed (PostgreSQL): fills `event_key`
    /// of the stored rows (in chunks of `chunk_rows`, each its own transaction, so consumers keep running),
    /// builds its unique index without blocking writes (`CREATE INDEX CONCURRENTLY`), then drops the unique
    /// index on `event_id` and the second index on `sender_id`. Idempotent: a step done already is skipped, so
    /// an interrupted conversion is resumed by running it again. `progress` is called after each chunk with
    /// the rows filled so far. Time grows with the table: each step's duration is returned.
    pub async fn convert_event_key(
        &self,
        chunk_rows: i64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<ConversionStep>> {
        dispatch!(self, pool, dialect => dialect::convert_event_key(pool, &self.target, chunk_rows, progress).await)
    }

    /// Widens `id` (and the outbox's reference to it) to 64 bits, for a table Rasa created with an int4
    /// `SERIAL`. Rewrites the whole table under an exclusive lock (writers wait until it is done): its duration
    /// grows with the table and is returned. Does nothing on a table whose `id` is 64-bit already.
    pub async fn convert_ids(&self) -> Result<Vec<ConversionStep>> {
        dispatch!(self, pool, dialect => dialect::convert_ids(pool, &self.target).await)
    }

    /// Checks that the database answers.
    ///
    /// With no connection open yet, a server dialect connects once directly first: a server that refuses
    /// (nothing listening, refused credentials, a missing database) then says so at once, where the pool
    /// would keep retrying until its connect timeout and report only that it timed out.
    pub async fn ping(&self) -> Result<()> {
        let probed = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) if pool.size() == 0 => probe(pool).await,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) if pool.size() == 0 => probe(pool).await,
            // SQLite has no server to refuse; a pool with connections tests them itself.
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        };
        probed.map_err(|error| Error::database("connect", &self.target, self.dialect, error))?;
        dispatch!(self, pool, dialect => dialect::ping(pool, &self.target).await)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => pool.close().await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => pool.close().await,
            #[cfg(feature = "mysql")]
            Pool::MySql(pool) => pool.close().await,
            #[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "mysql")))]
            Pool::NoDialect(never) => match *never {},
        }
    }

    /// Stores `events` (skipping those whose `event_id` is stored already, and repeats within the slice) and
    /// `dead_letters` in one transaction; returns how many events were inserted. Rows get ascending ids in
    /// slice order. The result is `Ok` only once the COMMIT returned success; a connection whose COMMIT or
    /// ROLLBACK failed is closed, never reused.
    pub async fn store_batch(
        &self,
        events: &[EventRow],
        dead_letters: &[DeadLetterRow],
    ) -> Result<u64> {
        self.store_batch_with(events, dead_letters, None).await
    }

    /// [`Database::store_batch`], and with `analytics`, the analytics tables of the batch's conversations
    /// brought up to date in the same transaction (see [`Database::store_batch_with_analytics`]).
    pub(crate) async fn store_batch_with(
        &self,
        events: &[EventRow],
        dead_letters: &[DeadLetterRow],
        analytics: crate::AnalyticsHook<'_>,
    ) -> Result<u64> {
        self.check_fit(events)?;
        if let Some(limit) = self.dialect.max_dead_letter_bytes()
            && let Some(letter) = dead_letters.iter().find(|letter| letter.body.len() > limit)
        {
            return Err(Error::Row {
                target: self.target.clone(),
                sender_id: format!("(dead letter from {})", letter.source),
                cause: RowError::TooLarge {
                    column: "body",
                    bytes: letter.body.len(),
                    limit,
                    dialect: self.dialect,
                },
            });
        }
        dispatch!(self, pool, dialect => dialect::store_batch(pool, &self.target, events, dead_letters, analytics).await)
    }

    /// Inserts the new events of one conversation (`rows`, all of `sender_id`) at positions `first_seq ..`,
    /// atomically and only if the conversation holds exactly `first_seq` rows; with `with_outbox`, records
    /// them in the outbox in the same transaction. Returns how many were inserted: 0 when the conversation
    /// holds another number of rows, or when a concurrent save took these positions first.
    pub async fn insert_tracked(
        &self,
        sender_id: &str,
        first_seq: u64,
        rows: &[EventRow],
        with_outbox: bool,
    ) -> Result<u64> {
        self.check_fit(rows)?;
        dispatch!(self, pool, dialect => dialect::insert_tracked(pool, &self.target, sender_id, first_seq, rows, with_outbox).await)
    }

    /// Refuses, before anything is sent, a batch with a row that does not fit the dialect's schema.
    fn check_fit(&self, rows: &[EventRow]) -> Result<()> {
        for row in rows {
            row.check_fits(self.dialect).map_err(|cause| Error::Row {
                target: self.target.clone(),
                sender_id: row.sender_id.clone(),
                cause,
            })?;
        }
        Ok(())
    }

    /// How many events conversation `sender_id` holds.
    pub async fn count_events(&self, sender_id: &str) -> Result<u64> {
        dispatch!(self, pool, dialect => dialect::count_events(pool, &self.target, sender_id).await)
    }

    /// How many of `event_ids` conversation `sender_id` holds.
    pub async fn count_stored_ids(&self, sender_id: &str, event_ids: &[&str]) -> Result<u64> {
        dispatch!(self, pool, dialect => dialect::count_stored_ids(pool, &self.target, sender_id, event_ids).await)
    }

    /// A conversation's rows in `id` order, and its total, from one snapshot; with `latest_session_only`,
    /// only the rows of the latest session by Rasa's rule (from the latest `session_started` event's
    /// timestamp on, as Rasa's `SQLTrackerStore` selects them). `None` when the conversation has no event.
    pub async fn read_conversation(
        &self,
        sender_id: &str,
        latest_session_only: bool,
    ) -> Result<Option<ConversationRows>> {
        dispatch!(self, pool, dialect => dialect::read_conversation(pool, &self.target, sender_id, latest_session_only).await)
    }

    /// Every conversation id, in byte order.
    pub async fn sender_ids(&self) -> Result<Vec<String>> {
        self.export_conversations(&ExportSelection::default()).await
    }

    /// Whether conversation `sender_id` has an event.
    pub async fn conversation_exists(&self, sender_id: &str) -> Result<bool> {
        dispatch!(self, pool, dialect => dialect::conversation_exists(pool, &self.target, sender_id).await)
    }

    /// How many committed events wait in the outbox.
    pub async fn outbox_len(&self) -> Result<u64> {
        dispatch!(self, pool, dialect => dialect::outbox_len(pool, &self.target).await)
    }

    /// One pass of the outbox relay: takes the relay lock (one relay at a time per database; on SQLite, one
    /// process), reads at most `limit` entries in row order, hands them to `publish` (which returns once the
    /// broker confirmed every one), then deletes them. If `publish` or the database fails, the entries stay
    /// for the next pass.
    pub async fn relay_outbox<F, Fut, E>(
        &self,
        limit: u32,
        publish: F,
    ) -> Result<RelayPass, RelayError<E>>
    where
        F: FnOnce(Vec<OutboxEntry>) -> Fut + Send,
        Fut: Future<Output = std::result::Result<(), E>> + Send,
        E: Send,
    {
        dispatch!(self, pool, dialect => dialect::relay_outbox(pool, &self.target, limit, publish).await)
    }

    /// Checks, without changing anything, that the database has Rasa's `events` table: a read-only command
    /// says so clearly instead of failing on its first query.
    pub async fn require_events_table(&self) -> Result<()> {
        let exists = dispatch!(self, pool, dialect => dialect::table_exists(pool, &self.target, "events").await?);
        if exists {
            Ok(())
        } else {
            Err(Error::SchemaMissing {
                target: self.target.clone(),
                what: "`events` table".into(),
                hint: "it is not a tracker store of Rasa's SQLTrackerStore or Colloquy (check the database URL, \
                       or run `colloquy migrate` for a new one)",
            })
        }
    }

    /// Whether the database has Rasa Pro's analytics tables (`rasa_session`), without changing anything.
    pub async fn has_analytics_tables(&self) -> Result<bool> {
        dispatch!(self, pool, dialect => dialect::table_exists(pool, &self.target, "rasa_session").await)
    }

    /// Whether the database has the `dead_letters` table, without changing anything.
    pub async fn has_dead_letters_table(&self) -> Result<bool> {
        dispatch!(self, pool, dialect => dialect::table_exists(pool, &self.target, "dead_letters").await)
    }

    /// Reads the analytics metric views (read only; the caller checks [`Database::has_analytics_tables`]).
    pub async fn analytics_metrics(&self) -> Result<AnalyticsMetrics> {
        dispatch!(self, pool, dialect => dialect::analytics_metrics(pool, &self.target).await)
    }

    /// Checks, without changing anything, that the database has the `dead_letters` table.
    pub async fn require_dead_letters_table(&self) -> Result<()> {
        let exists = dispatch!(self, pool, dialect => dialect::table_exists(pool, &self.target, "dead_letters").await?);
        if exists {
            Ok(())
        } else {
            Err(Error::SchemaMissing {
                target: self.target.clone(),
                what: "`dead_letters` table".into(),
                hint: "no colloquy consumer has written to it (check the database URL)",
            })
        }
    }

    /// The conversations an export selects, in byte order of their ids.
    pub async fn export_conversations(&self, selection: &ExportSelection) -> Result<Vec<String>> {
        dispatch!(self, pool, dialect => dialect::export_conversations(pool, &self.target, selection).await)
    }

    /// How many events of `conversations` an export selects.
    pub async fn count_selected(
        &self,
        conversations: &[String],
        selection: &ExportSelection,
    ) -> Result<u64> {
        let mut total = 0;
        // Bounded statements: a list of ids per query, whatever the number of conversations.
        for chunk in conversations.chunks(500) {
            let count: u64 = dispatch!(self, pool, dialect => dialect::count_selected(pool, &self.target, chunk, selection).await?);
            total += count;
        }
        Ok(total)
    }

    /// Every row of conversation `sender_id`, in `id` order (read only: works on a database Rasa created and
    /// Colloquy never touched).
    pub async fn conversation_rows(&self, sender_id: &str) -> Result<Vec<StoredEvent>> {
        dispatch!(self, pool, dialect => dialect::conversation_rows(pool, &self.target, sender_id).await)
    }

    /// At most `limit` events of conversation `sender_id` with a row id above `after_row_id`, in id order: a
    /// conversation read a page at a time (by its `sender_id` index; read only, works on a database Rasa
    /// created).
    pub async fn conversation_page(
        &self,
        sender_id: &str,
        after_row_id: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        dispatch!(self, pool, dialect => dialect::conversation_page(pool, &self.target, sender_id, after_row_id, limit).await)
    }

    /// At most `limit` events with a row id above `after_row_id`, in id order, whatever their conversation:
    /// how a whole table is walked (resumably, by the last row id seen).
    pub async fn events_after(&self, after_row_id: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        dispatch!(self, pool, dialect => dialect::events_after(pool, &self.target, after_row_id, limit).await)
    }

    /// How many rows `events` and `dead_letters` hold.
    pub async fn table_counts(&self) -> Result<(u64, u64)> {
        dispatch!(self, pool, dialect => dialect::table_counts(pool, &self.target).await)
    }

    /// Events per type, most frequent first, and the number of conversations.
    pub async fn event_counts(&self) -> Result<(Vec<(String, i64)>, i64)> {
        dispatch!(self, pool, dialect => dialect::event_counts(pool, &self.target).await)
    }

    /// The dead letters with `id > after`, oldest first, at most `limit`; with `preview_bytes`, only the
    /// first bytes of each body are read (listing never loads whole bodies).
    pub async fn dead_letters(
        &self,
        after: i64,
        limit: i64,
        preview_bytes: Option<usize>,
    ) -> Result<Vec<StoredDeadLetter>> {
        dispatch!(self, pool, dialect => dialect::dead_letters(pool, &self.target, after, limit, preview_bytes).await)
    }

    /// The highest dead letter id (0 when there is none).
    pub async fn last_dead_letter_id(&self) -> Result<i64> {
        dispatch!(self, pool, dialect => dialect::last_dead_letter_id(pool, &self.target).await)
    }

    /// Deletes dead letter `id` (after it was requeued).
    pub async fn delete_dead_letter(&self, id: i64) -> Result<()> {
        dispatch!(self, pool, dialect => dialect::delete_dead_letter(pool, &self.target, id).await)
    }
}

/// Keeps the first occurrence of each `event_id` in `rows` (a batch may hold a redelivery of its own
/// message); rows without an id are all kept.
pub(crate) fn first_of_each_id(rows: &[EventRow]) -> Vec<&EventRow> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    rows.iter()
        .filter(|row| row.event_id.as_deref().is_none_or(|id| seen.insert(id)))
        .collect()
}

/// The error for a URL whose options cannot be read; the message never contains the URL's password.
pub(crate) fn bad_url(url: &str, error: &sqlx::Error) -> Error {
    let what = match error {
        sqlx::Error::Configuration(cause) => cause.to_string(),
        _ => "unreadable".into(),
    };
    Error::Url(format!("invalid database URL {} ({what})", redact(url)))
}
