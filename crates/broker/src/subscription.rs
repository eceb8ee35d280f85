//! [`AmqpSubscription`]: consumes one or more queues with a prefetch, survives reconnects, and hands deliveries
//! over through a bounded channel fed by a task (so that [`Subscription::next`] is cancel-safe).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, select_all};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::Subscription;
use crate::config::AmqpConfig;
use crate::connection;
use crate::delivery::{Acker, ChannelGeneration, Delivery};
use crate::error::{Error, Result, channel_error};
use crate::properties::MessageProperties;

type CancelRequest = oneshot::Sender<Result<()>>;

struct Session {
    connection: Connection,
    channel: Channel,
    consumers: Vec<(Arc<str>, lapin::Consumer)>,
}

/// The AMQP consuming side: declares the same topology as the publisher (so a consumer can start before any
/// producer), sets the prefetch, consumes every configured queue, and reconnects with backoff after a connection
/// loss. Deliveries of a dead channel are never acked on a new one ([`crate::AckOutcome::Stale`]); RabbitMQ
/// redelivers them.
pub struct AmqpSubscription {
    deliveries: mpsc::Receiver<Delivery>,
    ready: Arc<AtomicBool>,
    cancel: Option<mpsc::Sender<CancelRequest>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for AmqpSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSubscription")
            .field("ready", &self.is_ready())
            .field("buffered", &self.deliveries.len())
            .finish_non_exhaustive()
    }
}

impl Drop for AmqpSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AmqpSubscription {
    /// Connects (up to the configured number of attempts, with backoff), declares the topology, sets the
    /// prefetch and starts consuming. Fails with a clear error on bad credentials or an incompatible topology.
    /// Must be called within a Tokio runtime.
    pub async fn connect(config: AmqpConfig) -> Result<Self> {
        let (connection, channel) =
            connection::open_channel_with_retries(&config, "subscriber").await?;
        let session = start_consuming(&config, connection, channel).await?;
        let prefetch = usize::from(config.prefetch().get());
        let (sender, deliveries) = mpsc::channel(prefetch);
        let (cancel, cancel_requests) = mpsc::channel(1);
        let ready = Arc::new(AtomicBool::new(true));
        let task = SubscriptionTask {
            config,
            deliveries: sender,
            ready: ready.clone(),
            cancel_requests,
            generation: 0,
        };
        let task = tokio::spawn(task.run(session));
        Ok(Self {
            deliveries,
            ready,
            cancel: Some(cancel),
            task,
        })
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        Ok(self.deliveries.recv().await)
    }

    async fn cancel(&mut self) -> Result<()> {
        let Some(cancel) = self.cancel.take() else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        if cancel.send(reply).await.is_err() {
            return Ok(());
        }
        answer.await.unwrap_or(Ok(()))
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

async fn start_consuming(
    config: &AmqpConfig,
    connection: Connection,
    channel: Channel,
) -> Result<Session> {
    let setup = async {
        channel
            .basic_qos(config.prefetch().get(), BasicQosOptions::default())
            .await
            .map_err(|e| channel_error("setting the prefetch", e))?;
        let mut consumers = Vec::with_capacity(config.queues().len());
        for (index, queue) in config.queues().iter().enumerate() {
            let consumer = channel
                .basic_consume(
                    queue.short(),
                    ShortString::from(format!("colloquy-{index}")),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| channel_error("starting to consume", e))?;
            consumers.push((Arc::<str>::from(queue.as_str()), consumer));
        }
        Ok(consumers)
    };
    let consumers = match tokio::time::timeout(config.connect_timeout(), setup).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Error::ConnectTimeout {
                target: config.target(),
                timeout: config.connect_timeout(),
            });
        }
    };
    Ok(Session {
        connection,
        channel,
        consumers,
    })
}

/// Why the consuming loop ended.
enum Outcome {
    /// Cancelled and drained, or the subscription was dropped: stop.
    Done,
    /// The connection or channel failed: reconnect.
    Lost(Error),
}

struct SubscriptionTask {
    config: AmqpConfig,
    deliveries: mpsc::Sender<Delivery>,
    ready: Arc<AtomicBool>,
    cancel_requests: mpsc::Receiver<CancelRequest>,
    generation: u64,
}

