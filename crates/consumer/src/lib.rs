//! `colloquy-consumer`: the consumer service. It reads Rasa events from a broker subscription and stores them
//! in a database with Rasa's `events` schema (PostgreSQL, MySQL/MariaDB, or SQLite as the embedded default), so that Rasa's
//! own `SQLTrackerStore` — and ours — can read the result.
//!
//! Guarantees: a batch is acknowledged only after its transaction committed (at-least-once from the broker),
//! and each event is inserted at most once thanks to its `event_id` (header `colloquy-event-id`, else the
//! SHA-256 of `sender_id` and body): together, every event is stored exactly once. Within a conversation, rows
//! get ascending ids in the order the queue delivered the events. A message that is not an event is stored in
//! `dead_letters` with its raw bytes, properties and the reason, then acknowledged: nothing is dropped.
//!
//! Database failures follow one policy ([`Error::is_transient`], [`Error::is_refused`],
//! [`Error::is_configuration`]): what can pass is waited out with the deliveries held unacknowledged and
//! reported in [`Metrics::database_failure`] (and `/health`); a row the database refuses is dead-lettered with
//! its reason; a configuration fault ends [`Consumer::run`].
//!
//! Invariant: this crate knows no transport details (it consumes any [`colloquy_broker::Subscription`]) and
//! reads no environment or configuration files (the `colloquy` binary does).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use colloquy_consumer::{Consumer, ConsumerOptions};
//! use colloquy_storage::{ConnectOptions, Database, Schema};
//!
//! let database = Database::connect_lazy("sqlite::memory:", &ConnectOptions::default())?;
//! database.migrate(Schema::Events).await?;
//! let consumer = Consumer::new(Arc::new(database), ConsumerOptions::default());
//! assert_eq!(consumer.metrics().events_stored(), 0);
//! // consumer.run(subscription, shutdown_signal).await?;
//! # Ok(())
//! # }
//! ```

mod database;
mod decode;
mod error;
mod http;
mod metrics;
mod service;

pub use database::{AnalyticsSink, EventSink};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use service::{Consumer, ConsumerOptions, RunSummary};
