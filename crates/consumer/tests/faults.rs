//! Fault injection against real servers: the broker drops the consumer's connections or restarts, PostgreSQL
//! or MariaDB restarts. After each fault the table holds every event exactly once, in per-conversation order.
//!
//! No fault touches what other tests use: closing connections closes only this consumer's (by its unique
//! connection name), and the restarts happen on private instances of the test's own
//! ([`PrivateRabbitMq`], [`PrivatePostgres`], [`PrivateMariaDb`]), so these tests run in parallel with any
//! other.

use colloquy_testkit::consumer as support;
use colloquy_testkit::on_every_dialect;

use std::time::Duration;

use colloquy_testkit::broker::close_connections_named;
use colloquy_testkit::wait_until;
use colloquy_testkit::{PrivateMariaDb, PrivatePostgres, PrivateRabbitMq, TestDialect};
use colloquy_testkit::{data_of, interleave, rasa_conversation};
use support::{Harness, TestStore};

/// 200 conversations of 25 turns: 20600 events, consumed in small batches so that the fault lands mid-stream.
fn workload() -> Vec<Vec<u8>> {
    interleave(
        (0..200)
            .map(|n| rasa_conversation(&format!("fault-{n}"), 25))
            .collect(),
    )
}

/// Consumes in small batches with a small prefetch, so that the fault lands mid-stream.
fn slow_down(harness: &mut Harness) {
    harness.options.batch_size = 20;
    harness.prefetch = 40;
}

async fn slow_harness(dialect: TestDialect) -> Harness {
    let mut harness = Harness::new(TestStore::of(dialect).await).await;
    slow_down(&mut harness);
    harness
}

async fn assert_all_stored_once_in_order(harness: &Harness, bodies: &[Vec<u8>]) {
    harness.wait_for_events(bodies.len() as i64).await;
    let rows = harness.rows().await;
    assert_eq!(rows.len(), bodies.len(), "exactly one row per event");
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for body in bodies {
        let envelope = colloquy_events::Envelope::from_json(body).unwrap();
        expected
            .entry(envelope.sender_id)
            .or_default()
            .push(data_of(body));
    }
    let mut stored: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for row in rows {
        stored.entry(row.sender_id).or_default().push(row.data);
    }
    assert_eq!(stored, expected, "per-conversation order");
}

/// Waits until the consumer is under way, and checks that it has not finished: the fault must land mid-stream.
async fn wait_for_progress(harness: &Harness, at_least: i64, total: usize) {
    let database = harness.database.clone();
    wait_until(
        &format!("at least {at_least} events stored"),
        support::STORE_TIMEOUT,
        || {
            let database = database.clone();
            async move { support::count_rows(&database, "events").await >= at_least }
        },
    )
    .await;
    let stored = support::count_rows(&harness.database, "events").await;
    assert!(
        stored < total as i64,
        "the consumer finished before the fault ({stored} of {total}); slow it down"
    );
}

async fn broker_connections_closed_mid_stream(dialect: TestDialect) {
    let mut harness = slow_harness(dialect).await;
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    assert!(
        close_connections_named(&harness.connection_name()) > 0,
        "the consumer's connection was not listed"
    );
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_mid_stream() {
    // Declared first, dropped last: the harness cleans up on the node before it stops.
    let node = PrivateRabbitMq::start();
    let mut harness = Harness::on_broker(TestStore::postgres().await, &node.url).await;
    slow_down(&mut harness);
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    tokio::task::block_in_place(|| node.ctl(&["stop_app"]));
    // The consumer notices the broker is gone.
    let metrics = harness.metrics();
    wait_until(
        "the consumer to see the broker down",
        Duration::from_secs(30),
        || {
            let metrics = metrics.clone();
            async move { !metrics.broker_ready() }
        },
    )
    .await;
    tokio::task::block_in_place(|| {
        node.ctl(&["start_app"]);
        node.ctl(&["await_startup"]);
    });
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

/// PostgreSQL on a private cluster, stopped and started mid-stream (the consumer sees the outage).
async fn postgres_restarted_mid_stream() {
    let cluster = PrivatePostgres::init();
    cluster.start();
    let mut harness = Harness::new(TestStore::Private(cluster)).await;
    slow_down(&mut harness);
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    let TestStore::Private(cluster) = &harness.store else {
        unreachable!("the harness holds the private cluster")
    };
    tokio::task::block_in_place(|| {
        cluster.stop();
        cluster.start();
    });
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

/// MariaDB on a private server, stopped and started mid-stream (the consumer sees the outage).
async fn mysql_restarted_mid_stream() {
    let mut server = PrivateMariaDb::init();
    server.start();
    let mut harness = Harness::new(TestStore::PrivateMariaDb(server)).await;
    slow_down(&mut harness);
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    let TestStore::PrivateMariaDb(server) = &mut harness.store else {
        unreachable!("the harness holds the private server")
    };
    tokio::task::block_in_place(|| {
        server.stop();
        server.start();
    });
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

on_every_dialect!(broker_connections_closed_mid_stream);

mod database_restarted_mid_stream {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::postgres_restarted_mid_stream().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        super::mysql_restarted_mid_stream().await
    }
}
