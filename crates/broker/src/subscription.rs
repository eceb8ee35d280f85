//! [`AmqpSubscription`]: consumes one or more queues with a prefetch, survives reconnects, and hands deliveries
//! over through a bounded channel fed by a task (so that [`Subscription::next`] is cancel-safe).
//!
//! One active consumer per queue, whatever the queue's type: two consumers would break each conversation's
//! order. Before consuming, a subscription takes the queue's lock — an exclusive queue `colloquy.lock.<queue>`,
//! which RabbitMQ lets one connection own and deletes when that connection closes — and waits until no other
//! consumer remains on the queue. (`basic.consume` `exclusive` would do on a classic queue, but RabbitMQ 3.10
//! ignores it on quorum queues and refuses it on single-active-consumer queues.) A subscription that cannot
//! take the lock waits as a standby ([`ConsumerRole::Standby`]), asking again every [`STANDBY_RETRY`] on its
//! open connection; when the active one dies (process killed, connection cut) RabbitMQ deletes its lock,
//! removes its consumer and requeues what it had not acknowledged, and the standby's next attempt makes it the
//! active consumer.
//!
//! Memory is bounded in bytes as well as in messages when a byte bound is given
//! ([`AmqpSubscription::connect_bounded`]): the prefetch is sized to the bodies seen, see [`crate::window`].

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, select_all};
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{AmqpConfig, AmqpName};
use crate::connection;
use crate::delivery::{Acker, ChannelGeneration, Delivery};
use crate::error::{Error, Result, channel_error};
use crate::properties::MessageProperties;
use crate::topology::protocol_code;
use crate::window::{ByteWindow, ChannelHeld, UnackedBytes};
use crate::{ConsumerRole, Subscription};

/// How often a standby asks RabbitMQ again to become the queue's consumer.
pub const STANDBY_RETRY: Duration = Duration::from_secs(1);

/// How the task answers [`Subscription::cancel`]: whether the consumers were cancelled.
type CancelReply = oneshot::Sender<Result<()>>;

struct Session {
    connection: Connection,
    channel: Channel,
    consumers: Vec<(Arc<str>, lapin::Consumer)>,
}

/// The result of asking to consume: consuming, or a standby (the connection stays open for the next attempt,
/// keeping the locks it took).
enum Started {
    Consuming(Session),
    Standby(Connection, Waiting),
}

/// Why a subscription waits as a standby.
enum Waiting {
    /// Another subscription holds the lock of this queue.
    Locked(String),
    /// The queue still has consumers (the previous holder being removed, or a client that is not Colloquy).
    Consumed { queue: String, consumers: u32 },
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Locked(queue) => write!(f, "another Colloquy consumer holds queue `{queue}`"),
            Self::Consumed { queue, consumers } => {
                write!(f, "queue `{queue}` still has {consumers} other consumer(s)")
            }
        }
    }
}

/// Connected, and whether consuming or waiting as a standby: shared between the handle and the task.
#[derive(Default)]
struct State {
    ready: AtomicBool,
    standby: AtomicBool,
}

/// The AMQP consuming side: declares the same topology as the publisher (so a consumer can start before any
/// producer), sets the prefetch (sized to a byte bound if one is given), consumes every configured queue as its only consumer (a second subscription
/// waits as a standby, see [`Subscription::role`] and the module documentation), and reconnects with backoff after a connection
/// loss. Deliveries of a dead channel are never acked on a new one ([`crate::AckOutcome::Stale`]); RabbitMQ
/// redelivers them.
pub struct AmqpSubscription {
    deliveries: mpsc::Receiver<Delivery>,
    state: Arc<State>,
    /// Cancelled by [`Subscription::cancel`]: the task stops consuming.
    stop: CancellationToken,
    /// The task's answer to the cancel, taken by the first call.
    cancelled: Option<oneshot::Receiver<Result<()>>>,
    unacked: UnackedBytes,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for AmqpSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSubscription")
            .field("ready", &self.is_ready())
            .field("role", &self.role())
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
    /// prefetch and starts consuming, or waiting as a standby when another consumer holds a queue. Fails with a
    /// clear error on bad credentials or an incompatible topology. Must be called within a Tokio runtime.
    /// Unacknowledged deliveries are bounded by the prefetch, in messages only.
    pub async fn connect(config: AmqpConfig) -> Result<Self> {
        Self::start(config, None).await
    }

