//! [`PostgresStore`]: conversations in Rasa's `events` table, new events streamed through a transactional
//! outbox.
//!
//! # Rows
//! One row per event, filled by Rasa's rules ([`EventRow::new`]), plus our `event_id` (the broker message's
//! stable id) and `seq` (the event's position in its conversation). Rasa's own rows (no `event_id`, no `seq`)
//! are read like ours, and a conversation Rasa started can be continued: positions are counts of rows.
//!
//! # A save
//! One statement, atomic on its own and one round trip: an `INSERT ... SELECT FROM UNNEST` that inserts the new
//! events only if the conversation holds exactly as many rows as the tracker expects, and that also records
//! them in the `outbox` table (when the store has a broker). A concurrent save of the same conversation that
//! committed first is caught even where this statement's snapshot cannot see it yet: the unique
//! `(sender_id, seq)` index refuses the second claim to the same positions. Nothing inserted means either a
//! retry of a save that did commit (the events are found by id: success) or a conflict ([`Error::Conflict`]).
//! Different conversations never wait for each other. After the insert, the relay wakes ([`crate::outbox`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use colloquy_broker::EventBroker;
use colloquy_events::{Event, Tracker};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::config::PostgresConfig;
use crate::error::{Error, Result, is_transient_sqlx};
use crate::outbox::Relay;
use crate::schema::{EventRow, POSTGRES_MIGRATOR, insert_tracked_events_postgres};
use crate::store::{TrackerStore, restored};

/// Conversations in PostgreSQL, in Rasa's schema. Cheap to share: wrap it in an `Arc`.
pub struct PostgresStore {
    pool: PgPool,
    relay: Option<Relay>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("relay", &self.relay.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects (retrying a database that is not up yet, `config.connect_attempts` times with exponential
    /// back-off, then failing with [`Error::Unavailable`]), creates the database from `login_db` if configured,
    /// applies the migrations, and — with a broker — starts the outbox relay, which first publishes whatever an
    /// earlier process committed but did not get confirmed.
    ///
    /// Without a broker nothing is recorded in the outbox and nothing is streamed.
    pub async fn connect(
        config: &PostgresConfig,
        broker: Option<Arc<dyn EventBroker>>,
    ) -> Result<Self> {
        let options = config.connect_options()?;
        if let Some(login_db) = config.login_db() {
            create_database_if_absent(config, &options, login_db).await?;
        }
        let pool = with_start_up_retries(config, || async {
            PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.connect_timeout)
                .connect_with(options.clone())
                .await
        })
        .await?;
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| Error::Migrate(Box::new(error)))?;
        let relay = broker.map(|broker| Relay::start(pool.clone(), broker, config.relay.clone()));
        tracing::info!(target = %config.target(), relay = relay.is_some(), "Tracker store connected.");
        Ok(Self { pool, relay })
    }

    /// How many committed events wait in the outbox for the broker's confirm.
    pub async fn outbox_len(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .map_err(|error| Error::database("count the outbox", error))?;
        Ok(count as u64)
    }

    /// Stops the relay after its current batch (what it has not confirmed stays in the outbox for the next
    /// start), then closes the connections.
    pub async fn close(&self) {
        if let Some(relay) = &self.relay {
            relay.stop().await;
        }
        self.pool.close().await;
    }

    async fn read(&self, sender_id: &str, latest_only: bool) -> Result<Option<Tracker>> {
        // One statement, so the rows and the total come from one snapshot. The latest session is selected by
        // Rasa's rule (see `crate::store::latest_session`), written as Rasa's `_event_query` writes it.
        let rows = sqlx::query(
            r#"WITH session AS (
                   SELECT max("timestamp") AS start FROM events
                   WHERE sender_id = $1 AND type_name = 'session_started'),
               total AS (SELECT count(*) AS n FROM events WHERE sender_id = $1)
               SELECT e.id::int8 AS id, e.data, total.n AS total
               FROM events e, session, total
               WHERE e.sender_id = $1
                 AND (NOT $2 OR session.start IS NULL OR e."timestamp" >= session.start)
               ORDER BY e.id"#,
        )
        .bind(sender_id)
        .bind(latest_only)
        .fetch_all(&self.pool)
        .await
        .map_err(|error| Error::database("read a conversation", error))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let total: i64 = first.get("total");
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let row_id: i64 = row.get("id");
            let data: Option<String> = row.get("data");
            let event =
                Event::from_json(data.unwrap_or_default().as_bytes()).map_err(|source| {
                    Error::StoredEvent {
                        sender_id: sender_id.to_owned(),
                        row_id,
                        source,
                    }
                })?;
            events.push(event);
        }
        Ok(Some(restored(sender_id, total as u64, events)))
    }
}

