//! Shared test support: Rasa-shaped events and a recording broker.
#![allow(dead_code, missing_docs)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use colloquy_broker::EventBroker;
use colloquy_events::{Event, StampedEnvelope};
use serde_json::json;

pub mod conformance;

/// One Rasa event from its JSON.
pub fn event(value: serde_json::Value) -> Event {
    Event::from_value(value).expect("a valid event")
}

/// The events Rasa logs when a session starts at time `t`: `action_session_start` (logged after the action
/// ran, so with a later timestamp than the events it returned), `session_started`, then `action_listen`.
pub fn session_start(t: f64) -> Vec<Event> {
    vec![
        event(
            json!({"event": "action", "timestamp": t + 0.001, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}),
        ),
        event(json!({"event": "session_started", "timestamp": t})),
        event(
            json!({"event": "action", "timestamp": t + 0.002, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}),
        ),
    ]
}

/// One user turn at time `t`: user message, a slot, the bot's answer, back to listening.
pub fn turn(t: f64, n: usize) -> Vec<Event> {
    vec![
        event(
            json!({"event": "user", "timestamp": t, "metadata": {"source": "web"}, "text": format!("message {n}"), "parse_data": {"intent": {"name": "greet", "confidence": 0.94}, "entities": [], "text": format!("message {n}"), "message_id": format!("m{n}"), "metadata": {}}, "input_channel": "rest", "message_id": format!("m{n}")}),
        ),
        event(json!({"event": "slot", "timestamp": t + 0.01, "name": "counter", "value": n})),
        event(
            json!({"event": "bot", "timestamp": t + 0.02, "text": format!("answer {n}"), "data": {}, "metadata": {}}),
        ),
        event(
            json!({"event": "action", "timestamp": t + 0.03, "name": "action_listen", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": false}),
        ),
    ]
}

/// A broker that records what it is given.
#[derive(Default)]
pub struct RecordingBroker {
    pub published: Mutex<Vec<StampedEnvelope>>,
    pub flushes: Mutex<usize>,
}

impl RecordingBroker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn published(&self) -> Vec<StampedEnvelope> {
        self.published.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.published.lock().unwrap().len()
    }
    /// The published events of one conversation, by position, duplicates (same id) removed.
    pub fn positions_of(&self, sender_id: &str) -> Vec<u64> {
        let mut seen = std::collections::HashSet::new();
        self.published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.envelope.sender_id == sender_id)
            .filter(|e| seen.insert(e.id.clone()))
            .map(|e| e.seq.expect("a tracked event"))
            .collect()
    }
}

#[async_trait]
impl EventBroker for RecordingBroker {
    async fn publish(&self, event: StampedEnvelope) -> colloquy_broker::Result<()> {
        self.published.lock().unwrap().push(event);
        Ok(())
    }
    async fn publish_batch(&self, events: Vec<StampedEnvelope>) -> colloquy_broker::Result<()> {
        self.published.lock().unwrap().extend(events);
        Ok(())
    }
    async fn flush(&self) -> colloquy_broker::Result<()> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }
    async fn close(&self) -> colloquy_broker::Result<()> {
        Ok(())
    }
    fn is_ready(&self) -> bool {
        true
    }
}

/// A broker that takes events but never confirms them (`flush` never returns): a process stuck between
/// commit and confirm.
#[derive(Default)]
pub struct NeverConfirmingBroker;

#[async_trait]
impl EventBroker for NeverConfirmingBroker {
    async fn publish(&self, _event: StampedEnvelope) -> colloquy_broker::Result<()> {
        Ok(())
    }
    async fn publish_batch(&self, _events: Vec<StampedEnvelope>) -> colloquy_broker::Result<()> {
        Ok(())
    }
    async fn flush(&self) -> colloquy_broker::Result<()> {
        std::future::pending().await
    }
    async fn close(&self) -> colloquy_broker::Result<()> {
        Ok(())
    }
    fn is_ready(&self) -> bool {
        true
    }
}
