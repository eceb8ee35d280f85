//! `colloquy-tracker-store`: where Colloquy keeps conversations — in memory, or in Rasa's `events` table on
//! PostgreSQL, MySQL/MariaDB or SQLite — and how their new events reach the event broker.
//!
//! # Invariant
//! A save writes exactly the events that are new since the tracker was last stored, at the positions that
//! follow the stored ones, and streams exactly those events, once, in conversation order. The count of stored
//! events is the only thing compared: never timestamps. A concurrent save of the same conversation is
//! detected and refused ([`Error::Conflict`]) rather than losing or duplicating events. With an SQL database, an
//! event reaches the broker only after it is committed (transactional outbox), and a crash between commit and
//! publish only delays it. Publishing is asynchronous: [`TrackerStore::close`] waits until everything saved
//! before it is published.
//!
//! This crate knows nothing about AMQP (it talks to an [`EventBroker`]), writes no
//! SQL (the [`colloquy_storage`] layer does) and never reads the environment or files by itself (`Endpoints`
//! takes the text of `endpoints.yml` and an env-lookup closure).
//!
//! # Modules
//! - [`store`]: the [`TrackerStore`] trait, what "new since the last save" means, the concurrency rule, and
//!   Rasa's latest-session selection ([`latest_session`]).
//! - [`memory`]: [`InMemoryStore`]. [`sql`]: [`SqlStore`]. `redis` (feature `redis`, on by default):
//!   `RedisStore`, sharing Rasa's `RedisTrackerStore` keys. [`outbox`]: how committed events reach the broker.
//!   [`config`]: [`SqlConfig`] from a URL. `endpoints` (feature `endpoints-yaml`, on by default): `Endpoints`,
//!   the one reader of Rasa's `endpoints.yml`, for the broker's and the stores' settings. [`error`]: [`Error`].
//!
//! # Where to start
//! One dependency covers the common case: this crate re-exports the event types its API takes
//! ([`Tracker`], [`Event`], [`EventKind`], [`Envelope`], [`StampedEnvelope`], [`EventId`]) and the broker
//! types you wire it to ([`EventBroker`], [`AmqpBroker`], [`AmqpConfig`], [`AmqpSubscription`],
//! [`Subscription`], [`Next`], [`in_process`], ...); the whole crates are [`events`] and [`broker`].
//!
//! 1. Pick a broker: [`AmqpBroker::connect`] (RabbitMQ, as Rasa's `pika` broker) or [`in_process`] (a
//!    bounded channel, for tests and embedding).
//! 2. Pick a store: [`InMemoryStore::with_broker`], [`SqlStore::connect`] with a [`SqlConfig`]
//!    (`postgres://`, `mysql://`, `sqlite://`), or `RedisStore` (feature `redis`).
//! 3. `get_or_create`, `apply` events, `save`; share the store between tasks as `Arc<dyn TrackerStore>`.
//! 4. Shut down in this order: [`TrackerStore::close`] (waits until everything saved is published, or fails
//!    with [`Error::Unpublished`] saying how many events wait, safe, in the outbox), then
//!    [`EventBroker::close`].
//!
//! Runnable programs (run by `cargo test`, so they stay true): `examples/wiring.rs` (PostgreSQL store +
//! RabbitMQ, three conversations saved from three tasks, the shutdown order, the queue drained with
//! [`Subscription::next_within`]) and `examples/in_memory.rs` (the same with the in-memory store and the
//! in-process broker): `cargo run -p colloquy-tracker-store --example wiring`.
//!
//! # Example
//! ```
//! use std::num::NonZeroUsize;
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use colloquy_tracker_store::{
//!     Event, EventBroker, EventKind, InMemoryStore, Next, Subscription, Tracker, TrackerStore, in_process,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (broker, mut subscription) = in_process(NonZeroUsize::new(64).unwrap());
//! let broker = Arc::new(broker);
//! let store = InMemoryStore::with_broker(broker.clone());
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let mut tracker = store.get_or_create("alice").await?;
//! tracker.apply(Event::at(EventKind::user("hi"), now));
//! tracker.apply(Event::at(EventKind::bot("Hello!"), now));
//! assert_eq!(store.save(&mut tracker).await?, 2);
//! assert!(tracker.events_since_last_save().is_empty());
//!
//! // A second handle on the same conversation that is now stale cannot overwrite it.
//! let mut stale = Tracker::new("alice");
//! stale.apply(Event::at(EventKind::user("again"), now));
//! assert!(store.save(&mut stale).await.unwrap_err().is_conflict());
//!
//! // Shutdown: the store first (everything saved is published), then the broker.
//! store.close().await?;
//! broker.close().await?;
//! let mut published = 0;
//! while let Next::Delivery(delivery) = subscription.next_within(Duration::from_millis(100)).await? {
//!     delivery.acker.ack().await?;
//!     published += 1;
//! }
//! assert_eq!(published, 2);
//! assert_eq!(store.retrieve("alice").await?.expect("stored").events().len(), 2);
//! # Ok(())
//! # }
//! ```

pub mod config;
#[cfg(feature = "endpoints-yaml")]
pub mod endpoints;
pub mod error;
pub mod memory;
pub mod outbox;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sql;
pub mod store;

#[cfg(feature = "endpoints-yaml")]
pub use config::database_url_from_endpoints_yaml;
pub use config::{RelayConfig, SqlConfig};
#[cfg(feature = "endpoints-yaml")]
pub use endpoints::Endpoints;
pub use error::{Error, Result};
pub use memory::InMemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisStore};
pub use sql::SqlStore;
pub use store::{TrackerStore, latest_session};

/// The event model ([`colloquy_events`]), re-exported so that one dependency on this crate is enough.
pub use colloquy_events as events;
pub use colloquy_events::{Envelope, Event, EventId, EventKind, StampedEnvelope, Tracker};

/// The brokers ([`colloquy_broker`]), re-exported so that one dependency on this crate is enough.
pub use colloquy_broker as broker;
pub use colloquy_broker::{
    AmqpBroker, AmqpConfig, AmqpSubscription, Delivery, EventBroker, FileBroker, InProcessBroker,
    InProcessSubscription, Next, Subscription, in_process,
};
