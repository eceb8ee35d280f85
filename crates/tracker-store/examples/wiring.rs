//! The whole wiring, as a program: a PostgreSQL tracker store that streams through RabbitMQ, three
//! conversations saved from three tasks, the shutdown order (the store, then the broker), then the queue
//! drained with a subscription and every saved event found in it.
//!
//! ```sh
//! cargo run -p colloquy-tracker-store --example wiring
//! ```
//!
//! PostgreSQL and RabbitMQ come from `DATABASE_URL` and `AMQP_URL`, else the local defaults. `cargo test`
//! runs this program too (it is registered with `test = true`), so it stays true.
//!
//! [`wire_and_drain`] is what an application writes, with one dependency: `colloquy-tracker-store`
//! re-exports the event and broker types. `main` only gives it a database, an exchange and a queue of its own
//! and removes them afterwards, so that it can run next to other programs on the same servers.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use colloquy_tracker_store::{
    AmqpBroker, AmqpConfig, AmqpSubscription, Event, EventBroker, EventKind, Next, SqlConfig,
    SqlStore, Subscription, TrackerStore,
};
use tokio::task::JoinSet;

/// One conversation: a session start, then four turns, each saved on its own (11 events, 5 saves). Returns
/// the id and the body of every event it saved, as the broker must deliver them.
async fn converse(
    store: Arc<dyn TrackerStore>,
    sender_id: &'static str,
) -> colloquy_tracker_store::Result<Vec<(String, Vec<u8>)>> {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut saved = Vec::new();
    let mut tracker = store.get_or_create(sender_id).await?;
    tracker.apply_all([
        Event::at(EventKind::action("action_session_start"), start),
        Event::at(EventKind::SessionStarted, start),
        Event::at(EventKind::action("action_listen"), start),
    ]);
    for turn in 1..=5u64 {
        // What this save will publish: each event's stable id and Rasa's bytes.
        saved.extend(tracker.stamped_since_last_save().into_iter().map(|event| {
            let body = event.envelope.to_rasa_json().into_bytes();
            (event.id.as_str().to_owned(), body)
        }));
        store.save(&mut tracker).await?;
        if turn == 5 {
            break;
        }
        let at = start + Duration::from_secs(turn);
        tracker.apply(Event::at(EventKind::user(format!("message {turn}")), at));
        tracker.apply(Event::at(EventKind::bot(format!("reply {turn}")), at));
    }
    Ok(saved)
}

/// The wiring: connect, converse, shut down in order, drain the queue, compare.
async fn wire_and_drain(
    database_url: &str,
    amqp_url: &str,
    exchange: &str,
    queue: &str,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    // The broker: Rasa's topology (a fanout exchange, a durable queue bound to it), publisher confirms.
    let amqp = AmqpConfig::from_url(amqp_url)?
        .with_exchange(exchange)?
        .with_queues([queue])?;
    let broker = Arc::new(AmqpBroker::connect(amqp.clone()).await?);

    // The store: creates the database through `login_db` when it is missing (as Rasa's `login_db`), applies
    // the migrations and starts the outbox relay, which publishes every committed event.
    let config = SqlConfig::from_url(database_url)?.with_login_db("postgres");
    let store: Arc<dyn TrackerStore> =
        Arc::new(SqlStore::connect(&config, Some(broker.clone())).await?);

    // Three conversations, saved concurrently from three tasks.
    let mut tasks = JoinSet::new();
    for sender_id in ["alice", "bob", "carol"] {
        tasks.spawn(converse(store.clone(), sender_id));
    }
    let mut saved = BTreeMap::new();
    while let Some(conversation) = tasks.join_next().await {
        saved.extend(conversation??);
    }
    assert_eq!(saved.len(), 33, "three conversations of 11 events");

    // Shutdown, in this order. The store first: `close` returns once every saved event is confirmed by
    // RabbitMQ (or fails with `Error::Unpublished`, saying how many wait, safe, in the outbox for the next
    // start). Then the broker.
    store.close().await?;
    broker.close().await?;

    // Drain the queue: `next_within` says `Idle` once nothing came for the time given.
    let mut subscription = AmqpSubscription::connect(amqp).await?;
    let mut delivered = BTreeMap::new();
    while let Next::Delivery(delivery) = subscription.next_within(Duration::from_secs(2)).await? {
        let id = delivery
            .properties
            .event_id()
            .ok_or("a delivery without an event id")?
            .to_owned();
        delivered.insert(id, delivery.body);
        delivery.acker.ack().await?;
    }
    subscription.cancel().await?;

    assert_eq!(delivered.len(), saved.len(), "every saved event, once");
    assert!(
        delivered == saved,
        "the delivered bodies are the saved ones"
    );
    println!("{} events saved, published and consumed", saved.len());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let amqp_url = colloquy_testkit::amqp_url().await;
    let database = colloquy_testkit::fresh_database().await.guard();
    let exchange = colloquy_testkit::unique_name("colloquy-example-wiring");
    let queue = colloquy_testkit::unique_name("colloquy-example-wiring");
    let outcome = wire_and_drain(&database.url, &amqp_url, &exchange, &queue).await;
    colloquy_testkit::delete_topology(&amqp_url, &exchange, &queue).await;
    outcome
}
