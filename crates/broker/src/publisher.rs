//! [`AmqpBroker`]: the AMQP publisher. One task owns the connection and channel; callers hand events over
//! through a bounded queue. Publisher confirms are pipelined through a bounded window, each message keeping its
//! own confirm future, so a Nack is retried and never counted as success. After a connection loss the
//! unconfirmed events and the queued ones go out again in their original order, with the same ids.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use colloquy_events::StampedEnvelope;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::EventBroker;
use crate::config::AmqpConfig;
use crate::connection;
use crate::error::{Error, Result, channel_error, connect_error};
use crate::properties::{MessageProperties, event_amqp_properties};

/// One message to publish: the body and its properties, kept until confirmed.
struct Outgoing {
    body: Vec<u8>,
    properties: BasicProperties,
}

/// A message taken from the queue by the publisher task; `confirm` is set while it is in flight on the current
/// channel.
struct Pending {
    message: Outgoing,
    confirm: Option<PublisherConfirm>,
}

/// What flush waits on: the number of messages confirmed in order since the start, and why the rest is stuck,
/// while it is.
#[derive(Debug, Clone, Default)]
struct Progress {
    confirmed: u64,
    stuck: Option<Stuck>,
}

/// Why the events handed over cannot be confirmed for now (they are kept and still tried).
#[derive(Debug, Clone)]
enum Stuck {
    /// The broker has been unreachable for the configured number of attempts: the last error.
    Unreachable(Arc<Error>),
    /// RabbitMQ rejected (Nack) the oldest unconfirmed message [`NACKS_BEFORE_FAILING`] times in a row, or for
    /// [`NACK_PATIENCE`].
    Rejected {
        event_ids: Vec<String>,
        nacks: u32,
        since: Instant,
    },
}

/// After this many Nacks in a row (each re-send waiting the backoff), flush reports [`Error::Rejected`].
const NACKS_BEFORE_FAILING: u32 = 5;
/// After Nacks in a row for this long, flush reports [`Error::Rejected`] whatever their number.
const NACK_PATIENCE: Duration = Duration::from_secs(60);

/// State shared between the handle and the task.
struct Shared {
    /// Connected and not blocked by flow control.
    ready: AtomicBool,
    /// Cancelled by `close`: the task stops.
    shutdown: CancellationToken,
}

/// The AMQP (RabbitMQ) event broker, wire-compatible with Rasa's `PikaEventBroker`.
///
/// Events are kept until RabbitMQ confirms them: before the first connection, while disconnected (in a bounded
/// buffer, back-pressure when full), and after a Nack. Properties: `delivery_mode` 2, `content_type`
/// `application/json`, `app_id` when configured, `message_id` = the event id, headers `colloquy-event-id` and
/// `colloquy-seq`. Call [`EventBroker::close`] before dropping it: a dropped broker still delivers what it holds
/// if connected, and gives up (logging an error) after the configured number of failed connection attempts.
pub struct AmqpBroker {
    config: Arc<AmqpConfig>,
    app_id: Option<ShortString>,
    sender: mpsc::Sender<Outgoing>,
    /// Held while handing over so that the order of the queue is the order of `handed_over`: flush can then wait
    /// for "the first N messages" (why: concurrent publishers would otherwise interleave count and queue order).
    send_lock: tokio::sync::Mutex<()>,
    handed_over: AtomicU64,
    progress: watch::Receiver<Progress>,
    shared: Arc<Shared>,
    closed: AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("target", &self.config.target())
            .field("ready", &self.is_ready())
            .field("unconfirmed", &self.unconfirmed())
            .finish_non_exhaustive()
    }
}

impl AmqpBroker {
    /// Connects (up to the configured number of attempts, with backoff), declares the topology and starts the
    /// publisher task. Fails with a clear error on bad credentials, an incompatible existing topology, or when
    /// the broker stays unreachable. Must be called within a Tokio runtime.
    pub async fn connect(config: AmqpConfig) -> Result<Self> {
        let (connection, channel) =
            connection::open_channel_with_retries(&config, "publisher").await?;
        enable_confirms(&channel).await?;
        Ok(Self::start(config, Some((connection, channel))))
    }

