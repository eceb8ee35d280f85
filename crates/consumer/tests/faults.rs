//! Fault injection against the real servers: the broker drops connections or restarts, PostgreSQL or MariaDB
//! restarts.
//! After each fault the table holds every event exactly once, in per-conversation order.
//!
//! These tests disturb the shared servers, so they run one at a time (a process-wide lock), and each restores
//! the server even when it fails.

use colloquy_testkit::consumer as support;
use colloquy_testkit::on_every_dialect;

use std::time::Duration;

use colloquy_testkit::TestDialect;
use colloquy_testkit::faults::{Action, LocalServer};
use colloquy_testkit::{data_of, interleave, rasa_conversation};
use colloquy_testkit::{rabbitmqctl, wait_until};
use support::{Harness, TestStore};

static ONE_FAULT_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The shared server behind `dialect`, for fault injection (SQLite has none).
fn server_of(dialect: TestDialect) -> Option<LocalServer> {
    match dialect {
        TestDialect::Postgres => Some(LocalServer::Postgres),
        TestDialect::MySql => Some(LocalServer::MariaDb),
        TestDialect::Sqlite => None,
    }
}

/// 200 conversations of 25 turns: 20600 events, consumed in small batches so that the fault lands mid-stream.
fn workload() -> Vec<Vec<u8>> {
    interleave(
        (0..200)
            .map(|n| rasa_conversation(&format!("fault-{n}"), 25))
            .collect(),
    )
}

async fn slow_harness(dialect: TestDialect) -> Harness {
    let mut harness = Harness::new(TestStore::of(dialect).await).await;
    harness.options.batch_size = 20;
    harness.prefetch = 40;
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
    let _serial = ONE_FAULT_AT_A_TIME.lock().await;
    let mut harness = slow_harness(dialect).await;
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    rabbitmqctl(&["close_all_connections", "colloquy fault test"]);
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

#[tokio::test]
async fn broker_restarted_mid_stream() {
    let _serial = ONE_FAULT_AT_A_TIME.lock().await;
    let mut harness = slow_harness(TestDialect::Postgres).await;
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    {
        let _restorer = LocalServer::RabbitMq.restorer();
        LocalServer::RabbitMq.run(Action::Stop);
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
        LocalServer::RabbitMq.run(Action::Start);
    }
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

async fn database_restarted_mid_stream(dialect: TestDialect) {
    let _serial = ONE_FAULT_AT_A_TIME.lock().await;
    let mut harness = slow_harness(dialect).await;
    harness.start().await;
    let bodies = workload();
    harness.publish_like_rasa(&bodies).await;
    wait_for_progress(&harness, 500, bodies.len()).await;
    if let Some(server) = server_of(dialect) {
        let _restorer = server.restorer();
        server.run(Action::Restart);
    }
    assert_all_stored_once_in_order(&harness, &bodies).await;
    harness.cleanup().await;
}

on_every_dialect!(broker_connections_closed_mid_stream);

mod database_restarted_mid_stream {
    use colloquy_testkit::TestDialect;

    #[tokio::test]
    async fn postgres() {
        super::database_restarted_mid_stream(TestDialect::Postgres).await
    }

    #[tokio::test]
    async fn mysql() {
        super::database_restarted_mid_stream(TestDialect::MySql).await
    }
}
