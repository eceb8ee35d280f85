//! Rasa-shaped test data and a publisher that behaves exactly like Rasa's `PikaEventBroker`.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

/// Publishes bodies exactly as Rasa's `PikaEventBroker` does: to the fanout exchange (declared non-durable, as
/// Rasa declares it), routing key "", delivery mode 2, empty headers, a random message id per publish, no
/// content type; with publisher confirms. Panics when the broker refuses a message.
pub async fn publish_like_rasa(amqp_url: &str, exchange: &str, bodies: &[Vec<u8>]) {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .expect("connecting the Rasa-like publisher");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: false,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declaring the exchange as Rasa does");
    for chunk in bodies.chunks(1000) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for body in chunk {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(FieldTable::default())
                .with_message_id(uuid::Uuid::new_v4().simple().to_string().into());
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await
                .expect("publishing");
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(
                confirm.await.expect("confirm").is_ack(),
                "the broker refused a message"
            );
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Deletes a test's queue and exchange (best effort: they may be gone already).
pub async fn delete_topology(amqp_url: &str, exchange: &str, queue: &str) {
    if let Ok(connection) = Connection::connect(amqp_url, ConnectionProperties::default()).await {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
            let _ = channel
                .exchange_delete(exchange.into(), Default::default())
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}

/// A Rasa conversation as Rasa 3.6 publishes it: session start, user turns with NLU data, bot replies, slots.
/// Timestamps repeat within a turn, as Rasa's do. Bodies are byte-for-byte Rasa's `json.dumps` output.
pub fn rasa_conversation(sender_id: &str, turns: usize) -> Vec<Vec<u8>> {
    let sender = serde_json::to_string(sender_id).expect("sender id");
    let mut bodies = vec![
        format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": 1700000000.0, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}}"#
        ),
        format!(
            r#"{{"sender_id": {sender}, "event": "session_started", "timestamp": 1700000000.0, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}}}"#
        ),
        format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": 1700000000.0, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}}"#
        ),
    ];
    for turn in 0..turns {
        let t = 1700000001.25 + turn as f64;
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "user", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "text": "I want indian food \u00e9 \ud83c\udf5b {turn}", "parse_data": {{"intent": {{"name": "request_restaurant", "confidence": 0.9412345678901234}}, "entities": [{{"entity": "cuisine", "start": 7, "end": 13, "confidence_entity": 0.99, "value": "indian", "extractor": "DIETClassifier"}}], "text": "I want indian food \u00e9 \ud83c\udf5b {turn}", "message_id": "6f1b{turn}", "metadata": {{}}, "intent_ranking": [{{"name": "request_restaurant", "confidence": 0.9412345678901234}}, {{"name": "greet", "confidence": 0.05}}]}}, "input_channel": "rest", "message_id": "6f1b{turn}"}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "slot", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "cuisine", "value": "indian"}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "utter_ack", "policy": "TEDPolicy", "confidence": 0.98, "action_text": null, "hide_rule_turn": false}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "bot", "timestamp": {t:?}, "metadata": {{"utter_action": "utter_ack", "model_id": "m1", "assistant_id": "a1"}}, "text": "Sure, turn {turn}!", "data": {{"elements": null, "quick_replies": null, "buttons": null, "attachment": null, "image": null, "custom": null}}}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "action_listen", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": true}}"#
        ));
    }
    bodies.into_iter().map(String::into_bytes).collect()
}

/// Interleaves conversations the way concurrent conversations reach a queue: one event of each in turn.
pub fn interleave(conversations: Vec<Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    let longest = conversations.iter().map(Vec::len).max().unwrap_or(0);
    let mut bodies = Vec::new();
    for index in 0..longest {
        for conversation in &conversations {
            if let Some(body) = conversation.get(index) {
                bodies.push(body.clone());
            }
        }
    }
    bodies
}

/// The `data` column Rasa writes for a body: the body without its `"sender_id": ...` — leading, as Rasa's
/// broker publishes it, or trailing, as `rasa export` does.
pub fn data_of(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("UTF-8 body");
    if text.starts_with(r#"{"sender_id": "#) {
        let after_sender = text.find(r#", "event""#).expect("sender_id first");
        return format!("{{{}", &text[after_sender + 2..]);
    }
    let before_sender = text.rfind(r#", "sender_id": "#).expect("sender_id last");
    format!("{}}}", &text[..before_sender])
}