    /// Starts the publisher task without waiting for a connection: events handed over before the broker is
    /// reachable are kept and published once it is. Must be called within a Tokio runtime.
    pub fn spawn(config: AmqpConfig) -> Self {
        Self::start(config, None)
    }

    fn start(config: AmqpConfig, session: Option<(Connection, Channel)>) -> Self {
        let config = Arc::new(config);
        let (sender, receiver) = mpsc::channel(config.buffer_capacity().get());
        let (progress_sender, progress) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            ready: AtomicBool::new(session.is_some()),
            shutdown: CancellationToken::new(),
        });
        let task = PublisherTask {
            config: config.clone(),
            receiver,
            pending: VecDeque::with_capacity(config.confirm_window().get()),
            in_flight: 0,
            progress: progress_sender,
            shared: shared.clone(),
            shutdown: shared.shutdown.clone(),
            nacks: 0,
            first_nack: None,
            resend_at: None,
            nack_delays: connection::backoff(&config),
        };
        let handle = tokio::spawn(task.run(session));
        Self {
            app_id: config.app_id().map(|name| name.short()),
            config,
            sender,
            send_lock: tokio::sync::Mutex::new(()),
            handed_over: AtomicU64::new(0),
            progress,
            shared,
            closed: AtomicBool::new(false),
            task: Mutex::new(Some(handle)),
        }
    }

    /// Publishes a raw body with the given properties (e.g. re-publishing a dead letter), confirmed like events:
    /// [`EventBroker::flush`] waits for it. A missing `delivery_mode` becomes persistent.
    pub async fn publish_raw(&self, body: Vec<u8>, properties: &MessageProperties) -> Result<()> {
        self.hand_over(vec![Outgoing {
            body,
            properties: properties.to_amqp(),
        }])
        .await
    }

    /// Waits until at most `limit` of the events handed over so far are unconfirmed (`flush` is `limit` 0), or
    /// fails as `flush` does. A producer that wants to keep the pipeline full waits for, say, half its buffer
    /// rather than for a full flush.
    pub async fn wait_for_unconfirmed_at_most(&self, limit: u64) -> Result<()> {
        let handed_over = self.handed_over.load(Ordering::SeqCst);
        let target = handed_over.saturating_sub(limit);
        let mut progress = self.progress.clone();
        let reached = progress
            .wait_for(|p| p.confirmed >= target || p.stuck.is_some())
            .await
            .map(|p| p.clone());
        match reached {
            Ok(p) if p.confirmed >= target => Ok(()),
            Ok(Progress { confirmed, stuck }) => {
                let pending = handed_over.saturating_sub(confirmed);
                Err(match stuck {
                    Some(Stuck::Rejected {
                        event_ids,
                        nacks,
                        since,
                    }) => Error::Rejected {
                        pending,
                        event_ids,
                        nacks,
                        during: since.elapsed(),
                    },
                    Some(Stuck::Unreachable(source)) => Error::Unconfirmed { pending, source },
                    None => Error::Closed,
                })
            }
            // The task has ended: what it confirmed is final.
            Err(_) if progress.borrow().confirmed >= target => Ok(()),
            Err(_) => Err(Error::Closed),
        }
    }

    /// How many events were handed over and are not confirmed yet.
    pub fn unconfirmed(&self) -> u64 {
        self.handed_over
            .load(Ordering::SeqCst)
            .saturating_sub(self.progress.borrow().confirmed)
    }

    /// The configuration.
    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    fn outgoing(&self, event: &StampedEnvelope) -> Outgoing {
        Outgoing {
            body: event.envelope.to_rasa_json().into_bytes(),
            properties: event_amqp_properties(event, self.app_id.as_ref()),
        }
    }

    async fn hand_over(&self, messages: Vec<Outgoing>) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let count = messages.len();
        let _order = self.send_lock.lock().await;
        if self.config.fail_when_full() {
            // All or nothing: only the task takes from the queue while we hold the lock, so the capacity can
            // only grow between this check and the sends.
            if self.sender.capacity() < count {
                return Err(Error::BufferFull {
                    capacity: self.config.buffer_capacity().get(),
                    rejected: count,
                });
            }
            for message in messages {
                self.sender.try_send(message).map_err(|_| Error::Closed)?;
                self.handed_over.fetch_add(1, Ordering::SeqCst);
            }
        } else {
            for message in messages {
                self.sender.send(message).await.map_err(|_| Error::Closed)?;
                self.handed_over.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl EventBroker for AmqpBroker {
    async fn publish(&self, event: StampedEnvelope) -> Result<()> {
        let message = self.outgoing(&event);
        self.hand_over(vec![message]).await
    }

    async fn publish_batch(&self, events: Vec<StampedEnvelope>) -> Result<()> {
        let messages = events.iter().map(|event| self.outgoing(event)).collect();
        self.hand_over(messages).await
    }

    async fn flush(&self) -> Result<()> {
        self.wait_for_unconfirmed_at_most(0).await
    }

    async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        self.closed.store(true, Ordering::SeqCst);
        self.shared.shutdown.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        flushed
    }

    fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }
}

