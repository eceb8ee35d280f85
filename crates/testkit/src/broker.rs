//! The broker's integration-test helpers (feature `broker`): per-test names, Rasa-shaped events, draining and
//! checking a queue, and closing only this test's connections.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use colloquy_broker::{AmqpConfig, AmqpSubscription, Delivery, Subscription};
use colloquy_events::{Envelope, EventId, StampedEnvelope};
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

/// One Rasa-shaped body per event type (Rasa 3.6), `{sender}` replaced by the conversation id.
pub const EVERY_EVENT_TYPE: &[&str] = &[
    r#"{"sender_id": "{sender}", "event": "action", "timestamp": 1700000000.0, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}"#,
    r#"{"sender_id": "{sender}", "event": "session_started", "timestamp": 1700000000.25, "metadata": {"model_id": "m1", "assistant_id": "a1"}}"#,
    r#"{"sender_id": "{sender}", "event": "user", "timestamp": 1700000000.75, "metadata": {"source": "web"}, "text": "I want indian food \u00e9\ud83d\ude00", "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.94}, "entities": [{"entity": "cuisine", "value": "indian", "start": 7, "end": 13}], "text": "I want indian food", "message_id": "6f1b", "metadata": {"source": "web"}}, "input_channel": "rest", "message_id": "6f1b"}"#,
    r#"{"sender_id": "{sender}", "event": "bot", "timestamp": 1700000002.625, "text": "Hey there!", "data": {"elements": null, "quick_replies": null, "buttons": [{"title": "yes", "payload": "/affirm"}], "attachment": null, "image": null, "custom": null}, "metadata": {"utter_action": "utter_greet"}}"#,
    r#"{"sender_id": "{sender}", "event": "slot", "timestamp": 1700000002.0, "name": "cuisine", "value": "indian"}"#,
    r#"{"sender_id": "{sender}", "event": "reset_slots", "timestamp": 1700000003.0}"#,
    r#"{"sender_id": "{sender}", "event": "restart", "timestamp": 1700000004.0}"#,
    r#"{"sender_id": "{sender}", "event": "rewind", "timestamp": 1700000005.0}"#,
    r#"{"sender_id": "{sender}", "event": "undo", "timestamp": 1700000006.0}"#,
    r#"{"sender_id": "{sender}", "event": "followup", "timestamp": 1700000007.0, "name": "action_listen"}"#,
    r#"{"sender_id": "{sender}", "event": "pause", "timestamp": 1700000008.0}"#,
    r#"{"sender_id": "{sender}", "event": "resume", "timestamp": 1700000009.0}"#,
    r#"{"sender_id": "{sender}", "event": "reminder", "timestamp": 1700000010.0, "intent": "remind", "date_time": "2024-01-01T10:00:00+00:00", "entities": null, "name": "r1", "kill_on_user_msg": true}"#,
    r#"{"sender_id": "{sender}", "event": "cancel_reminder", "timestamp": 1700000011.0}"#,
    r#"{"sender_id": "{sender}", "event": "export", "timestamp": 1700000012.0}"#,
    r#"{"sender_id": "{sender}", "event": "agent", "timestamp": 1700000013.0, "text": "hi", "data": {"k": [1, 2]}}"#,
    r#"{"sender_id": "{sender}", "event": "active_loop", "timestamp": 1700000014.0, "name": "restaurant_form"}"#,
    r#"{"sender_id": "{sender}", "event": "loop_interrupted", "timestamp": 1700000015.0, "is_interrupted": true}"#,
    r#"{"sender_id": "{sender}", "event": "action_execution_rejected", "timestamp": 1700000016.0, "name": "action_x", "policy": null, "confidence": null}"#,
    r#"{"sender_id": "{sender}", "event": "user_featurization", "timestamp": 1700000017.0, "use_text_for_featurization": false}"#,
    r#"{"sender_id": "{sender}", "event": "entities", "timestamp": 1700000018.0, "entities": [{"entity": "city", "value": "Berlin"}]}"#,
    r#"{"sender_id": "{sender}", "event": "form", "timestamp": 1700000019.0, "name": "legacy_form"}"#,
    r#"{"sender_id": "{sender}", "event": "form_validation", "timestamp": 1700000020.0, "validate": false}"#,
    r#"{"sender_id": "{sender}", "user_id": "u1", "event": "flow_started", "timestamp": 1700000021.0, "flow_id": "pro_only", "unknown_key": {"kept": true}}"#,
];

