//! `colloquy-broker`: the [`EventBroker`] abstraction (the publish side), the [`Subscription`] abstraction (the
//! consuming side of the same transports), and their implementations:
//!
//! - [`AmqpBroker`] / [`AmqpSubscription`]: RabbitMQ through lapin, wire-compatible with Rasa's
//!   `PikaEventBroker` (same topology, same body bytes) and built so that no event is lost: publisher confirms
//!   through a bounded window, reconnects with capped exponential backoff, re-sending in the original order
//!   with the same ids, back-pressure instead of dropping.
//!   A Nack is re-sent after a backoff; a message nacked [5 times in a row, or for 60 s](Error::Rejected)
//!   makes `flush` fail naming the events (they are kept and still re-sent). Queues that exist are used as the
//!   operator declared them (classic or quorum, with their arguments); missing ones are declared as
//!   [`QueueType`] says. A subscription is its queues' only consumer; a second one waits as a standby
//!   ([`ConsumerRole`]) and takes over when the first goes away.
//! - [`FileBroker`]: Rasa's `FileEventBroker` format (one JSON body per line).
//! - [`InProcessBroker`] / [`InProcessSubscription`] ([`in_process`]): a bounded channel, for tests and
//!   embedding.
//!
//! # Why the broker reconnects itself
//! lapin can recover connections on its own, but its recovery replays a channel's state, not the publisher's
//! obligations: what matters here is that every event handed over and not confirmed goes out again, first, in
//! its original order and with its id, before anything newer; that a Nack is re-sent with a backoff; and that a
//! subscription never acknowledges a delivery of a dead channel on a new one. The publisher and subscription
//! tasks own that: on a lost connection they open a new one (capped exponential backoff with jitter, bounded
//! attempts before `flush` reports the events), re-declare the topology, and re-send or re-consume.
//!
//! # Invariants
//! - This crate knows nothing about SQL or the tracker store: it moves bodies and properties.
//! - It never reads the process environment or configuration files itself: the caller passes a URL and
//!   typed settings ([`AmqpConfig`]); Rasa's `endpoints.yml` is read by `colloquy-tracker-store`'s `Endpoints`
//!   (feature `endpoints-yaml`), which builds an `AmqpConfig` from its `event_broker` section.
//! - No transport type (lapin) appears in the traits.
//!
//! # Where to start
//! Publishing: build an [`AmqpConfig`] ([`AmqpConfig::from_url`], then `with_exchange`, `with_queues`, ...),
//! [`AmqpBroker::connect`], and hand it to a tracker store as `Arc<dyn EventBroker>` (or call
//! [`EventBroker::publish`] yourself); [`EventBroker::close`] flushes. Consuming: [`AmqpSubscription::connect`]
//! with the same config, then [`Subscription::next`] (or [`Subscription::next_within`] to stop once a queue
//! is drained) and ack each [`Delivery`]. The crate `colloquy-tracker-store` has the whole wiring as a program
//! that CI runs (`examples/wiring.rs`); the example below uses the in-process broker, which needs no server.
//!
//! # Example
//! ```
//! use std::num::NonZeroUsize;
//! use colloquy_broker::{EventBroker, Subscription, in_process};
//! use colloquy_events::{Envelope, StampedEnvelope};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (broker, mut subscription) = in_process(NonZeroUsize::new(16).unwrap());
//! let body = br#"{"sender_id": "default", "event": "slot", "timestamp": 1700000002.0, "name": "cuisine", "value": "indian"}"#;
//! let event = StampedEnvelope::unsequenced(Envelope::from_json(body)?);
//! broker.publish(event.clone()).await?;
//! broker.flush().await?;
//!
//! let delivery = subscription.next().await?.expect("one delivery");
//! assert_eq!(delivery.body, event.envelope.to_rasa_json().into_bytes());
//! assert_eq!(delivery.properties.event_id(), Some(event.id.as_str()));
//! delivery.acker.ack().await?;
//! broker.close().await?;
//! assert!(subscription.next().await?.is_none());
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod delivery;
mod error;
mod file;
mod in_process;
mod properties;
mod publisher;
mod subscription;
mod topology;
pub mod window;