/// Why the connected loop ended.
enum Outcome {
    /// `close` was called.
    Shutdown,
    /// Every handle is gone and everything is confirmed.
    Finished,
    /// The connection or channel failed.
    Lost(Error),
}

// A short-lived value on the task's stack; boxing the confirmation would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Step {
    Shutdown,
    Event(Option<lapin::Event>),
    Confirm(lapin::Result<Confirmation>),
    Received(usize),
    Resend,
}

struct PublisherTask {
    config: Arc<AmqpConfig>,
    receiver: mpsc::Receiver<Outgoing>,
    /// Taken from the queue, not yet confirmed, in hand-over order; at most `confirm_window` long.
    pending: VecDeque<Pending>,
    /// The first `in_flight` entries of `pending` are published on the current channel.
    in_flight: usize,
    progress: watch::Sender<Progress>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    /// The Nacks in a row (no Ack between them) and when the first of them came.
    nacks: u32,
    first_nack: Option<Instant>,
    /// After a Nack, nothing is (re-)sent before this instant: the re-sends back off.
    resend_at: Option<tokio::time::Instant>,
    nack_delays: colloquy_retry::Delays,
}

impl PublisherTask {
    async fn run(mut self, mut session: Option<(Connection, Channel)>) {
        let attempts = self.config.connection_attempts().get();
        let mut failures = 0u32;
        let mut delays = connection::backoff(&self.config);
        loop {
            if self.shutdown.is_cancelled() {
                return self.stop();
            }
            let (connection, channel) = match session.take() {
                Some(session) => session,
                None => match self.open().await {
                    Ok(session) => session,
                    Err(error) => {
                        failures += 1;
                        warn!(
                            target = %self.config.target(), attempt = failures, error = %error.chain(),
                            unconfirmed = self.pending.len() + self.receiver.len(),
                            "Cannot connect the publisher to RabbitMQ; retrying."
                        );
                        if failures >= attempts {
                            let error = Arc::new(error);
                            self.progress
                                .send_modify(|p| p.stuck = Some(Stuck::Unreachable(error)));
                            if self.receiver.is_closed() {
                                return self.stop();
                            }
                        }
                        let delay = delays.next_or_longest();
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            () = self.shutdown.cancelled() => {}
                        }
                        continue;
                    }
                },
            };
            let was_unreachable =
                matches!(self.progress.borrow().stuck, Some(Stuck::Unreachable(_)));
            if failures > 0 || was_unreachable {
                info!(target = %self.config.target(), after_failures = failures, "Publisher reconnected to RabbitMQ.");
            }
            failures = 0;
            delays = connection::backoff(&self.config);
            if was_unreachable {
                self.progress.send_modify(|p| p.stuck = None);
            }
            self.shared.ready.store(true, Ordering::SeqCst);
            let outcome = self.run_connected(&connection, &channel).await;
            self.shared.ready.store(false, Ordering::SeqCst);
            // Whatever was in flight is unconfirmed now: it goes out again, first and in order.
            for pending in &mut self.pending {
                pending.confirm = None;
            }
            self.in_flight = 0;
            match outcome {
                Outcome::Shutdown | Outcome::Finished => {
                    connection::close_quietly(&connection).await;
                    return self.stop();
                }
                Outcome::Lost(error) => {
                    warn!(
                        target = %self.config.target(), error = %error.chain(),
                        unconfirmed = self.pending.len(),
                        "Publisher lost its RabbitMQ connection; unconfirmed events will be re-sent after reconnecting."
                    );
                    connection::close_quietly(&connection).await;
                }
            }
        }
    }

    async fn open(&mut self) -> Result<(Connection, Channel)> {
        let (connection, channel) = connection::open_channel(&self.config, "publisher").await?;
        enable_confirms(&channel).await?;
        Ok((connection, channel))
    }

    fn stop(&mut self) {
        let left = self.pending.len() + self.receiver.len();
        if left > 0 {
            error!(
                target = %self.config.target(), unconfirmed = left,
                "Publisher stopped with events not confirmed by RabbitMQ."
            );
        }
    }

    async fn run_connected(&mut self, connection: &Connection, channel: &Channel) -> Outcome {
        let window = self.config.confirm_window().get();
        let exchange = self.config.exchange().short();
        let routing_key = ShortString::from("");
        let mut events = connection.events_listener();
        let mut blocked = connection.status().blocked();
        let mut batch = Vec::with_capacity(window);
        loop {
            let resend_at = self
                .resend_at
                .filter(|at| *at > tokio::time::Instant::now());
            self.resend_at = resend_at;
            if !blocked && resend_at.is_none() {
                while self.in_flight < self.pending.len() {
                    let pending = &mut self.pending[self.in_flight];
                    let published = channel
                        .basic_publish(
                            exchange.clone(),
                            routing_key.clone(),
                            BasicPublishOptions::default(),
                            &pending.message.body,
                            pending.message.properties.clone(),
                        )
                        .await;
                    match published {
                        Ok(confirm) => {
                            pending.confirm = Some(confirm);
                            self.in_flight += 1;
                        }
                        Err(e) => return Outcome::Lost(channel_error("publishing", e)),
                    }
                }
            }
            if self.receiver.is_closed() && self.receiver.is_empty() && self.pending.is_empty() {
                return Outcome::Finished;
            }
            let room = window - self.pending.len();
            let step = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => Step::Shutdown,
                event = events.next() => Step::Event(event),
                _ = tokio::time::sleep_until(resend_at.unwrap_or_else(tokio::time::Instant::now)), if resend_at.is_some() => {
                    Step::Resend
                }
                confirmation = front_confirm(&mut self.pending), if self.in_flight > 0 => {
                    Step::Confirm(confirmation)
                }
                received = self.receiver.recv_many(&mut batch, room), if room > 0 && !self.receiver.is_closed() => {
                    Step::Received(received)
                }
            };
            match step {
                Step::Shutdown => return Outcome::Shutdown,
                Step::Event(Some(lapin::Event::ConnectionBlocked(reason))) => {
                    if !blocked {
                        warn!(
                            target = %self.config.target(), %reason,
                            "RabbitMQ blocked the connection (flow control); publishing waits until it is unblocked."
                        );
                    }
                    blocked = true;
                    self.shared.ready.store(false, Ordering::SeqCst);
                }
                Step::Event(Some(lapin::Event::ConnectionUnblocked)) => {
                    if blocked {
                        info!(target = %self.config.target(), "RabbitMQ unblocked the connection; publishing resumes.");
                    }
                    blocked = false;
                    self.shared.ready.store(true, Ordering::SeqCst);
                }
                Step::Event(Some(lapin::Event::Error(e))) => {
                    return Outcome::Lost(connect_error(&self.config.target(), e));
                }
                Step::Event(Some(_)) => {}
                Step::Event(None) => {
                    return Outcome::Lost(Error::Closed);
                }
                Step::Confirm(first) => {
                    if let Some(outcome) = self.settle(first) {
                        return outcome;
                    }
                }
                Step::Received(0) | Step::Resend => {}
                Step::Received(_) => {
                    self.pending.extend(batch.drain(..).map(|message| Pending {
                        message,
                        confirm: None,
                    }));
                }
            }
        }
    }

    /// Handles the confirmation of the oldest in-flight message, and of the following ones that are already
    /// settled (one multiple-ack settles many). Returns an outcome when the channel failed.
    fn settle(&mut self, first: lapin::Result<Confirmation>) -> Option<Outcome> {
        let mut confirmed = 0u64;
        let mut next = Some(first);
        let mut outcome = None;
        while let Some(result) = next.take() {
            match result {
                Ok(Confirmation::Ack(_)) => {
                    self.accepted();
                    self.pending.pop_front();
                    self.in_flight -= 1;
                    confirmed += 1;
                    if self.in_flight > 0 {
                        next = self.pending[0]
                            .confirm
                            .as_mut()
                            .and_then(FutureExt::now_or_never);
                    }
                }
                Ok(Confirmation::Nack(_)) => {
                    // Go back: re-send the nacked message and everything after it, in order (same ids), so that
                    // a consumer sees every event; duplicates share their id. After a pause: RabbitMQ nacks
                    // for reasons that take time to pass (a full queue that rejects publishes).
                    self.rejected();
                    for pending in &mut self.pending {
                        pending.confirm = None;
                    }
                    self.in_flight = 0;
                }
                Ok(Confirmation::NotRequested) => {
                    outcome = Some(Outcome::Lost(Error::Config(
                        "publisher confirms are not enabled on the channel".into(),
                    )));
                }
                Err(e) => {
                    outcome = Some(Outcome::Lost(channel_error(
                        "waiting for a publisher confirm",
                        e,
                    )));
                }
            }
        }
        if confirmed > 0 {
            self.progress.send_modify(|p| p.confirmed += confirmed);
        }
        outcome
    }
}