/// The event at position `seq` of conversation `sender`, from a Rasa-shaped body.
pub fn stamped(body: &str, sender: &str, seq: u64) -> StampedEnvelope {
    let body = body.replace("{sender}", sender);
    let envelope = Envelope::from_json(body.as_bytes()).expect("a valid Rasa body");
    let id = EventId::for_tracked(sender, seq, envelope.to_rasa_json().as_bytes());
    StampedEnvelope {
        envelope,
        id,
        seq: Some(seq),
    }
}

/// `count` events of about 500 bytes, spread round-robin over `conversations` conversations, each conversation
/// numbered from 0.
pub fn many_events(prefix: &str, count: usize, conversations: usize) -> Vec<StampedEnvelope> {
    let padding = "x".repeat(330);
    let mut next_seq = vec![0u64; conversations];
    (0..count)
        .map(|i| {
            let conversation = i % conversations;
            let seq = next_seq[conversation];
            next_seq[conversation] += 1;
            let sender = format!("{prefix}-{conversation}");
            let body = format!(
                r#"{{"sender_id": "{{sender}}", "event": "user", "timestamp": 1700000000.5, "text": "message {i} {padding}", "parse_data": {{"intent": {{"name": "greet", "confidence": 0.9}}, "entities": []}}, "input_channel": "rest", "message_id": "m{i}", "metadata": {{}}}}"#
            );
            stamped(&body, &sender, seq)
        })
        .collect()
}

/// Test settings: this test's exchange, queue and connection name, short connect timeout and backoff.
pub async fn config(exchange: &str, queue: &str, connection_name: &str) -> AmqpConfig {
    config_at(&crate::amqp_url().await, exchange, queue, connection_name)
}

/// [`config`] for the broker at `url` (a private node).
pub fn config_at(url: &str, exchange: &str, queue: &str, connection_name: &str) -> AmqpConfig {
    AmqpConfig::from_url(url)
        .unwrap()
        .with_exchange(exchange)
        .unwrap()
        .with_queues([queue])
        .unwrap()
        .with_connection_name(connection_name)
        .with_connect_timeout(Duration::from_secs(5))
        .unwrap()
        .with_retry_delays(Duration::from_millis(50), Duration::from_millis(500))
        .unwrap()
}

/// A plain lapin connection and channel (the "other client": Rasa, or a checker).
pub async fn raw_channel() -> (Connection, Channel) {
    let url = crate::amqp_url().await;
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("raw connection");
    let channel = connection.create_channel().await.expect("raw channel");
    (connection, channel)
}

/// How many messages are ready in `queue`.
pub async fn queue_len(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare")
        .message_count()
}

/// Deletes the test's queue and exchange.
pub async fn delete_topology(exchange: &str, queue: &str) {
    let (connection, channel) = raw_channel().await;
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    let _ = connection.close(200, "OK".into()).await;
}

/// Drains `queue` with our subscription until it stays empty for `idle` once at least `at_least` messages came,
/// acking in batches. Bounded by `timeout`.
pub async fn drain(
    mut config: AmqpConfig,
    at_least: usize,
    idle: Duration,
    timeout: Duration,
) -> Vec<Delivery> {
    config = config.with_connection_name(crate::unique_name("drain"));
    let mut subscription = AmqpSubscription::connect(config)
        .await
        .expect("subscription");
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(at_least);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let wait = if deliveries.len() >= at_least {
            idle
        } else {
            Duration::from_secs(5)
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out draining: {} of at least {at_least} messages",
            deliveries.len()
        );
        match tokio::time::timeout(wait, subscription.next()).await {
            Ok(Ok(Some(delivery))) => {
                if deliveries.len() % 500 == 499 {
                    delivery.acker.ack_up_to().await.unwrap();
                }
                deliveries.push(delivery);
            }
            Ok(Ok(None)) => panic!("subscription ended"),
            Ok(Err(error)) => panic!("subscription failed: {error}"),
            Err(_) if deliveries.len() >= at_least => break,
            Err(_) => {}
        }
    }
    if let Some(last) = deliveries.last() {
        last.acker.ack_up_to().await.unwrap();
    }
    subscription.cancel().await.unwrap();
    deliveries
}