#[async_trait]
impl TrackerStore for PostgresStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Tracker>> {
        self.read(sender_id, true).await
    }

    async fn retrieve_full(&self, sender_id: &str) -> Result<Option<Tracker>> {
        self.read(sender_id, false).await
    }

    async fn save(&self, tracker: &mut Tracker) -> Result<u64> {
        if tracker.events_since_last_save().is_empty() {
            return Ok(0);
        }
        let sender_id = tracker.sender_id().to_owned();
        let stamped = tracker.stamped_since_last_save();
        let expected = tracker.first_seq() + tracker.saved_len() as u64;
        let rows = stamped
            .iter()
            .enumerate()
            .map(|(i, event)| {
                EventRow::new(&sender_id, &event.envelope.event, &event.id).map_err(|source| {
                    Error::InvalidEvent {
                        sender_id: sender_id.clone(),
                        seq: expected + i as u64,
                        source,
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let db = |action| move |error| Error::database(action, error);
        // One statement, atomic on its own: it inserts only if the conversation holds exactly `expected` rows,
        // and the unique (sender_id, seq) index refuses a concurrent save that took these positions first.
        let mut conn = self.pool.acquire().await.map_err(db("begin a save"))?;
        let written = match insert_tracked_events_postgres(
            &mut conn,
            &sender_id,
            expected,
            &rows,
            self.relay.is_some(),
        )
        .await
        {
            Ok(written) => written,
            Err(error) if is_unique_violation(&error) => 0,
            Err(error) => return Err(db("insert the new events")(error)),
        };
        if written == 0 {
            let stored: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE sender_id = $1")
                    .bind(&sender_id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db("count the conversation's events"))?;
            let ids: Vec<&str> = stamped.iter().map(|event| event.id.as_str()).collect();
            let found: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE sender_id = $1 AND event_id = ANY($2::text[])",
            )
            .bind(&sender_id)
            .bind(&ids)
            .fetch_one(&mut *conn)
            .await
            .map_err(db("look for a previous attempt"))?;
            if found as usize == ids.len() {
                // A retry of a save whose commit went through although its caller saw an error: the events
                // are stored and in the outbox already.
                tracker.mark_saved();
                return Ok(0);
            }
            return Err(Error::Conflict {
                sender_id,
                expected,
                stored: stored as u64,
            });
        }
        tracker.mark_saved();
        if let Some(relay) = &self.relay {
            relay.wake();
        }
        Ok(written)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT sender_id FROM events ORDER BY sender_id")
            .fetch_all(&self.pool)
            .await
            .map_err(|error| Error::database("list the conversations", error))
    }

    async fn exists(&self, sender_id: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE sender_id = $1)")
            .bind(sender_id)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| Error::database("look for a conversation", error))
    }
}

/// Runs `connect` until it succeeds, a non-transient error occurs, or `config.connect_attempts` are used.
async fn with_start_up_retries<T, F, Fut>(config: &PostgresConfig, mut connect: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let attempts = config.connect_attempts.max(1);
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(attempts - 1)
        .with_jitter()
        .build();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match tokio::time::timeout(config.connect_timeout, connect()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if !is_transient_sqlx(&error) => {
                return Err(Error::database("connect to the database", error));
            }
            Ok(Err(error)) => Box::new(error) as crate::error::BoxError,
            Err(elapsed) => Box::new(elapsed) as crate::error::BoxError,
        };
        match delays.next() {
            Some(delay) => {
                tracing::warn!(target = %config.target(), attempt, error = %error, "The database is not reachable yet; retrying.");
                tokio::time::sleep(delay).await;
            }
            None => {
                return Err(Error::Unavailable {
                    target: config.target(),
                    attempts: attempt,
                    source: error,
                });
            }
        }
    }
}

/// Rasa's `login_db`: connect to it and create the configured database if it does not exist.
async fn create_database_if_absent(
    config: &PostgresConfig,
    options: &PgConnectOptions,
    login_db: &str,
) -> Result<()> {
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let login = options.clone().database(login_db);
    let mut conn = with_start_up_retries(config, || PgConnection::connect_with(&login)).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&mut conn)
            .await
            .map_err(|error| Error::database("look for the database", error))?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", database.replace('"', "\"\""));
        match sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %database, "Created the tracker store's database."),
            // Another process created it in the meantime.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P04") => {}
            Err(error) => return Err(Error::database("create the database", error)),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Whether the database refused a row because a unique index holds its key already.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