    /// As [`AmqpSubscription::connect`], and the bodies received and not yet acknowledged stay within
    /// `max_unacked_bytes` (or one body, if a single one is larger): the prefetch is sized to the largest body
    /// seen so far, at most the configured one (see [`crate::window`] for the exact guarantee).
    /// [`AmqpSubscription::unacked_bytes`] shows the count.
    pub async fn connect_bounded(
        config: AmqpConfig,
        max_unacked_bytes: NonZeroUsize,
    ) -> Result<Self> {
        Self::start(config, Some(max_unacked_bytes)).await
    }

    async fn start(config: AmqpConfig, max_unacked_bytes: Option<NonZeroUsize>) -> Result<Self> {
        let window = ByteWindow::new(max_unacked_bytes, config.prefetch(), config.queues().len());
        let (connection, channel) =
            connection::open_channel_with_retries(&config, "subscriber").await?;
        let started = start_consuming(&config, connection, channel, &window, 0).await?;
        let prefetch = usize::from(config.prefetch().get());
        let (sender, deliveries) = mpsc::channel(prefetch);
        let stop = CancellationToken::new();
        let (reply, cancelled) = oneshot::channel();
        let state = Arc::new(State::default());
        let unacked = UnackedBytes::default();
        let task = SubscriptionTask {
            config,
            deliveries: sender,
            state: state.clone(),
            stop: stop.clone(),
            reply: Some(reply),
            generation: 0,
            window,
            unacked: unacked.clone(),
            rounds: 0,
        };
        // Visible as soon as `connect` returns.
        task.set_role(&started);
        let task = tokio::spawn(task.run(started));
        Ok(Self {
            deliveries,
            state,
            stop,
            cancelled: Some(cancelled),
            unacked,
            task,
        })
    }

    /// The bytes of bodies received from RabbitMQ and not yet acknowledged (those still buffered for
    /// [`Subscription::next`] included): now, and the most so far.
    pub fn unacked_bytes(&self) -> UnackedBytes {
        self.unacked.clone()
    }
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn next(&mut self) -> Result<Option<Delivery>> {
        Ok(self.deliveries.recv().await)
    }

    async fn cancel(&mut self) -> Result<()> {
        let Some(answer) = self.cancelled.take() else {
            return Ok(());
        };
        self.stop.cancel();
        // No answer: the task has ended, nothing is being consumed.
        answer.await.unwrap_or(Ok(()))
    }

    fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::SeqCst)
    }

    fn role(&self) -> ConsumerRole {
        if self.state.standby.load(Ordering::SeqCst) {
            ConsumerRole::Standby
        } else {
            ConsumerRole::Active
        }
    }
}

