//! The tracker stores' integration-test helpers (feature `tracker-store`): Rasa-shaped events, a recording
//! broker, the conformance suite every store passes, Redis key prefixes and a private `redis-server`.
#![allow(missing_docs)]

use std::sync::{Arc, Mutex};

use std::num::NonZeroUsize;

use async_trait::async_trait;
use colloquy_broker::{AmqpBroker, AmqpConfig, AmqpSubscription, EventBroker, Subscription};
use colloquy_events::{Envelope, Event, EventId, StampedEnvelope};
use serde_json::json;

pub mod conformance;
pub mod redis;

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

/// What a subscription received, decoded back into stamped envelopes (id and position from the message
/// properties), in delivery order.
#[derive(Default)]
pub struct Recorder {
    pub published: Mutex<Vec<StampedEnvelope>>,
}

impl Recorder {
    pub fn published(&self) -> Vec<StampedEnvelope> {
        self.published.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.published.lock().unwrap().len()
    }
    /// The received events of one conversation, by position, duplicates (same id) removed.
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

    /// Records every delivery of `subscription` (acking it) until the subscription ends.
    pub fn record(subscription: impl Subscription + 'static) -> Arc<Self> {
        Self::record_with_handle(subscription).0
    }

    /// [`Recorder::record`], with the handle that stops the recording (and drops the subscription).
    fn record_with_handle(
        subscription: impl Subscription + 'static,
    ) -> (Arc<Self>, tokio::task::AbortHandle) {
        let recorder = Arc::new(Self::default());
        let sink = recorder.clone();
        let mut subscription = subscription;
        let recording = tokio::spawn(async move {
            while let Ok(Some(delivery)) = subscription.next().await {
                let envelope = Envelope::from_json(&delivery.body).expect("a valid body");
                let stamped = StampedEnvelope {
                    envelope,
                    id: EventId::from(
                        delivery
                            .properties
                            .event_id()
                            .expect("an event id")
                            .to_owned(),
                    ),
                    seq: delivery.properties.seq(),
                };
                sink.published.lock().unwrap().push(stamped);
                delivery.acker.ack().await.expect("ack");
            }
        });
        (recorder, recording.abort_handle())
    }
}

/// The real in-process broker, with a recorder on its subscription.
pub fn in_process_broker() -> (Arc<dyn EventBroker>, Arc<Recorder>) {
    let (broker, subscription) = colloquy_broker::in_process(NonZeroUsize::new(1024).unwrap());
    (Arc::new(broker), Recorder::record(subscription))
}

/// The queue and exchange of [`amqp_broker`]. Dropped (at the test's end, also when it fails), it stops the
/// recorder first — a live subscription would declare its queue again after the deletion — then deletes both.
pub struct TestQueue {
    recording: tokio::task::AbortHandle,
    _topology: crate::broker::TopologyGuard,
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        self.recording.abort();
    }
}

/// The real RabbitMQ broker on a queue and exchange of their own, with a recorder on the queue; both go when
/// the returned [`TestQueue`] is dropped.
pub async fn amqp_broker() -> (Arc<AmqpBroker>, Arc<Recorder>, TestQueue) {
    let url = crate::amqp_url().await;
    let topology = crate::broker::TopologyGuard {
        exchange: crate::unique_name("tracker-store-exchange"),
        queue: crate::unique_name("tracker-store-queue"),
    };
    let config = AmqpConfig::from_url(&url)
        .unwrap()
        .with_exchange(&topology.exchange)
        .unwrap()
        .with_queues([topology.queue.as_str()])
        .unwrap();
    let subscription = AmqpSubscription::connect(config.clone())
        .await
        .expect("subscribing");
    let broker = AmqpBroker::connect(config)
        .await
        .expect("connecting the broker");
    let (recorder, recording) = Recorder::record_with_handle(subscription);
    let queue = TestQueue {
        recording,
        _topology: topology,
    };
    (Arc::new(broker), recorder, queue)
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
