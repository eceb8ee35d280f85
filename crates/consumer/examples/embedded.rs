//! The consumer library embedded in another service: the host owns the runtime and the shutdown signal, and
//! hands the consumer a subscription, a database and a future that resolves when the host wants it to stop
//! (`Consumer::run(subscription, shutdown)`). On that signal the consumer stops taking deliveries, stores and
//! acknowledges the batch in hand, and returns what it did.
//!
//! ```sh
//! cargo run -p colloquy-consumer --example embedded
//! ```
//!
//! RabbitMQ and PostgreSQL come from `AMQP_URL` and `DATABASE_URL`, else the local defaults. `cargo test`
//! runs this program too (it is registered with `test = true`). [`host_service`] is what an application
//! writes; `main` only gives it a database, an exchange and a queue of its own, and removes them afterwards.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_broker::{AmqpBroker, AmqpConfig, AmqpSubscription, EventBroker};
use colloquy_consumer::{Consumer, ConsumerOptions};
use colloquy_events::{Envelope, StampedEnvelope};
use colloquy_storage::{ConnectOptions, Database};
use tokio::sync::oneshot;

const EVENTS: u64 = 20;
/// How often the host looks at the consumer's counters while it waits: often enough not to slow the
/// example down, rarely enough to cost nothing.
const METRICS_POLL: Duration = Duration::from_millis(20);
/// The longest the host waits for its events to be stored before it gives up.
const STORE_DEADLINE: Duration = Duration::from_secs(30);

async fn host_service(
    database_url: &str,
    amqp_url: &str,
    exchange: &str,
    queue: &str,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let amqp = AmqpConfig::from_url(amqp_url)?
        .with_exchange(exchange)?
        .with_queues([queue])?;

    // The consumer: a database (its `events` table is created or adopted when `run` starts), options, and a
    // subscription. It runs in a task of the host's runtime; the host keeps the sending half of its shutdown.
    let database = Database::connect_lazy(database_url, &ConnectOptions::default())?;
    let consumer = Consumer::new(Arc::new(database), ConsumerOptions::default());
    let metrics = consumer.metrics();
    let subscription = AmqpSubscription::connect(amqp.clone()).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        // Resolves when the host says so (or drops its sender).
        let _ = stopped.await;
    };
    let consumer = tokio::spawn(consumer.run(Box::new(subscription), shutdown));

    // Meanwhile the host does its own work; here it publishes a conversation of its own.
    let broker = AmqpBroker::connect(amqp).await?;
    for n in 0..EVENTS {
        let body = format!(
            r#"{{"sender_id": "embedded", "event": "user", "timestamp": {n}.0, "text": "message {n}"}}"#
        );
        let event = StampedEnvelope::unsequenced(Envelope::from_json(body.as_bytes())?);
        broker.publish(event).await?;
    }
    broker.close().await?;

    // The host decides when to stop: here, once its events are stored (a bounded wait on the metrics).
    let deadline = Instant::now() + STORE_DEADLINE;
    while metrics.events_stored() < EVENTS {
        if Instant::now() > deadline {
            let stored = metrics.events_stored();
            return Err(format!("only {stored} events stored in {STORE_DEADLINE:?}").into());
        }
        tokio::time::sleep(METRICS_POLL).await;
    }
    let _ = stop.send(());
    let summary = consumer.await??;
    assert_eq!(summary.events_stored, EVENTS);
    assert_eq!(summary.dead_letters, 0);
    println!(
        "the embedded consumer stored {} events and stopped",
        summary.events_stored
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let amqp_url = colloquy_testkit::amqp_url().await;
    let database = colloquy_testkit::fresh_database().await.guard();
    let exchange = colloquy_testkit::unique_name("colloquy-example-embedded");
    let queue = colloquy_testkit::unique_name("colloquy-example-embedded");
    let outcome = host_service(&database.url, &amqp_url, &exchange, &queue).await;
    colloquy_testkit::delete_topology(&amqp_url, &exchange, &queue).await;
    outcome
}
