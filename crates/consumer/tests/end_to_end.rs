//! End to end: Rasa-shaped and Colloquy-published events through the real RabbitMQ into PostgreSQL, MySQL and
//! SQLite (every test runs on each).

use colloquy_testkit::consumer as support;
use colloquy_testkit::on_every_dialect;

use std::collections::BTreeMap;

use colloquy_broker::{AmqpBroker, EventBroker};
use colloquy_events::{Envelope, EventId, Tracker};
use colloquy_testkit::TestDialect;
use colloquy_testkit::{data_of, interleave, rasa_conversation};
use support::{Harness, StoredRow, TestStore};

/// Checks that `rows` are exactly `bodies` (each once), in per-conversation order, with Rasa's column values.
fn assert_stored_exactly(rows: &[StoredRow], bodies: &[Vec<u8>]) {
    assert_eq!(rows.len(), bodies.len(), "row count");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for body in bodies {
        let envelope = Envelope::from_json(body).expect("valid body");
        expected
            .entry(envelope.sender_id)
            .or_default()
            .push(data_of(body));
    }
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        stored
            .entry(row.sender_id.clone())
            .or_default()
            .push(row.data.clone());
        let event: serde_json::Value = serde_json::from_str(&row.data).expect("data is JSON");
        assert_eq!(row.type_name, event["event"].as_str().unwrap());
        assert_eq!(row.timestamp, event["timestamp"].as_f64());
        assert_eq!(
            row.action_name.as_deref(),
            event.get("name").and_then(|name| name.as_str())
        );
        assert_eq!(
            row.intent_name.as_deref(),
            event
                .pointer("/parse_data/intent/name")
                .and_then(|name| name.as_str())
        );
        assert!(row.event_id.is_some());
    }
    assert_eq!(
        stored, expected,
        "every conversation's events, in order, byte for byte"
    );
}

async fn rasa_published_conversations_are_stored_once_in_order(dialect: TestDialect) {
    let mut harness = Harness::new(TestStore::of(dialect).await).await;
    harness.start().await;
    let bodies = interleave(
        (0..5)
            .map(|n| rasa_conversation(&format!("user-{n}"), 8))
            .collect(),
    );
    harness.publish_like_rasa(&bodies).await;
    harness.wait_for_events(bodies.len() as i64).await;
    let rows = harness.rows().await;
    assert_stored_exactly(&rows, &bodies);
    // Without a Colloquy header, the id is the SHA-256 of sender_id and body.
    let first = Envelope::from_json(&bodies[0]).unwrap();
    assert_eq!(
        rows[0].event_id.as_deref(),
        Some(EventId::for_message(&first.sender_id, &bodies[0]).as_str())
    );
    let summary = harness.stop().await;
    assert_eq!(summary.events_stored, bodies.len() as u64);
    assert_eq!(summary.dead_letters, 0);
    harness.cleanup().await;
}

async fn a_message_published_twice_is_stored_once(dialect: TestDialect) {
    let mut harness = Harness::new(TestStore::of(dialect).await).await;
    harness.start().await;
    let bodies = rasa_conversation("twice", 2);
    // Rasa re-sends the same body with a new message_id when a publish fails: same content, same event.
    harness.publish_like_rasa(&bodies).await;
    harness.publish_like_rasa(&bodies).await;
    harness.wait_for_events(bodies.len() as i64).await;
    let metrics = harness.metrics();
    let expected_duplicates = bodies.len() as u64;
    colloquy_testkit::wait_until("duplicates counted", support::STORE_TIMEOUT, || {
        let metrics = metrics.clone();
        async move { metrics.duplicates_skipped() == expected_duplicates }
    })
    .await;
    assert_stored_exactly(&harness.rows().await, &bodies);
    harness.cleanup().await;
}