/// Becomes the one consumer of every queue, or a standby: takes each queue's lock (in name order, so that two
/// subscriptions of overlapping queue lists cannot each hold a lock the other waits for), checks that no other
/// consumer remains on the queue (the one that held the lock before may still be being removed, its
/// unacknowledged messages being requeued: consuming before that would deliver them after later ones), then
/// sets the prefetch and consumes on `channel`.
async fn start_consuming(
    config: &AmqpConfig,
    connection: Connection,
    channel: Channel,
    window: &ByteWindow,
    round: u64,
) -> Result<Started> {
    let setup = async {
        let mut queues: Vec<&AmqpName> = config.queues().iter().collect();
        queues.sort();
        for queue in &queues {
            if !take_lock(&connection, queue).await? {
                return Ok(Err(Waiting::Locked(queue.to_string())));
            }
        }
        for queue in &queues {
            let declared = channel
                .queue_declare(
                    queue.short(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| channel_error("checking the queue's consumers", e))?;
            if declared.consumer_count() > 0 {
                return Ok(Err(Waiting::Consumed {
                    queue: queue.to_string(),
                    consumers: declared.consumer_count(),
                }));
            }
        }
        consume_queues(config, &channel, window, round)
            .await
            .map(Ok)
    };
    let consumers = match tokio::time::timeout(config.connect_timeout(), setup).await {
        Ok(Ok(Ok(consumers))) => consumers,
        Ok(Ok(Err(waiting))) => {
            let _ = channel.close(200, "OK".into()).await;
            return Ok(Started::Standby(connection, waiting));
        }
        Ok(Err(error)) => return Err(error),
        Err(_) => {
            return Err(Error::ConnectTimeout {
                target: config.target(),
                timeout: config.connect_timeout(),
            });
        }
    };
    Ok(Started::Consuming(Session {
        connection,
        channel,
        consumers,
    }))
}

/// Sets the prefetch of the window and starts one consumer per queue on `channel`. The consumer tags name the
/// round (each change of the window consumes again).
async fn consume_queues(
    config: &AmqpConfig,
    channel: &Channel,
    window: &ByteWindow,
    round: u64,
) -> Result<Vec<(Arc<str>, lapin::Consumer)>> {
    // Applies to the consumers started after it (RabbitMQ's per-consumer prefetch).
    channel
        .basic_qos(window.prefetch().get(), BasicQosOptions::default())
        .await
        .map_err(|e| channel_error("setting the prefetch", e))?;
    let mut consumers = Vec::with_capacity(config.queues().len());
    for (index, queue) in config.queues().iter().enumerate() {
        let consumer = channel
            .basic_consume(
                queue.short(),
                ShortString::from(format!("colloquy-{index}-{round}")),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| channel_error("starting to consume", e))?;
        consumers.push((Arc::<str>::from(queue.as_str()), consumer));
    }
    Ok(consumers)
}

/// Takes the lock of `queue` for this connection: an exclusive queue named after it, which RabbitMQ lets one
/// connection own and deletes when that connection closes (whatever the cause: a clean stop, a killed process,
/// a cut connection). `false` when another connection owns it (405 RESOURCE_LOCKED). Declaring it again on the
/// owning connection is a no-op.
async fn take_lock(connection: &Connection, queue: &AmqpName) -> Result<bool> {
    let probe = connection
        .create_channel()
        .await
        .map_err(|e| channel_error("opening a channel", e))?;
    let declared = probe
        .queue_declare(
            lock_name(queue).as_str().into(),
            QueueDeclareOptions {
                passive: false,
                durable: false,
                exclusive: true,
                auto_delete: false,
                nowait: false,
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Ok(_) => {
            let _ = probe.close(200, "OK".into()).await;
            Ok(true)
        }
        // RabbitMQ closed the probe channel.
        Err(e) if protocol_code(&e) == Some(405) => Ok(false),
        Err(e) => Err(channel_error("taking the consumer lock of the queue", e)),
    }
}

/// The name of the lock queue of `queue`: `colloquy.lock.` and the queue name, cut to the 255 bytes of an AMQP
/// name (on a character boundary).
pub(crate) fn lock_name(queue: &AmqpName) -> String {
    let mut name = format!("{LOCK_PREFIX}{queue}");
    let mut end = name.len().min(255);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// The prefix of the lock queues (see [`AmqpSubscription`]).
const LOCK_PREFIX: &str = "colloquy.lock.";

/// Resolves when the subscription is cancelled (answering at once: nothing is being consumed) or dropped.
async fn stopped(
    stop: &CancellationToken,
    reply: &mut Option<CancelReply>,
    deliveries: &mpsc::Sender<Delivery>,
) {
    tokio::select! {
        () = stop.cancelled() => {
            if let Some(reply) = reply.take() {
                let _ = reply.send(Ok(()));
            }
        }
        _ = deliveries.closed() => {}
    }
}

/// Why the consuming loop ended.
enum Outcome {
    /// Cancelled and drained, or the subscription was dropped: stop.
    Done,
    /// The connection or channel failed: reconnect.
    Lost(Error),
    /// The byte window changed: the consumers are cancelled and what they had in transit passed on; consume
    /// again on the same channel with the new prefetch.
    Resized,
}

struct SubscriptionTask {
    config: AmqpConfig,
    deliveries: mpsc::Sender<Delivery>,
    state: Arc<State>,
    stop: CancellationToken,
    reply: Option<CancelReply>,
    generation: u64,
    window: ByteWindow,
    unacked: UnackedBytes,
    /// How many times consumers were started (names their tags).
    rounds: u64,
}

/// What ended a wait of the task (between attempts).
enum Wake {
    /// Time for the next attempt.
    Retry,
    /// Cancelled, or the subscription was dropped: stop.
    Stop,
}

impl SubscriptionTask {
    async fn run(mut self, first: Started) {
        let mut started = Some(first);
        // The open connection of a standby, reused by its next attempt.
        let mut standby: Option<Connection> = None;
        let mut delays = connection::backoff(&self.config);
        loop {
            let current = match started.take() {
                Some(started) => started,
                None => {
                    let attempt = async {
                        match standby.take() {
                            Some(connection) if connection.status().connected() => {
                                let channel = connection
                                    .create_channel()
                                    .await
                                    .map_err(|e| channel_error("opening a channel", e))?;
                                start_consuming(
                                    &self.config,
                                    connection,
                                    channel,
                                    &self.window,
                                    self.rounds,
                                )
                                .await
                            }
                            _ => {
                                let (connection, channel) =
                                    connection::open_channel(&self.config, "subscriber").await?;
                                start_consuming(
                                    &self.config,
                                    connection,
                                    channel,
                                    &self.window,
                                    self.rounds,
                                )
                                .await
                            }
                        }
                    };
                    let opened = tokio::select! {
                        opened = attempt => opened,
                        () = stopped(&self.stop, &mut self.reply, &self.deliveries) => return,
                    };
                    match opened {
                        Ok(started) => {
                            delays = connection::backoff(&self.config);
                            started
                        }
                        Err(error) => {
                            self.state.ready.store(false, Ordering::SeqCst);
                            warn!(
                                target = %self.config.target(), error = %error.chain(),
                                "Subscription cannot reconnect to RabbitMQ yet; retrying."
                            );
                            let delay = delays.next_or_longest();
                            match self.wait(delay).await {
                                Wake::Retry => continue,
                                Wake::Stop => return,
                            }
                        }
                    }
                }
            };
            self.set_role(&current);
            self.rounds += 1;
            let mut session = match current {
                Started::Consuming(session) => session,
                Started::Standby(connection, _) => {
                    standby = Some(connection);
                    match self.wait(STANDBY_RETRY).await {
                        Wake::Retry => continue,
                        Wake::Stop => {
                            if let Some(connection) = &standby {
                                connection::close_quietly(connection).await;
                            }
                            return;
                        }
                    }
                }
            };
            self.generation += 1;
            let generation = ChannelGeneration::new(
                self.generation,
                session.channel.clone(),
                ChannelHeld::new(self.unacked.clone()),
            );
            // `Ok` when done (cancelled and drained, or dropped), else why the connection was lost.
            let outcome = loop {
                match self.consume(&session, &generation).await {
                    Outcome::Resized => {}
                    Outcome::Done => break Ok(()),
                    Outcome::Lost(error) => break Err(error),
                }
                // Consume again once the bytes still unacknowledged leave room for the new window.
                tokio::select! {
                    () = self.unacked.at_most(self.window.resume_at()) => {}
                    () = stopped(&self.stop, &mut self.reply, &self.deliveries) => break Ok(()),
                }
                match consume_queues(&self.config, &session.channel, &self.window, self.rounds)
                    .await
                {
                    Ok(consumers) => session.consumers = consumers,
                    Err(error) => break Err(error),
                }
                self.rounds += 1;
            };
            self.state.ready.store(false, Ordering::SeqCst);
            match outcome {
                Ok(()) => {
                    // The connection stays open while deliveries still hold their channel (they can be acked);
                    // it closes when the last of them is dropped.
                    return;
                }
                Err(error) => {
                    // RabbitMQ redelivers what the channel held: it no longer counts.
                    generation.held.release_all();
                    warn!(
                        target = %self.config.target(), error = %error.chain(), generation = self.generation,
                        "Subscription lost its RabbitMQ connection; unacked deliveries will be redelivered after reconnecting."
                    );
                    connection::close_quietly(&session.connection).await;
                }
            }
        }
    }

    /// Publishes the role and readiness of a successful attempt, logging a change of role.
    fn set_role(&self, started: &Started) {
        let waiting = match started {
            Started::Standby(_, waiting) => Some(waiting),
            Started::Consuming(_) => None,
        };
        let standby = waiting.is_some();
        let was_standby = self.state.standby.swap(standby, Ordering::SeqCst);
        let was_ready = self.state.ready.swap(true, Ordering::SeqCst);
        let queues: Vec<&str> = self.config.queues().iter().map(AmqpName::as_str).collect();
        match (waiting, was_standby) {
            (Some(waiting), false) => info!(
                target = %self.config.target(), queues = ?queues, retry_every_ms = STANDBY_RETRY.as_millis() as u64,
                "Waiting as a standby: {waiting} (one active consumer per queue keeps each conversation's order)."
            ),
            (Some(_), true) => {}
            (None, true) => {
                info!(target = %self.config.target(), queues = ?queues, "Now the active consumer.")
            }
            (None, false) if !was_ready && self.generation > 0 => {
                info!(target = %self.config.target(), "Subscription reconnected to RabbitMQ.");
            }
            (None, false) => {}
        }
    }

    /// Waits `delay`, or until the subscription is cancelled or dropped (a cancel is answered at once: nothing
    /// is being consumed).
    async fn wait(&mut self, delay: Duration) -> Wake {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Wake::Retry,
            () = stopped(&self.stop, &mut self.reply, &self.deliveries) => Wake::Stop,
        }
    }

    /// Cancels the consumers of `tags` on the session's channel, each within the connect timeout.
    async fn cancel_consumers(&self, session: &Session, tags: &[ShortString]) -> Result<()> {
        let mut result = Ok(());
        for tag in tags {
            let cancelled = tokio::time::timeout(
                self.config.connect_timeout(),
                session
                    .channel
                    .basic_cancel(tag.clone(), BasicCancelOptions::default()),
            )
            .await;
            match cancelled {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(channel_error("cancelling the consumer", e)),
                Err(_) => {
                    result = Err(channel_error(
                        "cancelling the consumer",
                        lapin::Error::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "basic.cancel timed out",
                        )),
                    ))
                }
            }
        }
        result
    }

    async fn consume(&mut self, session: &Session, generation: &Arc<ChannelGeneration>) -> Outcome {
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
        // The window changed and the consumers are cancelled: pass on what is in transit, then consume again.
        let mut resizing = false;
        loop {
            let item = tokio::select! {
                biased;
                () = self.stop.cancelled(), if !cancelling => {
                    let result = if resizing { Ok(()) } else { self.cancel_consumers(session, &tags).await };
                    let failed = result.is_err();
                    // Answer now, not after draining: the caller may only read the buffered deliveries after
                    // `cancel` returns, and the channel to it is bounded.
                    if let Some(reply) = self.reply.take() {
                        let _ = reply.send(result);
                    }
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
                    let size = delivery.data.len();
                    generation.held.hold(delivery.delivery_tag, size);
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
                    if self.window.observe(size) && !cancelling && !resizing {
                        if let Err(error) = self.cancel_consumers(session, &tags).await {
                            return Outcome::Lost(error);
                        }
                        resizing = true;
                    }
                }
                Some((_, Err(_))) | None if cancelling => return Outcome::Done,
                None if resizing => return Outcome::Resized,
                Some((_, Err(error))) => return Outcome::Lost(channel_error("consuming", error)),
                None => return Outcome::Lost(Error::Closed),
            }
        }
    }
}
