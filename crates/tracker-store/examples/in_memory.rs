//! The same wiring without servers: the in-memory store streaming to the in-process broker (a bounded
//! channel), three conversations saved from three tasks, the shutdown order, the subscription drained.
//!
//! ```sh
//! cargo run -p colloquy-tracker-store --example in_memory
//! ```
//!
//! `cargo test` runs this program too (it is registered with `test = true`).

use std::collections::BTreeMap;
use std::error::Error;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use colloquy_tracker_store::{
    Event, EventBroker, EventKind, InMemoryStore, Next, Subscription, TrackerStore, in_process,
};
use tokio::task::JoinSet;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // The in-process broker holds at most 256 undelivered events; a save waits while it is full.
    let (broker, mut subscription) = in_process(NonZeroUsize::new(256).expect("not zero"));
    let broker = Arc::new(broker);
    let store: Arc<dyn TrackerStore> = Arc::new(InMemoryStore::with_broker(broker.clone()));

    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut tasks = JoinSet::new();
    for sender_id in ["alice", "bob", "carol"] {
        let store = store.clone();
        tasks.spawn(async move {
            let mut tracker = store.get_or_create(sender_id).await?;
            let mut ids = Vec::new();
            for turn in 0..4u64 {
                let at = start + Duration::from_secs(turn);
                tracker.apply(Event::at(EventKind::user(format!("message {turn}")), at));
                tracker.apply(Event::at(EventKind::bot(format!("reply {turn}")), at));
                ids.extend(tracker.stamped_since_last_save().into_iter().map(|e| e.id));
                store.save(&mut tracker).await?;
            }
            Ok::<_, colloquy_tracker_store::Error>((sender_id, ids))
        });
    }
    let mut saved = BTreeMap::new();
    while let Some(conversation) = tasks.join_next().await {
        let (sender_id, ids) = conversation??;
        saved.insert(sender_id, ids);
    }

    for sender_id in saved.keys() {
        let stored = store.retrieve(sender_id).await?.ok_or("stored")?;
        assert_eq!(stored.events().len(), 8);
    }

    // Shutdown: the store (everything saved handed over and confirmed), then the broker; the subscription
    // then delivers what is buffered and ends.
    store.close().await?;
    broker.close().await?;

    let mut delivered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Next::Delivery(delivery) = subscription.next_within(Duration::from_secs(1)).await? {
        let envelope = colloquy_tracker_store::Envelope::from_json(&delivery.body)?;
        let id = delivery
            .properties
            .event_id()
            .ok_or("no event id")?
            .to_owned();
        delivered.entry(envelope.sender_id).or_default().push(id);
        delivery.acker.ack().await?;
    }
    for (sender_id, ids) in &saved {
        let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        // Every event of a conversation, in the order it was saved.
        assert_eq!(delivered.get(*sender_id), Some(&ids), "{sender_id}");
    }
    println!("{} conversations saved and published", saved.len());
    Ok(())
}
