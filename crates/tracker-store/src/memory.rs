//! [`InMemoryStore`]: conversations kept in process memory, for tests, demos and embedding.
//!
//! Each conversation has its own async lock; the map of conversations is behind a short-lived read/write
//! lock that is never held across an `await`. A save checks the stored count (see [`crate::store`]), appends,
//! and hands the new events to the broker while still holding the conversation's lock, so that the events of
//! one conversation reach the broker in order; other conversations are not blocked.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use colloquy_broker::EventBroker;
use colloquy_events::{Event, EventId, Tracker};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::store::{TrackerStore, latest_session, restored};

/// Conversations in memory. Cheap to share: wrap it in an `Arc`.
#[derive(Default)]
pub struct InMemoryStore {
    conversations: RwLock<HashMap<String, Arc<Mutex<Conversation>>>>,
    broker: Option<Arc<dyn EventBroker>>,
}

#[derive(Default)]
struct Conversation {
    events: Vec<Event>,
    /// The id of each stored event, to recognise a retried save of events stored already.
    ids: Vec<EventId>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("conversations", &self.read_map().len())
            .field("broker", &self.broker.is_some())
            .finish()
    }
}

impl InMemoryStore {
    /// An empty store that streams nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that hands every saved event to `broker`.
    pub fn with_broker(broker: Arc<dyn EventBroker>) -> Self {
        Self {
            conversations: RwLock::default(),
            broker: Some(broker),
        }
    }

    fn read_map(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Mutex<Conversation>>>> {
        // A panic while holding the map lock cannot leave the map half-updated (single inserts), so a
        // poisoned lock is still consistent.
        self.conversations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conversation(&self, sender_id: &str) -> Option<Arc<Mutex<Conversation>>> {
        self.read_map().get(sender_id).cloned()
    }

    fn conversation_or_insert(&self, sender_id: &str) -> Arc<Mutex<Conversation>> {
        if let Some(conversation) = self.conversation(sender_id) {
            return conversation;
        }
        self.conversations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(sender_id.to_owned())
            .or_default()
            .clone()
    }

    async fn read(&self, sender_id: &str, latest_only: bool) -> Option<Tracker> {
        let conversation = self.conversation(sender_id)?;
        let conversation = conversation.lock().await;
        if conversation.events.is_empty() {
            return None;
        }
        let events = if latest_only {
            latest_session(&conversation.events)
                .into_iter()
                .map(|i| conversation.events[i].clone())
                .collect()
        } else {
            conversation.events.clone()
        };
        Some(restored(
            sender_id,
            conversation.events.len() as u64,
            events,
        ))
    }
}

#[async_trait]
impl TrackerStore for InMemoryStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Tracker>> {
        Ok(self.read(sender_id, true).await)
    }

    async fn retrieve_full(&self, sender_id: &str) -> Result<Option<Tracker>> {
        Ok(self.read(sender_id, false).await)
    }

    async fn save(&self, tracker: &mut Tracker) -> Result<u64> {
        let new = tracker.events_since_last_save();
        if new.is_empty() {
            return Ok(0);
        }
        let sender_id = tracker.sender_id().to_owned();
        let stamped = tracker.stamped_since_last_save();
        let expected = tracker.first_seq() + tracker.saved_len() as u64;
        let conversation = self.conversation_or_insert(&sender_id);
        let mut conversation = conversation.lock().await;
        let stored = conversation.events.len() as u64;
        let written = if stored == expected {
            conversation.events.extend_from_slice(new);
            conversation
                .ids
                .extend(stamped.iter().map(|event| event.id.clone()));
            stamped.len() as u64
        } else if stored == expected + stamped.len() as u64
            && conversation.ids[expected as usize..]
                .iter()
                .eq(stamped.iter().map(|event| &event.id))
        {
            // A retry of a save that stored these events but failed to hand them to the broker: hand them
            // over again (same ids, so a consumer drops the duplicates).
            0
        } else {
            return Err(Error::Conflict {
                sender_id,
                expected,
                stored,
            });
        };
        if let Some(broker) = &self.broker {
            // Still under the conversation's lock: the next save of this conversation publishes after us.
            broker.publish_batch(stamped).await.map_err(Error::Broker)?;
        }
        drop(conversation);
        tracker.mark_saved();
        Ok(written)
    }

    /// Waits until the broker confirmed every event saved so far ([`EventBroker::flush`]); the broker
    /// itself stays open (close it after the store). Without a broker there is nothing to wait for.
    async fn close(&self) -> Result<()> {
        if let Some(broker) = &self.broker {
            broker.flush().await.map_err(Error::Broker)?;
        }
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<String>> {
        let candidates: Vec<(String, Arc<Mutex<Conversation>>)> = self
            .read_map()
            .iter()
            .map(|(key, conversation)| (key.clone(), conversation.clone()))
            .collect();
        let mut keys = Vec::with_capacity(candidates.len());
        for (key, conversation) in candidates {
            // An entry is created just before its first save; it counts once it holds events.
            if !conversation.lock().await.events.is_empty() {
                keys.push(key);
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn exists(&self, sender_id: &str) -> Result<bool> {
        Ok(match self.conversation(sender_id) {
            Some(conversation) => !conversation.lock().await.events.is_empty(),
            None => false,
        })
    }
}
