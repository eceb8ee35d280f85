//! [`InProcessBroker`] and [`InProcessSubscription`]: a bounded Tokio channel with the same message bodies and
//! properties as the AMQP broker, for tests and for embedding (no RabbitMQ needed).

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use colloquy_events::StampedEnvelope;
use tokio::sync::mpsc;

use crate::delivery::{Acker, Delivery};
use crate::error::{Error, Result};
use crate::properties::MessageProperties;
use crate::{EventBroker, Subscription};

/// The `source` of in-process deliveries.
pub const IN_PROCESS_SOURCE: &str = "in-process";

struct Message {
    body: Vec<u8>,
    properties: MessageProperties,
}

/// What the subscription's deliveries became (for assertions in tests).
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    delivered: u64,
    unsettled: BTreeSet<u64>,
    acked: u64,
    rejected: u64,
}

impl Ledger {
    pub(crate) fn ack(&mut self, tag: u64, multiple: bool) {
        let covered: Vec<u64> = if multiple {
            self.unsettled.range(..=tag).copied().collect()
        } else {
            self.unsettled
                .contains(&tag)
                .then_some(tag)
                .into_iter()
                .collect()
        };
        for tag in covered {
            self.unsettled.remove(&tag);
            self.acked += 1;
        }
    }

    pub(crate) fn reject(&mut self, tag: u64) {
        if self.unsettled.remove(&tag) {
            self.rejected += 1;
        }
    }
}

/// Counts of an [`InProcessSubscription`]'s deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckCounts {
    /// Delivered so far.
    pub delivered: u64,
    /// Acked (singly or by a multiple-ack).
    pub acked: u64,
    /// Rejected.
    pub rejected: u64,
    /// Delivered and neither acked nor rejected.
    pub unsettled: u64,
}

/// The publish side of the in-process transport. Handing over waits while the channel is full (or fails at
/// once when made with `fail_when_full`); an event is "confirmed" once it is in the channel.
#[derive(Debug)]
pub struct InProcessBroker {
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    capacity: NonZeroUsize,
    fail_when_full: bool,
    app_id: Option<String>,
}

/// The consuming side of the in-process transport.
#[derive(Debug)]
pub struct InProcessSubscription {
    receiver: mpsc::Receiver<Message>,
    ledger: Arc<Mutex<Ledger>>,
}

/// A connected in-process broker and subscription with room for `capacity` events.
pub fn in_process(capacity: NonZeroUsize) -> (InProcessBroker, InProcessSubscription) {
    let (sender, receiver) = mpsc::channel(capacity.get());
    (
        InProcessBroker {
            sender: Mutex::new(Some(sender)),
            capacity,
            fail_when_full: false,
            app_id: None,
        },
        InProcessSubscription {
            receiver,
            ledger: Arc::default(),
        },
    )
}

impl InProcessBroker {
    /// Fails at once with [`Error::BufferFull`] instead of waiting when the channel is full.
    pub fn with_fail_when_full(mut self, fail: bool) -> Self {
        self.fail_when_full = fail;
        self
    }

    /// Sets the `app_id` property of the messages.
    pub fn with_app_id(mut self, app_id: Option<&str>) -> Self {
        self.app_id = app_id.map(str::to_owned);
        self
    }

    /// Hands a raw body over with the given properties.
    pub async fn publish_raw(&self, body: Vec<u8>, properties: &MessageProperties) -> Result<()> {
        self.hand_over(vec![Message {
            body,
            properties: properties.clone(),
        }])
        .await
    }

    fn message(&self, event: &StampedEnvelope) -> Message {
        Message {
            body: event.envelope.to_rasa_json().into_bytes(),
            properties: MessageProperties::for_event(event, self.app_id.as_deref()),
        }
    }

    async fn hand_over(&self, messages: Vec<Message>) -> Result<()> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)?;
        if self.fail_when_full && sender.capacity() < messages.len() {
            return Err(Error::BufferFull {
                capacity: self.capacity.get(),
                rejected: messages.len(),
            });
        }
        for message in messages {
            sender.send(message).await.map_err(|_| Error::Closed)?;
        }
        Ok(())
    }
}

#[async_trait]
impl EventBroker for InProcessBroker {
    async fn publish(&self, event: StampedEnvelope) -> Result<()> {
        let message = self.message(&event);
        self.hand_over(vec![message]).await
    }

    async fn publish_batch(&self, events: Vec<StampedEnvelope>) -> Result<()> {
        let messages = events.iter().map(|e| self.message(e)).collect();
        self.hand_over(messages).await
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(())
    }

    fn is_ready(&self) -> bool {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| !s.is_closed())
    }
}

impl InProcessSubscription {
    /// What became of the deliveries so far.
    pub fn ack_counts(&self) -> AckCounts {
        let ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
        AckCounts {
            delivered: ledger.delivered,
            acked: ledger.acked,
            rejected: ledger.rejected,
            unsettled: ledger.unsettled.len() as u64,
        }
    }
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        let Some(message) = self.receiver.recv().await else {
            return Ok(None);
        };
        let tag = {
            let mut ledger = self.ledger.lock().unwrap_or_else(PoisonError::into_inner);
            ledger.delivered += 1;
            let tag = ledger.delivered;
            ledger.unsettled.insert(tag);
            tag
        };
        Ok(Some(Delivery {
            body: message.body,
            properties: message.properties,
            redelivered: false,
            source: IN_PROCESS_SOURCE.to_owned(),
            acker: Acker::in_process(self.ledger.clone(), tag),
        }))
    }

    async fn cancel(&mut self) -> Result<()> {
        self.receiver.close();
        Ok(())
    }

    fn is_ready(&self) -> bool {
        !self.receiver.is_closed()
    }
}
