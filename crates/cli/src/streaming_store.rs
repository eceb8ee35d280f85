//! [`StreamingStore`]: the `memory` tracker store of `colloquy import` — a store that streams every save to
//! the broker and keeps, per conversation, only what the next save needs: how many events are stored.
//!
//! Why not [`colloquy_tracker_store::InMemoryStore`]: it keeps every event for the life of the process
//! (measured: ~350 MB for 200k Rasa-shaped events), so importing a large file would need memory in proportion
//! to the file. The save rule is the same as every store's ([`colloquy_tracker_store::store`]): the store
//! must hold exactly `first_seq + saved_len` events, the new events are stamped by the tracker
//! ([`Tracker::stamped_since_last_save`]: same ids and positions as any store gives them) and handed to the
//! broker in order under the conversation's lock. A save the broker refused (a full buffer) changes nothing
//! and can be retried as is.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use colloquy_broker::EventBroker;
use colloquy_events::Tracker;
use colloquy_tracker_store::{Error, Result, TrackerStore};
use tokio::sync::Mutex;

/// A tracker store that streams saves to a broker and remembers only each conversation's event count.
pub struct StreamingStore {
    /// Events stored per conversation. One lock for all: saves of an import run one at a time anyway, and the
    /// lock is held across the hand-over so that a conversation's events reach the broker in order.
    counts: Mutex<HashMap<String, u64>>,
    broker: Arc<dyn EventBroker>,
}

impl StreamingStore {
    /// An empty store streaming to `broker`.
    pub fn new(broker: Arc<dyn EventBroker>) -> Self {
        Self {
            counts: Mutex::default(),
            broker,
        }
    }
}

#[async_trait]
impl TrackerStore for StreamingStore {
    /// A tracker positioned after the stored events, without them (they are not kept).
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Tracker>> {
        let count = self.counts.lock().await.get(sender_id).copied();
        Ok(count.map(|count| Tracker::restore(sender_id, count, Vec::new())))
    }

    async fn retrieve_full(&self, sender_id: &str) -> Result<Option<Tracker>> {
        self.retrieve(sender_id).await
    }

    async fn save(&self, tracker: &mut Tracker) -> Result<u64> {
        if tracker.events_since_last_save().is_empty() {
            return Ok(0);
        }
        let sender_id = tracker.sender_id().to_owned();
        let stamped = tracker.stamped_since_last_save();
        let expected = tracker.first_seq() + tracker.saved_len() as u64;
        let mut counts = self.counts.lock().await;
        let stored = counts.get(&sender_id).copied().unwrap_or(0);
        if stored != expected {
            return Err(Error::Conflict {
                sender_id,
                expected,
                stored,
            });
        }
        let written = stamped.len() as u64;
        self.broker
            .publish_batch(stamped)
            .await
            .map_err(Error::Broker)?;
        counts.insert(sender_id, expected + written);
        drop(counts);
        tracker.mark_saved();
        Ok(written)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self.counts.lock().await.keys().cloned().collect();
        keys.sort_unstable();
        Ok(keys)
    }

    async fn exists(&self, sender_id: &str) -> Result<bool> {
        Ok(self.counts.lock().await.contains_key(sender_id))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use colloquy_broker::{Subscription, in_process};
    use colloquy_events::{Event, EventKind};
    use colloquy_tracker_store::InMemoryStore;

    use super::*;

    /// The messages of three saves (the second continuing the first conversation) through `store`.
    async fn messages(
        store: &dyn TrackerStore,
        subscription: &mut dyn Subscription,
    ) -> Vec<String> {
        for (sender_id, texts) in [
            ("a", ["hi", "there"]),
            ("b", ["yo", "!"]),
            ("a", ["again", "."]),
        ] {
            let mut tracker = store.get_or_create(sender_id).await.unwrap();
            for text in texts {
                tracker.apply(Event::new(EventKind::user(text)));
            }
            assert_eq!(store.save(&mut tracker).await.unwrap(), 2);
        }
        let mut out = Vec::new();
        for _ in 0..6 {
            let delivery = subscription.next().await.unwrap().unwrap();
            out.push(format!(
                "{} {:?} {}",
                delivery.properties.event_id().unwrap(),
                delivery.properties.seq(),
                String::from_utf8(delivery.body).unwrap()
            ));
        }
        out
    }

    #[tokio::test]
    async fn streams_exactly_what_the_in_memory_store_streams() {
        let capacity = NonZeroUsize::new(64).unwrap();
        let (broker, mut subscription) = in_process(capacity);
        let ours = messages(&StreamingStore::new(Arc::new(broker)), &mut subscription).await;
        let (broker, mut subscription) = in_process(capacity);
        let theirs = messages(
            &InMemoryStore::with_broker(Arc::new(broker)),
            &mut subscription,
        )
        .await;
        assert_eq!(ours, theirs);
    }

    #[tokio::test]
    async fn refuses_a_stale_tracker() {
        let (broker, _subscription) = in_process(NonZeroUsize::new(8).unwrap());
        let store = StreamingStore::new(Arc::new(broker));
        let mut tracker = Tracker::new("a");
        tracker.apply(Event::new(EventKind::user("hi")));
        store.save(&mut tracker).await.unwrap();
        let mut stale = Tracker::new("a");
        stale.apply(Event::new(EventKind::user("hi")));
        assert!(store.save(&mut stale).await.unwrap_err().is_conflict());
        assert_eq!(store.keys().await.unwrap(), ["a"]);
    }
}
