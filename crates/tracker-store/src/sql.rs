//! [`SqlStore`]: conversations in Rasa's `events` table on PostgreSQL, MySQL/MariaDB or SQLite (through
//! [`colloquy_storage`]), new events streamed through a transactional outbox.
//!
//! # Rows
//! One row per event, filled by Rasa's rules ([`EventRow::new`]), plus our `event_id` (the broker message's
//! stable id) and `seq` (the event's position in its conversation). Rasa's own rows (no `event_id`, no `seq`)
//! are read like ours, and a conversation Rasa started can be continued: positions are counts of rows.
//!
//! # A save
//! One atomic step ([`Database::insert_tracked`]): the new events are inserted only if the conversation holds
//! exactly as many rows as the tracker expects, and are recorded in the outbox in the same transaction (when
//! the store has a broker). A concurrent save of the same conversation that committed first is caught by the
//! count, or by the unique `(sender_id, seq)` index where the count could not see it yet. Nothing inserted
//! means either a retry of a save that did commit (the events are found by id: success) or a conflict
//! ([`Error::Conflict`]). After the insert, the relay wakes ([`crate::outbox`]): publishing is asynchronous,
//! see [`TrackerStore::save`] and [`SqlStore::close`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_broker::EventBroker;
use colloquy_events::{Event, Tracker};
use colloquy_storage::{ConnectOptions, Database, EventRow, Schema};

use crate::config::SqlConfig;
use crate::error::{Error, Result};
use crate::outbox::Relay;
use crate::store::{TrackerStore, restored};

/// Conversations in an SQL database, in Rasa's schema. Cheap to share: wrap it in an `Arc`.
pub struct SqlStore {
    database: Database,
    relay: Option<Relay>,
    close_timeout: Duration,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("target", &self.database.target())
            .field("relay", &self.relay.is_some())
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Connects (retrying a database that is not up yet, `config.connect_attempts` times with exponential
    /// back-off, then failing with a storage error that says so), creates the database from `login_db` if
    /// configured, applies the migrations, and — with a broker — starts the outbox relay, which first
    /// publishes whatever an earlier process committed but did not get confirmed.
    ///
    /// Without a broker nothing is recorded in the outbox and nothing is streamed.
    pub async fn connect(config: &SqlConfig, broker: Option<Arc<dyn EventBroker>>) -> Result<Self> {
        let options = ConnectOptions {
            max_connections: config.max_connections,
            connect_timeout: config.connect_timeout,
            read_only: false,
            application_name: "colloquy-tracker-store",
        };
        if let Some(login_db) = config.login_db() {
            Database::create_if_absent(config.url(), login_db, &options).await?;
        }
        let database = Database::connect(config.url(), &options, config.connect_attempts).await?;
        database.migrate(Schema::TrackerStore).await?;
        let relay =
            broker.map(|broker| Relay::start(database.clone(), broker, config.relay.clone()));
        tracing::info!(target = %database.target(), relay = relay.is_some(), "Tracker store connected.");
        Ok(Self {
            database,
            relay,
            close_timeout: config.relay.close_timeout,
        })
    }

    /// The storage layer underneath (for reads this store does not offer).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// How many committed events wait in the outbox for the broker's confirm.
    pub async fn outbox_len(&self) -> Result<u64> {
        Ok(self.database.outbox_len().await?)
    }

    async fn read(&self, sender_id: &str, latest_only: bool) -> Result<Option<Tracker>> {
        let Some(conversation) = self
            .database
            .read_conversation(sender_id, latest_only)
            .await?
        else {
            return Ok(None);
        };
        let events = conversation
            .rows
            .into_iter()
            .map(|row| parse_stored(sender_id, row.row_id, &row.data))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(restored(sender_id, conversation.total, events)))
    }
}

/// The event of a stored row.
pub(crate) fn parse_stored(sender_id: &str, row_id: i64, data: &str) -> Result<Event> {
    Event::from_json(data.as_bytes()).map_err(|source| Error::StoredEvent {
        sender_id: sender_id.to_owned(),
        row_id,
        source,
    })
}

#[async_trait]
impl TrackerStore for SqlStore {
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
        let dialect = self.database.dialect();
        let rows = stamped
            .iter()
            .enumerate()
            .map(|(i, event)| {
                EventRow::new(&sender_id, &event.envelope.event, &event.id)
                    .and_then(|row| row.check_fits(dialect).map(|()| row))
                    .map_err(|source| Error::InvalidEvent {
                        sender_id: sender_id.clone(),
                        seq: expected + i as u64,
                        source,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let written = self
            .database
            .insert_tracked(&sender_id, expected, &rows, self.relay.is_some())
            .await?;
        if written == 0 {
            let stored = self.database.count_events(&sender_id).await?;
            let ids: Vec<&str> = stamped.iter().map(|event| event.id.as_str()).collect();
            if self.database.count_stored_ids(&sender_id, &ids).await? == ids.len() as u64 {
                // A retry of a save whose commit went through although its caller saw an error: the events
                // are stored and in the outbox already.
                tracker.mark_saved();
                return Ok(0);
            }
            return Err(Error::Conflict {
                sender_id,
                expected,
                stored,
            });
        }
        tracker.mark_saved();
        if let Some(relay) = &self.relay {
            relay.wake();
        }
        Ok(written)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        Ok(self.database.sender_ids().await?)
    }

    async fn exists(&self, sender_id: &str) -> Result<bool> {
        Ok(self.database.conversation_exists(sender_id).await?)
    }

    /// Publishes everything saved before the call (waiting at most the relay's `close_timeout`), stops the
    /// relay and closes the connections. If events are still unconfirmed at the deadline, the error says how
    /// many; they are safe in the outbox and the next store on this database publishes them.
    async fn close(&self) -> Result<()> {
        let drained = match &self.relay {
            Some(relay) => relay.drain(&self.database, self.close_timeout).await,
            None => Ok(()),
        };
        if let Some(relay) = &self.relay {
            relay.stop().await;
        }
        self.database.close().await;
        drained
    }
}
