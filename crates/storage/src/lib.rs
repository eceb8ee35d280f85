//! Colloquy's storage layer: the one crate that speaks SQL.
//!
//! Colloquy keeps events in Rasa's `events` table — the table Rasa's `SQLTrackerStore` creates and reads —
//! on every dialect Rasa speaks: PostgreSQL, SQLite and MySQL/MariaDB. This crate owns everything about it:
//! the migrations of each dialect ([`Schema::Events`] for the consumer, [`Schema::TrackerStore`] for the
//! SQL tracker store, which adds each event's position and the transactional outbox), the row types and how
//! they are filled by Rasa's rules ([`EventRow`]), the batch insert that skips events stored already
//! ([`Database::store_batch`]), the tracker store's guarded save ([`Database::insert_tracked`]) and outbox
//! ([`Database::relay_outbox`]), the reads (a conversation, the conversation ids, what an export walks), the
//! dead letters, one classification of database errors ([`Error::kind`]) and one password redaction
//! ([`redact`]).
//!
//! Every write keeps one rule: it counts only once its COMMIT returned success, and a connection on which a
//! statement, the COMMIT or the ROLLBACK failed is closed, never reused (see the `transaction` module's
//! notes for the SQLite failure this prevents).
//!
//! A database Rasa created is adopted, never rebuilt: migrations only add Colloquy's columns and tables
//! beside Rasa's. Read-only users ([`ConnectOptions::read_only`]) never create or alter anything.
//!
//! ```no_run
//! use colloquy_storage::{ConnectOptions, Database, EventRow, Schema};
//! use colloquy_events::{Envelope, EventId};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let database = Database::connect_lazy("sqlite://events.db", &ConnectOptions::default())?;
//! database.migrate(Schema::Events).await?;
//! let body = br#"{"sender_id": "alice", "event": "restart", "timestamp": 1700000000.0}"#;
//! let envelope = Envelope::from_json(body)?;
//! let row = EventRow::new(&envelope.sender_id, &envelope.event, &EventId::from("id-1".to_owned()))?;
//! assert_eq!(database.store_batch(&[row.clone()], &[]).await?, 1);
//! assert_eq!(database.store_batch(&[row], &[]).await?, 0); // stored already
//! # Ok(()) }
//! ```

// Built without any dialect (a Redis-only tracker store, say), no `Database` can be made: the dialect code is
// compiled out and the arguments it would take go unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite", feature = "mysql")),
    allow(unused_variables, unused_mut, unreachable_code, dead_code)
)]

#[cfg(feature = "analytics")]
mod analytics;
mod database;
mod error;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;
mod transaction;
mod url;

#[cfg(feature = "analytics")]
pub use analytics::AnalyticsProgress;
/// What the analytics derivation takes besides the events (re-exported from `colloquy-analytics`).
#[cfg(feature = "analytics")]
pub use colloquy_analytics::Settings as AnalyticsSettings;

/// The analytics settings a batch is stored with, if any (feature `analytics`; without it, never any).
#[cfg(feature = "analytics")]
pub(crate) type AnalyticsHook<'a> = Option<&'a colloquy_analytics::Settings>;
/// The analytics settings a batch is stored with, if any (feature `analytics`; without it, never any).
#[cfg(not(feature = "analytics"))]
pub(crate) type AnalyticsHook<'a> = Option<&'a std::convert::Infallible>;
pub use database::{
    AnalyticsMetrics, ConnectOptions, ConversationRows, ConversionStep, Database, EventsStatus,
    ExportSelection, OutboxEntry, RelayError, RelayPass, Schema, StoredDeadLetter, StoredEvent,
};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use rows::{
    DEDUPE_KEY_BYTES, DEDUPE_KEY_MAX_MICROS, DeadLetterRow, EventRow, MAX_NAME_CHARS, RowError,
};
pub use url::{Dialect, redact, target};
