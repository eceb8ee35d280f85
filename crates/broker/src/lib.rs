//! PROVISIONAL API SKELETON — the broker helper fills in the implementations; the public items below are the
//! contract the other crates code against (they may gain items, not lose or change these).
//!
//! `colloquy-broker`: the `EventBroker` abstraction (publish side), the consuming side of the same transports,
//! and their implementations: AMQP (RabbitMQ, Rasa's `PikaEventBroker` wire format), file, in-process.
//! Knows nothing about SQL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use colloquy_events::StampedEnvelope;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The publish side of a broker. Object-safe: use it as `Arc<dyn EventBroker>`.
#[async_trait]
pub trait EventBroker: Send + Sync {
    /// Hands one event over. Resolves once the broker has taken it into its bounded buffer (back-pressure when
    /// full, or an error if so configured); [`EventBroker::flush`] waits for the confirm.
    async fn publish(&self, event: StampedEnvelope) -> Result<()>;
    /// Hands a conversation's new events over, in order.
    async fn publish_batch(&self, events: Vec<StampedEnvelope>) -> Result<()>;
    /// Resolves when everything handed over so far is confirmed by the broker, or fails saying what was not.
    async fn flush(&self) -> Result<()>;
    /// Flushes, then closes.
    async fn close(&self) -> Result<()>;
    /// Whether the broker is connected and not blocked by flow control.
    fn is_ready(&self) -> bool;
}

/// A message property value, as the consumer stores it (JSON) in `dead_letters.properties`.
pub type HeaderValue = serde_json::Value;

/// The properties of a received message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageProperties {
    /// `message_id`.
    pub message_id: Option<String>,
    /// `content_type`.
    pub content_type: Option<String>,
    /// `app_id`.
    pub app_id: Option<String>,
    /// `delivery_mode` (2 = persistent).
    pub delivery_mode: Option<u8>,
    /// `timestamp` (unix seconds).
    pub timestamp: Option<u64>,
    /// Headers, converted to JSON values.
    pub headers: BTreeMap<String, HeaderValue>,
}

impl MessageProperties {
    /// Header `colloquy-event-id`, when present and a string.
    pub fn event_id(&self) -> Option<&str> {
        self.headers.get("colloquy-event-id")?.as_str()
    }
    /// All properties as one JSON object (for `dead_letters.properties`).
    pub fn to_json(&self) -> serde_json::Value {
        todo!()
    }
}

/// What became of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The broker took the ack.
    Acked,
    /// The delivery came from a channel that has since closed: nothing was sent (acking it on a new channel
    /// would close that channel); the broker redelivers the message, so the consumer must be idempotent.
    Stale,
}

/// The handle that acknowledges one delivery. Cheap to clone; can be used from another task.
#[derive(Debug, Clone)]
pub struct Acker {
    _private: (),
}

impl Acker {
    /// Acknowledges this delivery only.
    pub async fn ack(&self) -> Result<AckOutcome> {
        todo!()
    }
    /// Acknowledges this delivery and every earlier unacknowledged one of the same channel (one multiple-ack).
    pub async fn ack_up_to(&self) -> Result<AckOutcome> {
        todo!()
    }
    /// Rejects this delivery without requeue (the broker dead-letters it if the queue has a DLX, else drops it).
    pub async fn reject(&self) -> Result<AckOutcome> {
        todo!()
    }
}

/// One received message.
#[derive(Debug)]
pub struct Delivery {
    /// The raw body.
    pub body: Vec<u8>,
    /// Its properties.
    pub properties: MessageProperties,
    /// Whether the broker delivered it before (to a consumer that did not ack it).
    pub redelivered: bool,
    /// Where it came from (the queue name), for `dead_letters.source`.
    pub source: String,
    /// Acknowledges it.
    pub acker: Acker,
}

/// The consuming side of a transport: a stream of deliveries that survives reconnects.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, waiting for one. Cancel-safe: dropping the future loses nothing.
    /// `Ok(None)` once the subscription was cancelled and its buffered deliveries are drained.
    async fn next(&mut self) -> Result<Option<Delivery>>;
    /// Stops taking new deliveries (graceful shutdown); deliveries already received can still be acked.
    async fn cancel(&mut self) -> Result<()>;
    /// Whether it is connected now.
    fn is_ready(&self) -> bool;
}
