//! The consumer over the in-process transport: what it holds in memory while the database is slow, and what
//! it leaves behind when it returns.

use colloquy_testkit::consumer as support;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::{MessageProperties, in_process};
use colloquy_consumer::{Consumer, ConsumerOptions};
use colloquy_storage::{ConnectOptions, Database, Schema};
use colloquy_testkit::wait_until;
use sqlx::{Connection, Executor, PgConnection};
use support::TestStore;

/// An event of about `size` bytes, distinct for each `n`.
fn big_event(n: usize, size: usize) -> Vec<u8> {
    format!(
        r#"{{"sender_id": "big", "event": "bot", "timestamp": {n}.0, "text": "{}"}}"#,
        "x".repeat(size)
    )
    .into_bytes()
}

#[tokio::test]
async fn bytes_in_flight_stay_bounded_while_the_database_is_slow() {
    const BODY: usize = 100_000;
    const LIMIT: usize = 1_000_000;
    const MESSAGES: usize = 40;
    let store = TestStore::postgres().await;
    let database =
        Database::connect_lazy(&store.url(), &ConnectOptions::default()).expect("database URL");
    database.migrate(Schema::Events).await.expect("migrating");

    // Another session locks the events table: the consumer's first insert waits, as on a slow database.
    let mut locker = PgConnection::connect(&store.url())
        .await
        .expect("connecting");
    locker.execute("BEGIN").await.unwrap();
    locker
        .execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let (broker, subscription) = in_process(NonZeroUsize::new(MESSAGES).unwrap());
    for n in 0..MESSAGES {
        broker
            .publish_raw(big_event(n, BODY), &MessageProperties::default())
            .await
            .unwrap();
    }
    let consumer = Consumer::new(
        Arc::new(database.clone()),
        ConsumerOptions {
            batch_size: 1000,
            max_inflight_bytes: LIMIT,
            ..ConsumerOptions::default()
        },
    );
    let metrics = consumer.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(consumer.run(Box::new(subscription), async move {
        let _ = stopped.await;
    }));

    let mut peak = 0;
    let watch = |peak: &mut usize| {
        *peak = (*peak).max(metrics.inflight_bytes());
        *peak
    };
    // The writer waits on the lock with its batch; the batcher fills the next one up to the bound.
    let observer = sqlx::PgPool::connect(&store.url())
        .await
        .expect("connecting");
    wait_until(
        "the insert to wait on the lock and the bound to be reached",
        Duration::from_secs(30),
        || {
            let reached = watch(&mut peak) >= LIMIT;
            let waiting = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT%'",
            )
            .fetch_one(&observer);
            async move { reached && waiting.await.unwrap_or(0) >= 1 }
        },
    )
    .await;
    assert!(
        watch(&mut peak) <= LIMIT + BODY + 200,
        "at most the bound plus one message is held: {peak} bytes"
    );

    locker.execute("COMMIT").await.unwrap();
    let stored = || async { support::count_rows(&database, "events").await == MESSAGES as i64 };
    wait_until("every event stored", support::STORE_TIMEOUT, || {
        watch(&mut peak);
        stored()
    })
    .await;
    assert!(
        peak <= LIMIT + BODY + 200,
        "never more than the bound plus one message held: {peak} bytes"
    );
    wait_until("every byte released", Duration::from_secs(10), || {
        let released = metrics.inflight_bytes() == 0;
        async move { released }
    })
    .await;

    observer.close().await;
    let _ = stop.send(());
    running.await.unwrap().expect("the consumer stops cleanly");
    database.close().await;
    store.cleanup().await;
}

#[tokio::test]
async fn run_leaves_no_task_behind() {
    let store = TestStore::sqlite().await;
    let database =
        Database::connect_lazy(&store.url(), &ConnectOptions::default()).expect("database URL");
    let (broker, subscription) = in_process(NonZeroUsize::new(8).unwrap());
    broker
        .publish_raw(big_event(1, 10), &MessageProperties::default())
        .await
        .unwrap();
    // The subscription ends (the broker closes) before any shutdown signal: `run` returns on its own.
    colloquy_broker::EventBroker::close(&broker).await.unwrap();
    let shutdown_state = Arc::new(());
    let held = shutdown_state.clone();
    let summary = Consumer::new(Arc::new(database.clone()), ConsumerOptions::default())
        .run(Box::new(subscription), async move {
            let _held = held;
            std::future::pending::<()>().await;
        })
        .await
        .expect("the consumer stops when the subscription ends");
    assert_eq!(summary.events_stored, 1);
    assert_eq!(
        Arc::strong_count(&shutdown_state),
        1,
        "the shutdown future was dropped with `run`, not left running in a task"
    );
    database.close().await;
    store.cleanup().await;
}