impl SubscriptionTask {
    async fn run(mut self, first: Session) {
        let mut session = Some(first);
        let mut delays = connection::backoff(&self.config);
        loop {
            let current = match session.take() {
                Some(session) => session,
                None => {
                    let attempt = async {
                        let (connection, channel) =
                            connection::open_channel(&self.config, "subscriber").await?;
                        start_consuming(&self.config, connection, channel).await
                    };
                    tokio::select! {
                        opened = attempt => match opened {
                            Ok(session) => {
                                info!(target = %self.config.target(), "Subscription reconnected to RabbitMQ.");
                                delays = connection::backoff(&self.config);
                                session
                            }
                            Err(error) => {
                                warn!(
                                    target = %self.config.target(), error = %error.chain(),
                                    "Subscription cannot reconnect to RabbitMQ yet; retrying."
                                );
                                let delay = delays.next().unwrap_or(self.config.retry_delays().1);
                                tokio::select! {
                                    _ = tokio::time::sleep(delay) => continue,
                                    request = self.cancel_requests.recv() => {
                                        if let Some(reply) = request { let _ = reply.send(Ok(())); }
                                        return;
                                    }
                                    _ = self.deliveries.closed() => return,
                                }
                            }
                        },
                        request = self.cancel_requests.recv() => {
                            // Cancelled while disconnected: nothing to cancel on the broker.
                            if let Some(reply) = request { let _ = reply.send(Ok(())); }
                            return;
                        }
                        _ = self.deliveries.closed() => return,
                    }
                }
            };
            self.generation += 1;
            self.ready.store(true, Ordering::SeqCst);
            let outcome = self.consume(&current).await;
            self.ready.store(false, Ordering::SeqCst);
            match outcome {
                Outcome::Done => {
                    // The connection stays open while deliveries still hold their channel (they can be acked);
                    // it closes when the last of them is dropped.
                    return;
                }
                Outcome::Lost(error) => {
                    warn!(
                        target = %self.config.target(), error = %error.chain(), generation = self.generation,
                        "Subscription lost its RabbitMQ connection; unacked deliveries will be redelivered after reconnecting."
                    );
                    connection::close_quietly(&current.connection).await;
                }
            }
        }
    }

    async fn consume(&mut self, session: &Session) -> Outcome {
        let generation = ChannelGeneration::new(self.generation, session.channel.clone());
        let tags: Vec<ShortString> = session.consumers.iter().map(|(_, c)| c.tag()).collect();
        let streams: Vec<BoxStream<'static, (Arc<str>, lapin::Result<lapin::message::Delivery>)>> =
            session
                .consumers
                .iter()
                .map(|(queue, consumer)| {
                    let queue = queue.clone();
                    consumer
                        .clone()
                        .map(move |item| (queue.clone(), item))
                        .boxed()
                })
                .collect();
        let mut stream = select_all(streams);
        let mut cancelling = false;
        loop {
            let item = tokio::select! {
                biased;
                request = self.cancel_requests.recv(), if !cancelling => {
                    let Some(reply) = request else { continue };
                    let mut result = Ok(());
                    for tag in &tags {
                        let cancelled = tokio::time::timeout(
                            self.config.connect_timeout(),
                            session.channel.basic_cancel(tag.clone(), BasicCancelOptions::default()),
                        )
                        .await;
                        match cancelled {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => result = Err(channel_error("cancelling the consumer", e)),
                            Err(_) => result = Err(channel_error(
                                "cancelling the consumer",
                                lapin::Error::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "basic.cancel timed out")),
                            )),
                        }
                    }
                    let failed = result.is_err();
                    // Answer now, not after draining: the caller may only read the buffered deliveries after
                    // `cancel` returns, and the channel to it is bounded.
                    let _ = reply.send(result);
                    if failed {
                        // The broker will not deliver more on a failed channel: stop here.
                        return Outcome::Done;
                    }
                    cancelling = true;
                    continue;
                }
                _ = self.deliveries.closed() => return Outcome::Done,
                item = stream.next() => item,
            };
            match item {
                Some((queue, Ok(delivery))) => {
                    let delivery = Delivery {
                        properties: MessageProperties::from_amqp(&delivery.properties),
                        redelivered: delivery.redelivered,
                        source: queue.to_string(),
                        acker: Acker::amqp(
                            generation.clone(),
                            delivery.delivery_tag,
                            delivery.acker,
                        ),
                        body: delivery.data,
                    };
                    if self.deliveries.send(delivery).await.is_err() {
                        return Outcome::Done;
                    }
                }
                Some((_, Err(_))) | None if cancelling => return Outcome::Done,
                Some((_, Err(error))) => return Outcome::Lost(channel_error("consuming", error)),
                None => return Outcome::Lost(Error::Closed),
            }
        }
    }
}