impl PublisherTask {
    /// Records a Nack of the oldest unconfirmed message: schedules the re-send after the next backoff delay,
    /// and reports the events as stuck once the Nacks in a row reach the bound.
    fn rejected(&mut self) {
        self.nacks += 1;
        let since = *self.first_nack.get_or_insert_with(Instant::now);
        let delay = self.nack_delays.next_or_longest();
        self.resend_at = Some(tokio::time::Instant::now() + delay);
        warn!(
            target = %self.config.target(), nacks = self.nacks, in_flight = self.in_flight,
            retry_in_ms = delay.as_millis() as u64,
            "RabbitMQ rejected a message (Nack); re-sending it and the ones after it after a pause."
        );
        if self.nacks >= NACKS_BEFORE_FAILING || since.elapsed() >= NACK_PATIENCE {
            let event_ids = self
                .pending
                .iter()
                .filter_map(|p| p.message.properties.message_id().as_ref())
                .take(Error::REJECTED_IDS_SHOWN)
                .map(|id| id.to_string())
                .collect();
            let nacks = self.nacks;
            self.progress.send_modify(|p| {
                p.stuck = Some(Stuck::Rejected {
                    event_ids,
                    nacks,
                    since,
                });
            });
        }
    }

    /// Records an Ack: the Nacks in a row, if any, are over.
    fn accepted(&mut self) {
        if self.nacks == 0 {
            return;
        }
        info!(target = %self.config.target(), after_nacks = self.nacks, "RabbitMQ accepts messages again.");
        self.nacks = 0;
        self.first_nack = None;
        self.nack_delays = connection::backoff(&self.config);
        self.progress.send_if_modified(|p| {
            let rejected = matches!(p.stuck, Some(Stuck::Rejected { .. }));
            if rejected {
                p.stuck = None;
            }
            rejected
        });
    }
}

async fn enable_confirms(channel: &Channel) -> Result<()> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| channel_error("enabling publisher confirms", e))
}

async fn front_confirm(pending: &mut VecDeque<Pending>) -> lapin::Result<Confirmation> {
    match pending.front_mut().and_then(|p| p.confirm.as_mut()) {
        Some(confirm) => confirm.await,
        None => std::future::pending().await,
    }
}