use async_trait::async_trait;
use colloquy_events::StampedEnvelope;

pub use config::{
    AmqpConfig, AmqpName, DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_URL, QueueType, TlsFiles,
};
pub use delivery::{AckOutcome, Acker, Delivery};
pub use error::{Error, Result};
pub use file::{DEFAULT_EVENT_LOG, FileBroker};
pub use in_process::{
    AckCounts, IN_PROCESS_SOURCE, InProcessBroker, InProcessSubscription, in_process,
};
pub use properties::{
    EVENT_ID_HEADER, HeaderValue, JSON_CONTENT_TYPE, MessageProperties, PERSISTENT, SEQ_HEADER,
};
pub use publisher::AmqpBroker;
pub use subscription::{AmqpSubscription, STANDBY_RETRY};
pub use window::UnackedBytes;

use std::time::Duration;

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

/// Whether a subscription is the one taking deliveries from its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerRole {
    /// It consumes.
    Active,
    /// Another consumer holds the queue: this one waits, ready to take over when that one goes away.
    Standby,
}

impl ConsumerRole {
    /// `active` or `standby`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Standby => "standby",
        }
    }
}

/// What [`Subscription::next_within`] found.
// Moved once per delivery, as `next`'s `Option<Delivery>` is: boxing would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    /// A delivery.
    Delivery(Delivery),
    /// Nothing arrived within the time given: the queue is drained for now (or a standby waits).
    Idle,
    /// The subscription was cancelled and its buffered deliveries are drained: nothing more will come.
    Ended,
}

/// The consuming side of a transport: a stream of deliveries that survives reconnects.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, waiting for one. Cancel-safe: dropping the future loses nothing.
    /// `Ok(None)` once the subscription was cancelled and its buffered deliveries are drained.
    async fn next(&mut self) -> Result<Option<Delivery>>;
    /// The next delivery if one arrives within `wait`, else [`Next::Idle`]: how a program that drains a queue
    /// learns that it has (nothing came for `wait`), and stops. Loses nothing on `Idle` ([`Subscription::next`]
    /// is cancel-safe).
    ///
    /// ```
    /// # use std::num::NonZeroUsize;
    /// # use std::time::Duration;
    /// # use colloquy_broker::{EventBroker, Next, Subscription, in_process};
    /// # use colloquy_events::{Envelope, StampedEnvelope};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (broker, mut subscription) = in_process(NonZeroUsize::new(16).unwrap());
    /// # let body = br#"{"sender_id": "a", "event": "restart", "timestamp": 1.0}"#;
    /// # broker.publish(StampedEnvelope::unsequenced(Envelope::from_json(body)?)).await?;
    /// let mut drained = 0;
    /// while let Next::Delivery(delivery) = subscription.next_within(Duration::from_millis(200)).await? {
    ///     delivery.acker.ack().await?;
    ///     drained += 1;
    /// }
    /// assert_eq!(drained, 1);
    /// # Ok(())
    /// # }
    /// ```
    async fn next_within(&mut self, wait: Duration) -> Result<Next> {
        match tokio::time::timeout(wait, self.next()).await {
            Ok(Ok(Some(delivery))) => Ok(Next::Delivery(delivery)),
            Ok(Ok(None)) => Ok(Next::Ended),
            Ok(Err(error)) => Err(error),
            Err(_) => Ok(Next::Idle),
        }
    }
    /// Stops taking new deliveries (graceful shutdown); deliveries already received can still be acked.
    async fn cancel(&mut self) -> Result<()>;
    /// Whether it is connected now.
    fn is_ready(&self) -> bool;
    /// Whether it consumes, or waits as a standby while another consumer holds the queue. Transports without
    /// exclusive consumers are always [`ConsumerRole::Active`].
    fn role(&self) -> ConsumerRole {
        ConsumerRole::Active
    }
}
