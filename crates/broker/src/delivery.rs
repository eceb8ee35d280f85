//! What a subscription yields: [`Delivery`] and its [`Acker`], for every transport.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use lapin::options::{BasicAckOptions, BasicRejectOptions};

use crate::error::{Result, channel_error};
use crate::in_process::Ledger;
use crate::properties::MessageProperties;
use crate::window::ChannelHeld;

/// What became of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The broker took the ack (or the delivery was already covered by an earlier multiple-ack).
    Acked,
    /// The delivery came from a channel that has since closed: nothing was sent (acking it on a new channel
    /// would close that channel); the broker redelivers the message, so the consumer must be idempotent.
    Stale,
}

/// One AMQP channel as seen by its deliveries: acks go to this channel only, never to a later one.
pub(crate) struct ChannelGeneration {
    pub(crate) number: u64,
    pub(crate) channel: lapin::Channel,
    /// The highest delivery tag covered by a multiple-ack sent on this channel. Acking a covered tag again would
    /// make RabbitMQ close the channel (PRECONDITION_FAILED - unknown delivery tag), so such acks are not sent.
    acked_through: Mutex<u64>,
    /// The bodies delivered on this channel and not yet settled, counted against the subscription's byte window.
    pub(crate) held: ChannelHeld,
}

impl ChannelGeneration {
    pub(crate) fn new(number: u64, channel: lapin::Channel, held: ChannelHeld) -> Arc<Self> {
        Arc::new(Self {
            number,
            channel,
            acked_through: Mutex::new(0),
            held,
        })
    }

    fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    fn covered(&self, tag: u64) -> bool {
        tag <= *self
            .acked_through
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
enum AckerKind {
    Amqp {
        generation: Arc<ChannelGeneration>,
        tag: u64,
        acker: lapin::Acker,
    },
    InProcess {
        ledger: Arc<Mutex<Ledger>>,
        tag: u64,
    },
}

/// The handle that acknowledges one delivery. Cheap to clone; can be used from another task.
#[derive(Clone)]
pub struct Acker {
    kind: AckerKind,
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AckerKind::Amqp {
                generation, tag, ..
            } => f
                .debug_struct("Acker")
                .field("channel_generation", &generation.number)
                .field("delivery_tag", tag)
                .finish(),
            AckerKind::InProcess { tag, .. } => f
                .debug_struct("Acker")
                .field("in_process_tag", tag)
                .finish(),
        }
    }
}

#[derive(Clone, Copy)]
enum Settle {
    Ack,
    AckUpTo,
    Reject,
}

impl Acker {
    pub(crate) fn amqp(generation: Arc<ChannelGeneration>, tag: u64, acker: lapin::Acker) -> Self {
        Self {
            kind: AckerKind::Amqp {
                generation,
                tag,
                acker,
            },
        }
    }

    pub(crate) fn in_process(ledger: Arc<Mutex<Ledger>>, tag: u64) -> Self {
        Self {
            kind: AckerKind::InProcess { ledger, tag },
        }
    }

    /// Acknowledges this delivery only.
    pub async fn ack(&self) -> Result<AckOutcome> {
        self.settle(Settle::Ack).await
    }

    /// Acknowledges this delivery and every earlier unacknowledged one of the same channel (one multiple-ack).
    /// Later acks of the deliveries it covered are not sent again (that would close the channel).
    pub async fn ack_up_to(&self) -> Result<AckOutcome> {
        self.settle(Settle::AckUpTo).await
    }

    /// Rejects this delivery without requeue (the broker dead-letters it if the queue has a DLX, else drops it).
    /// A delivery already covered by a multiple-ack stays acked (`Acked`).
    pub async fn reject(&self) -> Result<AckOutcome> {
        self.settle(Settle::Reject).await
    }

    async fn settle(&self, how: Settle) -> Result<AckOutcome> {
        match &self.kind {
            AckerKind::InProcess { ledger, tag } => {
                let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                match how {
                    Settle::Ack => ledger.ack(*tag, false),
                    Settle::AckUpTo => ledger.ack(*tag, true),
                    Settle::Reject => ledger.reject(*tag),
                }
                Ok(AckOutcome::Acked)
            }
            AckerKind::Amqp {
                generation,
                tag,
                acker,
            } => {
                // No longer counted against the byte window from here on, whatever RabbitMQ answers: a settle
                // that fails, or finds the channel closed, gives the delivery up with its channel (RabbitMQ
                // redelivers it), and a subscription waiting for room must not wait for it.
                match how {
                    Settle::Ack | Settle::Reject => generation.held.release(*tag),
                    Settle::AckUpTo => generation.held.release_through(*tag),
                }
                if !generation.is_open() || acker.poisoned() {
                    return Ok(AckOutcome::Stale);
                }
                let sent = match how {
                    Settle::Ack | Settle::Reject if generation.covered(*tag) => {
                        return Ok(AckOutcome::Acked);
                    }
                    Settle::Ack => acker.ack(BasicAckOptions { multiple: false }).await,
                    Settle::AckUpTo => {
                        {
                            let mut through = generation
                                .acked_through
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner);
                            if *tag <= *through {
                                return Ok(AckOutcome::Acked);
                            }
                            // Recorded before sending so that a concurrent single ack of a covered tag is not sent.
                            *through = *tag;
                        }
                        acker.ack(BasicAckOptions { multiple: true }).await
                    }
                    Settle::Reject => acker.reject(BasicRejectOptions { requeue: false }).await,
                };
                match sent {
                    // `false`: the handle was used before (settled already), or its channel failed meanwhile.
                    Ok(false) if acker.poisoned() || !generation.is_open() => Ok(AckOutcome::Stale),
                    Ok(_) => Ok(AckOutcome::Acked),
                    Err(_) if acker.poisoned() || !generation.is_open() => Ok(AckOutcome::Stale),
                    Err(e) => Err(channel_error("acknowledging a delivery", e)),
                }
            }
        }
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
