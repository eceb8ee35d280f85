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
//! # Where to start
//! [`Consumer::new`] takes where rows go (an [`EventSink`]: the storage layer's
//! [`Database`](colloquy_storage::Database) on PostgreSQL, MySQL/MariaDB or SQLite) and [`ConsumerOptions`];
//! [`Consumer::run`] takes a [`Subscription`](colloquy_broker::Subscription) (RabbitMQ's
//! [`AmqpSubscription`](colloquy_broker::AmqpSubscription), or the in-process one) and a `shutdown` future:
//! the seam by which a host service stops it (the `colloquy consume` binary passes SIGTERM/SIGINT). On
//! `shutdown` it stops taking deliveries, stores and acknowledges the batch in hand and returns a
//! [`RunSummary`]. `examples/embedded.rs` embeds it in a host service over RabbitMQ and PostgreSQL
//! (`cargo run -p colloquy-consumer --example embedded`; `cargo test` runs it).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::num::NonZeroUsize;
//! use std::sync::Arc;
//! use colloquy_broker::{EventBroker, in_process};
//! use colloquy_consumer::{Consumer, ConsumerOptions};
//! use colloquy_events::{Envelope, StampedEnvelope};
//! use colloquy_storage::{ConnectOptions, Database};
//!
//! let (broker, subscription) = in_process(NonZeroUsize::new(16).unwrap());
//! for body in [
//!     br#"{"sender_id": "alice", "event": "user", "timestamp": 1.0, "text": "hi"}"#.as_slice(),
//!     br#"{"sender_id": "alice", "event": "bot", "timestamp": 2.0, "text": "Hello!"}"#,
//!     b"not an event",
//! ] {
//!     broker.publish_raw(body.to_vec(), &Default::default()).await?;
//! }
//! // Closing the in-process broker ends the subscription once it has delivered what it holds.
//! broker.close().await?;
//!
//! let database = Database::connect_lazy("sqlite::memory:", &ConnectOptions::default())?;
//! let consumer = Consumer::new(Arc::new(database), ConsumerOptions::default());
//! // `shutdown`: any future; a host passes its own signal. This one never fires: the subscription ends.
//! let summary = consumer.run(Box::new(subscription), std::future::pending()).await?;
//! assert_eq!(summary.events_stored, 2);
//! assert_eq!(summary.dead_letters, 1, "kept in dead_letters, not dropped");
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
