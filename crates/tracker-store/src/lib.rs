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
//! This crate knows nothing about AMQP (it talks to an [`EventBroker`](colloquy_broker::EventBroker)), writes no
//! SQL (the [`colloquy_storage`] layer does) and never reads the environment or files by itself ([`config`]
//! takes the YAML text and an env-lookup closure).
//!
//! # Modules
//! - [`store`]: the [`TrackerStore`] trait, what "new since the last save" means, the concurrency rule, and
//!   Rasa's latest-session selection ([`latest_session`]).
//! - [`memory`]: [`InMemoryStore`]. [`sql`]: [`SqlStore`]. `redis` (feature `redis`, on by default):
//!   `RedisStore`, sharing Rasa's `RedisTrackerStore` keys. [`outbox`]: how committed events reach the broker.
//!   [`config`]: [`SqlConfig`] from a URL or Rasa's `endpoints.yml`. [`error`]: [`Error`].
//!
//! # Example
//! ```
//! use colloquy_events::{Event, Tracker};
//! use colloquy_tracker_store::{InMemoryStore, TrackerStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), colloquy_tracker_store::Error> {
//! let store = InMemoryStore::new();
//! let mut tracker = store.get_or_create("alice").await?;
//! tracker.apply(Event::from_json(br#"{"event": "user", "timestamp": 1.0, "text": "hi"}"#).unwrap());
//! assert_eq!(store.save(&mut tracker).await?, 1);
//! assert!(tracker.events_since_last_save().is_empty());
//!
//! // A second handle on the same conversation that is now stale cannot overwrite it.
//! let mut stale = Tracker::new("alice");
//! stale.apply(Event::from_json(br#"{"event": "user", "timestamp": 2.0, "text": "again"}"#).unwrap());
//! assert!(store.save(&mut stale).await.unwrap_err().is_conflict());
//!
//! let stored = store.retrieve("alice").await?.expect("stored");
//! assert_eq!(stored.events().len(), 1);
//! assert_eq!(store.keys().await?, ["alice"]);
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod error;
pub mod memory;
pub mod outbox;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sql;
pub mod store;

pub use config::{RelayConfig, SqlConfig, database_url_from_endpoints_yaml};
pub use error::{Error, Result};
pub use memory::InMemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConfig, RedisStore};
pub use sql::SqlStore;
pub use store::{TrackerStore, latest_session};