async fn events_from_our_broker_keep_their_ids(dialect: TestDialect) {
    let mut harness = Harness::new(TestStore::of(dialect).await).await;
    harness.start().await;
    let bodies = rasa_conversation("ours", 4);
    let mut tracker = Tracker::new("ours");
    for body in &bodies {
        tracker.apply(Envelope::from_json(body).unwrap().event);
    }
    let stamped = tracker.stamped_since_last_save();
    let ids: Vec<String> = stamped.iter().map(|event| event.id.to_string()).collect();
    let broker = AmqpBroker::connect(harness.amqp_config())
        .await
        .expect("connecting our broker");
    broker.publish_batch(stamped.clone()).await.unwrap();
    // The same events again, as a retry after a lost confirm would send them.
    broker.publish_batch(stamped).await.unwrap();
    broker.close().await.unwrap();
    harness.wait_for_events(bodies.len() as i64).await;
    let rows = harness.rows().await;
    assert_stored_exactly(&rows, &bodies);
    let stored_ids: Vec<String> = rows
        .iter()
        .map(|row| row.event_id.clone().unwrap())
        .collect();
    assert_eq!(stored_ids, ids);
    harness.cleanup().await;
}

async fn unknown_event_types_and_keys_are_stored_like_any_other(dialect: TestDialect) {
    let mut harness = Harness::new(TestStore::of(dialect).await).await;
    harness.start().await;
    let bodies: Vec<Vec<u8>> = [
        r#"{"sender_id": "pro", "user_id": "u1", "event": "flow_started", "timestamp": 1700000000.5, "metadata": {"rasa_environment": "prod"}, "flow_id": "transfer_money"}"#,
        r#"{"sender_id": "pro", "event": "stack", "timestamp": 1700000000.5, "update": "[{\"op\": \"add\"}]"}"#,
        r#"{"sender_id": "pro", "event": "slot", "timestamp": 1700000001.0, "name": "amount", "value": {"currency": "EUR", "value": 10}, "future_key": [1, 2.5, null]}"#,
    ]
    .iter()
    .map(|body| body.as_bytes().to_vec())
    .collect();
    harness.publish_like_rasa(&bodies).await;
    harness.wait_for_events(3).await;
    let rows = harness.rows().await;
    assert_eq!(rows[0].type_name, "flow_started");
    assert_eq!(rows[1].type_name, "stack");
    assert_eq!(rows[2].action_name.as_deref(), Some("amount"));
    for (row, body) in rows.iter().zip(&bodies) {
        let mut expected: serde_json::Value = serde_json::from_slice(body).unwrap();
        expected.as_object_mut().unwrap().shift_remove("sender_id");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&row.data).unwrap(),
            expected
        );
    }
    harness.cleanup().await;
}

on_every_dialect!(
    rasa_published_conversations_are_stored_once_in_order,
    a_message_published_twice_is_stored_once,
    events_from_our_broker_keep_their_ids,
    unknown_event_types_and_keys_are_stored_like_any_other,
);

/// Multi-megabyte events with a small byte bound: RabbitMQ's window is sized to them, so the subscription
/// never holds more than the bound unacknowledged (it held every message at once before), and every event is
/// stored, in order.
#[tokio::test]
async fn large_events_are_held_within_the_byte_bound_and_all_stored() {
    const BODY: usize = 3_000_000;
    const EVENTS: usize = 12;
    const BOUND: usize = 10 << 20;
    let mut harness = Harness::new(TestStore::postgres().await).await;
    harness.options.max_body_bytes = 4 << 20;
    harness.options.max_inflight_bytes = BOUND;
    harness.start().await;
    let bodies: Vec<Vec<u8>> = (0..EVENTS)
        .map(|n| {
            let text = "x".repeat(BODY);
            format!(
                r#"{{"sender_id": "big", "event": "user", "timestamp": {n}.5, "text": "{text}"}}"#
            )
            .into_bytes()
        })
        .collect();
    harness.publish_like_rasa(&bodies).await;
    harness.wait_for_events(EVENTS as i64).await;
    let unacked = harness.unacked.clone().expect("started");
    assert!(
        unacked.peak() <= BOUND && unacked.peak() >= BODY,
        "held at most the bound: peak {} bytes",
        unacked.peak()
    );
    let rows = harness.rows().await;
    let timestamps: Vec<Option<f64>> = rows.iter().map(|row| row.timestamp).collect();
    let expected: Vec<Option<f64>> = (0..EVENTS).map(|n| Some(n as f64 + 0.5)).collect();
    assert_eq!(timestamps, expected, "every event, in order");
    let summary = harness.stop().await;
    assert_eq!(summary.events_stored, EVENTS as u64);
    harness.cleanup().await;
}