/// Asserts that `deliveries` hold every event of `expected` (duplicates must share id and body) and that, within
/// each conversation, first occurrences come in `seq` order.
pub fn assert_every_event_once_in_order(expected: &[StampedEnvelope], deliveries: &[Delivery]) {
    let wanted: HashMap<&str, String> = expected
        .iter()
        .map(|e| (e.id.as_str(), e.envelope.to_rasa_json()))
        .collect();
    let mut seen = HashSet::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut duplicates = 0;
    for delivery in deliveries {
        let id = delivery.properties.event_id().expect("event id header");
        let body = std::str::from_utf8(&delivery.body).unwrap();
        assert_eq!(
            wanted.get(id).map(String::as_str),
            Some(body),
            "unexpected message {id}"
        );
        if !seen.insert(id.to_owned()) {
            duplicates += 1;
            continue;
        }
        let envelope = Envelope::from_json(&delivery.body).unwrap();
        let seq = delivery.properties.seq().expect("seq header");
        if let Some(previous) = last_seq.insert(envelope.sender_id.clone(), seq) {
            assert!(
                seq > previous,
                "conversation {} out of order: {seq} after {previous}",
                envelope.sender_id
            );
        }
    }
    assert_eq!(
        seen.len(),
        wanted.len(),
        "missing events ({duplicates} duplicates)"
    );
    eprintln!("{} events, {duplicates} duplicates", seen.len());
}

/// Closes the connections whose client properties contain `name` (only this test's), returning how many.
pub fn close_connections_named(name: &str) -> usize {
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .expect("running rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl list_connections failed"
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    let pids: Vec<String> = listing
        .lines()
        .filter(|line| line.contains(name))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    for pid in &pids {
        // The connection may be gone already; that is fine.
        let _ = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "colloquy test fault"])
            .output();
    }
    pids.len()
}

/// Deletes a test's queue and exchange when dropped, also when the test panicked.
pub struct TopologyGuard {
    /// The test's exchange.
    pub exchange: String,
    /// The test's queue.
    pub queue: String,
}

impl Drop for TopologyGuard {
    fn drop(&mut self) {
        let (exchange, queue) = (self.exchange.clone(), self.queue.clone());
        // Drop cannot await: a thread of its own with a runtime of its own (the test's may be shutting down).
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime")
                .block_on(async {
                    let (connection, channel) = raw_channel().await;
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                    let channel = connection.create_channel().await.expect("channel");
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                    let _ = connection.close(200, "OK".into()).await;
                });
        })
        .join();
    }
}

/// Declares `queue` the way an operator would, with `arguments` (e.g. `x-queue-type: quorum`).
pub async fn declare_queue_as_operator(queue: &str, arguments: &[(&str, lapin::types::AMQPValue)]) {
    let (connection, channel) = raw_channel().await;
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        table.insert((*key).into(), value.clone());
    }
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            table,
        )
        .await
        .expect("declaring the operator's queue");
    let _ = connection.close(200, "OK".into()).await;
}

/// The type RabbitMQ reports for `queue` (`classic`, `quorum`).
pub fn queue_type(queue: &str) -> String {
    let output = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name", "type"])
        .output()
        .expect("running rabbitmqctl");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(queue)).then(|| fields.next().unwrap_or_default().to_owned())
        })
        .unwrap_or_default()
}
