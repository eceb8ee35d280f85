//! The in-memory store against the shared conformance cases.

use colloquy_testkit::tracker_store as common;

use std::sync::Arc;

use colloquy_tracker_store::{InMemoryStore, TrackerStore};
use common::{Recorder, conformance, in_process_broker};

/// A store streaming to the real in-process broker, and what its subscription received.
fn store() -> (Arc<InMemoryStore>, Arc<Recorder>) {
    let (broker, received) = in_process_broker();
    (Arc::new(InMemoryStore::with_broker(broker)), received)
}

#[tokio::test]
async fn sessions_and_streaming() -> anyhow::Result<()> {
    let (store, broker) = store();
    conformance::sessions_and_streaming(store.as_ref(), &broker).await
}

#[tokio::test]
async fn only_new_events_are_streamed() -> anyhow::Result<()> {
    let (store, broker) = store();
    conformance::only_new_events_are_streamed(store.as_ref(), &broker).await
}

#[tokio::test]
async fn retried_save_is_idempotent() -> anyhow::Result<()> {
    let (store, broker) = store();
    conformance::retried_save_is_idempotent(store.as_ref(), &broker).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_of_one_conversation() -> anyhow::Result<()> {
    let (store, broker) = store();
    conformance::concurrent_saves_of_one_conversation(store, broker).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_and_new_conversations_at_once() -> anyhow::Result<()> {
    let (store, broker) = store();
    conformance::contended_and_new_conversations_at_once(store, broker).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_conversations_in_parallel() -> anyhow::Result<()> {
    let (store, broker) = store();
    conformance::many_conversations_in_parallel(store.clone(), broker, 5000).await?;
    let _: &dyn TrackerStore = store.as_ref();
    Ok(())
}
