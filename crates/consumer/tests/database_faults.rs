//! The one policy for database failures: what can pass (read-only, down at start) is waited out with the
//! deliveries held and `/health` saying why; what only the operator can fix (a missing table) stops the consumer
//! with a configuration error instead of dead-lettering every event. The faults that break the server run on a
//! private PostgreSQL cluster of their own.

use colloquy_testkit::consumer as support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use colloquy_testkit::{PrivatePostgres, data_of, interleave, rasa_conversation, wait_until};
use sqlx::{Connection, Executor, PgConnection};
use support::{Harness, TestStore};

fn workload(prefix: &str) -> Vec<Vec<u8>> {
    interleave(
        (0..40)
            .map(|n| rasa_conversation(&format!("{prefix}-{n}"), 10))
            .collect(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /health`: the status code and the body.
async fn health(port: u16) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return (0, String::new());
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

async fn assert_all_stored_once_in_order(harness: &Harness, bodies: &[Vec<u8>]) {
    harness.wait_for_events(bodies.len() as i64).await;
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for body in bodies {
        let envelope = colloquy_events::Envelope::from_json(body).unwrap();
        expected
            .entry(envelope.sender_id)
            .or_default()
            .push(data_of(body));
    }
    let mut stored: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for row in harness.rows().await {
        stored.entry(row.sender_id).or_default().push(row.data);
    }
    assert_eq!(
        stored, expected,
        "every event once, in per-conversation order"
    );
}

async fn set_read_only(cluster: &PrivatePostgres, on: bool) {
    let mut admin = PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connecting to the private cluster");
    let statement = if on {
        "ALTER SYSTEM SET default_transaction_read_only = on"
    } else {
        "ALTER SYSTEM RESET default_transaction_read_only"
    };
    admin.execute(statement).await.expect(statement);
    // A reload reaches the sessions that are open already (the consumer's pooled connections).
    admin
        .execute("SELECT pg_reload_conf()")
        .await
        .expect("reloading the configuration");
}

#[tokio::test]
async fn a_read_only_database_is_waited_out_and_reported_in_health() {
    let cluster = PrivatePostgres::init();
    cluster.start();
    let store = TestStore::Private(cluster);
    let mut harness = Harness::new(store).await;
    let port = free_port();
    harness.options.batch_size = 20;
    harness.options.http = Some(([127, 0, 0, 1], port).into());
    harness.prefetch = 40;
    harness.start().await;
    let TestStore::Private(cluster) = &harness.store else {
        unreachable!()
    };

    let bodies = workload("read-only");
    harness.publish_like_rasa(&bodies[..100]).await;
    harness.wait_for_events(100).await;
    wait_until("/health 200", Duration::from_secs(30), || async {
        health(port).await.0 == 200
    })
    .await;

    set_read_only(cluster, true).await;
    harness.publish_like_rasa(&bodies[100..]).await;
    let metrics = harness.metrics();
    wait_until(
        "the consumer to report the read-only database",
        Duration::from_secs(30),
        || {
            let metrics = metrics.clone();
            async move {
                metrics
                    .database_failure()
                    .is_some_and(|failure| failure.contains("read-only"))
            }
        },
    )
    .await;
    let (status, body) = health(port).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("read-only transaction"),
        "/health says why, in the database's words: {body}"
    );
    assert!(
        !harness.consumer_finished(),
        "the consumer waits for the database instead of exiting"
    );
    assert_eq!(
        support::count_rows(&harness.database, "dead_letters").await,
        0,
        "nothing is dead-lettered for a fault that can pass"
    );

    set_read_only(cluster, false).await;
    assert_all_stored_once_in_order(&harness, &bodies).await;
    wait_until("/health 200 again", Duration::from_secs(30), || async {
        health(port).await.0 == 200
    })
    .await;
    assert!(!harness.consumer_finished(), "the consumer still runs");
    assert_eq!(
        support::count_rows(&harness.database, "dead_letters").await,
        0
    );
    harness.cleanup().await;
}

#[tokio::test]
async fn a_database_down_at_start_is_waited_for() {
    let cluster = PrivatePostgres::init();
    let mut harness = Harness::unmigrated(TestStore::Private(cluster)).await;
    let port = free_port();
    harness.options.http = Some(([127, 0, 0, 1], port).into());
    harness.start().await;
    let bodies = workload("down-at-start");
    harness.publish_like_rasa(&bodies).await;

    // Down for 20 s: longer than a connection attempt (10 s), and the consumer must still be waiting.
    let metrics = harness.metrics();
    let down_until = Instant::now() + Duration::from_secs(20);
    wait_until("20 s of the database down", Duration::from_secs(40), || {
        assert!(
            !harness.consumer_finished(),
            "the consumer gave up on a database that is down at start"
        );
        let reported = metrics.database_failure().is_some();
        async move { reported && Instant::now() >= down_until }
    })
    .await;
    let (status, body) = health(port).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database_error"), "{body}");

    let TestStore::Private(cluster) = &harness.store else {
        unreachable!()
    };
    cluster.start();
    assert_all_stored_once_in_order(&harness, &bodies).await;
    assert!(metrics.database_ready());
    harness.cleanup().await;
}

/// Breaks the schema of a running consumer's database with `statement`, publishes a conversation, and checks
/// that the consumer stops with a configuration error that says `says`, dead-lettering nothing.
async fn schema_fault_stops_the_consumer(statement: &'static str, says: &str) {
    let mut harness = Harness::new(TestStore::postgres().await).await;
    harness.start().await;
    // Someone else breaks the schema: SQL from outside, as an operator's psql would send it.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&harness.store.url())
        .await
        .expect("connecting as an operator");
    sqlx::query(statement)
        .execute(&mut admin)
        .await
        .expect(statement);
    harness
        .publish_like_rasa(&rasa_conversation("schema-fault", 3))
        .await;
    let error = harness
        .ended()
        .await
        .expect_err("the consumer stops on a schema fault");
    assert!(error.is_configuration(), "{error}");
    assert!(!error.is_transient() && !error.is_refused(), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(says) && !message.contains("did not answer"),
        "the message says what happened: {message}"
    );
    assert_eq!(
        support::count_rows(&harness.database, "dead_letters").await,
        0,
        "a schema fault is not bad input"
    );
    harness.cleanup().await;
}

#[tokio::test]
async fn a_missing_table_stops_the_consumer_instead_of_dead_lettering_everything() {
    schema_fault_stops_the_consumer("DROP TABLE events CASCADE", "\"events\" does not exist").await;
}

#[tokio::test]
async fn a_dropped_unique_index_stops_the_consumer_instead_of_dead_lettering_everything() {
    schema_fault_stops_the_consumer(
        "DROP INDEX events_event_key",
        "no unique or exclusion constraint",
    )
    .await;
}

#[tokio::test]
async fn a_stop_during_an_outage_says_what_the_database_said() {
    let cluster = PrivatePostgres::init();
    cluster.start();
    let mut harness = Harness::new(TestStore::Private(cluster)).await;
    harness.options.shutdown_grace = Duration::from_secs(1);
    harness.start().await;
    let TestStore::Private(cluster) = &harness.store else {
        unreachable!()
    };
    set_read_only(cluster, true).await;
    let bodies = rasa_conversation("stop-during-outage", 3);
    harness.publish_like_rasa(&bodies).await;
    let metrics = harness.metrics();
    wait_until(
        "the consumer to report the read-only database",
        Duration::from_secs(30),
        || {
            let failing = metrics.database_failure().is_some();
            async move { failing }
        },
    )
    .await;
    let error = harness.stop_with_error().await;
    let message = error.to_string();
    assert!(error.is_transient(), "{message}");
    assert!(
        message.contains("read-only transaction") && message.contains("stay in the queue"),
        "the error says what the database said, and where the messages are: {message}"
    );
    harness.cleanup().await;
}
