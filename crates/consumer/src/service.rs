//! The consumer's two tasks: the batcher reads deliveries and cuts batches; the writer stores each batch in one
//! transaction, then acknowledges it with one multiple-ack. They run concurrently, so the next batch fills
//! while the previous one commits; a bounded channel of one batch between them keeps memory bounded, and the
//! batcher stops taking deliveries while the bytes held unacknowledged reach `max_inflight_bytes`.
//!
//! One policy for every database failure, at start-up as in the middle of a run: what can pass (down,
//! starting, full, read-only) is waited out with backoff, holding the deliveries unacknowledged and reporting it
//! in `/health` and the logs with the database's own message; a row the database refuses is dead-lettered;
//! what only the operator can fix (credentials, a missing database or schema) stops the consumer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_broker::{AckOutcome, Acker, Subscription};
use colloquy_retry::Policy;
use colloquy_storage::{DeadLetterRow, EventRow};
use futures_util::FutureExt;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::database::EventSink;
use crate::decode::{Decoded, RawMessage, ReceivedEvent, decode};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// How the consumer batches, bounds and stops.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Most events in one transaction: [`Self::DEFAULT_BATCH_SIZE`] by default; `colloquy consume --analytics`
    /// takes [`Self::ANALYTICS_BATCH_SIZE`].
    pub batch_size: usize,
    /// Longest a batch keeps filling while deliveries keep arriving; a batch is handed to the writer as soon as
    /// no further delivery is waiting (the queue ran dry), so at low rates events do not wait this long.
    pub batch_timeout: Duration,
    /// Bodies larger than this are dead-lettered instead of stored as events.
    pub max_body_bytes: usize,
    /// The batcher takes no further delivery while the bodies taken and not yet acknowledged add up to this
    /// many bytes or more (so at most this plus one message is held). The broker's prefetch bounds the count.
    pub max_inflight_bytes: usize,
    /// After a shutdown signal, how long the writer keeps retrying a database that keeps failing.
    pub shutdown_grace: Duration,
    /// Where to serve `/health` and `/metrics`, if anywhere.
    pub http: Option<SocketAddr>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        let max_body_bytes = 1024 * 1024;
        Self {
            batch_size: Self::DEFAULT_BATCH_SIZE,
            batch_timeout: Duration::from_millis(50),
            max_body_bytes,
            max_inflight_bytes: Self::default_max_inflight_bytes(max_body_bytes),
            shutdown_grace: Duration::from_secs(30),
            http: None,
        }
    }
}

impl ConsumerOptions {
    /// The default [`batch_size`](Self::batch_size). Batches of 5000 measured no faster (the plain drain runs at
    /// the broker's pace) and a longer commit under a backlog lengthens the latency tail.
    pub const DEFAULT_BATCH_SIZE: usize = 1000;

    /// The default batch size for an [`AnalyticsSink`](crate::AnalyticsSink). Its per-conversation work (the
    /// derivation state, the sender and session rows, the reads of them) is done once per batch, so the more
    /// events of a conversation a batch holds, the less it costs per event: Rasa-shaped turns of 1000
    /// conversations drain ~1.2x faster with 5000 than with 1000 (docs/BENCHMARKS.md, "Fourth look").
    pub const ANALYTICS_BATCH_SIZE: usize = 5000;

    /// The default batch size of a consumer whose sink keeps the analytics tables (`analytics`) or not: one of
    /// the two constants above.
    pub fn default_batch_size(analytics: bool) -> usize {
        if analytics {
            Self::ANALYTICS_BATCH_SIZE
        } else {
            Self::DEFAULT_BATCH_SIZE
        }
    }

    /// The default bound on bytes held for a body limit: 64 MiB (full batches of ordinary events, one filling
    /// while one commits), or four of the largest bodies accepted, whichever is larger.
    pub fn default_max_inflight_bytes(max_body_bytes: usize) -> usize {
        (64 * 1024 * 1024).max(max_body_bytes.saturating_mul(4))
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Events inserted.
    pub events_stored: u64,
    /// Events skipped because they were stored already.
    pub duplicates_skipped: u64,
    /// Messages stored as dead letters.
    pub dead_letters: u64,
}

/// The consumer service: deliveries in, rows out, acks after commit.
pub struct Consumer {
    sink: Arc<dyn EventSink>,
    options: ConsumerOptions,
    metrics: Metrics,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One batch on its way from the batcher to the writer.
#[derive(Default)]
struct Batch {
    /// The events' rows, as the sink takes them.
    rows: Vec<EventRow>,
    /// The message each row came from (same index), kept to dead-letter a row the database refuses.
    messages_of_rows: Vec<RawMessage>,
    dead_letters: Vec<DeadLetterRow>,
    /// The acker of the last delivery: its multiple-ack covers the whole batch.
    last: Option<Acker>,
    messages: usize,
    /// The bytes of the bodies, counted in [`Metrics::inflight_bytes`] until the batch is acknowledged.
    bytes: usize,
}

impl Batch {
    /// Decodes `delivery` into the batch, holding its bytes.
    fn take(
        &mut self,
        delivery: colloquy_broker::Delivery,
        options: &ConsumerOptions,
        metrics: &Metrics,
    ) {
        let bytes = delivery.body.len();
        metrics.hold_bytes(bytes);
        self.bytes += bytes;
        self.push(decode(delivery, options.max_body_bytes));
    }

    fn push(&mut self, (decoded, acker): (Decoded, Acker)) {
        match decoded {
            Decoded::Event(event) => {
                let ReceivedEvent { row, message } = *event;
                self.rows.push(row);
                self.messages_of_rows.push(message);
            }
            Decoded::DeadLetter(dead_letter) => {
                tracing::warn!(source = %dead_letter.source, reason = %dead_letter.error, "Dead-lettering a message.");
                self.dead_letters.push(dead_letter);
            }
        }
        self.last = Some(acker);
        self.messages += 1;
    }
}

impl Consumer {
    /// A consumer writing to `sink`.
    pub fn new(sink: Arc<dyn EventSink>, options: ConsumerOptions) -> Self {
        Self {
            sink,
            options,
            metrics: Metrics::new(),
        }
    }

    /// Its metrics (shared: they keep counting while it runs).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Prepares the database ([`EventSink::prepare`], waiting out failures that can pass), then runs until
    /// `shutdown` resolves (then: stop taking deliveries, store and ack what is in hand, return) or the
    /// subscription ends. Fails on a database failure only the operator can fix
    /// ([`Error::is_configuration`]), or when the database still fails at the end of the shutdown grace period;
    /// unstored messages stay in the queue. `shutdown` is dropped when this returns.
    pub async fn run(
        self,
        subscription: Box<dyn Subscription>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunSummary> {
        // The one stop signal inside: cancelled when `shutdown` resolves; the batcher, the writer's retries and
        // the HTTP server each watch it.
        let stop = CancellationToken::new();

        let http = match self.options.http {
            Some(addr) => {
                let server = crate::http::serve(
                    addr,
                    self.metrics.clone(),
                    self.sink.clone(),
                    stop.clone().cancelled_owned(),
                )
                .await?;
                Some(AbortOnDrop(tokio::spawn(server)))
            }
            None => None,
        };

        let inflight = Arc::new(Inflight {
            limit: self.options.max_inflight_bytes,
            released: Notify::new(),
            metrics: self.metrics.clone(),
        });
        let (requests_tx, requests_rx) = mpsc::channel(1);
        let mut batcher = AbortOnDrop(tokio::spawn(batcher(
            subscription,
            requests_rx,
            self.options.clone(),
            inflight.clone(),
            stop.clone(),
        )));
        let writer = writer(
            requests_tx,
            self.sink.clone(),
            self.options.clone(),
            inflight,
            stop.clone(),
        );
        // The shutdown future is polled here, not in a task of its own: it ends with this function.
        let written = {
            let mut writer = std::pin::pin!(writer);
            let mut shutdown = std::pin::pin!(shutdown);
            tokio::select! {
                written = &mut writer => written,
                () = &mut shutdown => {
                    stop.cancel();
                    writer.await
                }
            }
        };
        if let Err(error) = written {
            // Nothing is left to acknowledge: stop the batcher wherever it waits, dropping the subscription;
            // the deliveries it held return to the queue.
            drop(batcher);
            return Err(error);
        }
        // The writer has stored and acknowledged everything; the batcher saw no more requests and returns.
        let subscription = (&mut batcher.0)
            .await
            .map_err(|error| Error::Task(error.to_string()))?;
        // Only now, with every ack sent, may the subscription (and its connection) close.
        drop(subscription);
        drop(http);
        let summary = RunSummary {
            events_stored: self.metrics.events_stored(),
            duplicates_skipped: self.metrics.duplicates_skipped(),
            dead_letters: self.metrics.dead_letters(),
        };
        tracing::info!(
            events_stored = summary.events_stored,
            duplicates_skipped = summary.duplicates_skipped,
            dead_letters = summary.dead_letters,
            "Consumer stopped."
        );
        Ok(summary)
    }
}

/// A task that is aborted when its handle is dropped (on every way out of [`Consumer::run`]).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The bytes of message bodies taken from the subscription and not yet acknowledged, against their bound.
struct Inflight {
    limit: usize,
    /// Notified when bytes are released, for a batcher waiting for room.
    released: Notify,
    metrics: Metrics,
}

impl Inflight {
    /// Whether the batcher may take another delivery.
    fn has_room(&self) -> bool {
        self.metrics.inflight_bytes() < self.limit
    }

    /// Releases the bytes of an acknowledged (or abandoned) batch.
    fn release(&self, bytes: usize) {
        self.metrics.release_bytes(bytes);
        self.released.notify_one();
    }
}

/// How often the batcher refreshes the broker health flag.
const HEALTH_TICK: Duration = Duration::from_millis(500);

/// How long the writer waits for an acknowledgement to be sent. One that does not go out in time is treated as
/// lost: the broker redelivers those messages and their duplicates are skipped.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer asks for a batch each time it is idle. Until it asks, the batch in hand keeps growing (up to the
/// batch size): a batch holds what arrived while the previous one committed, which keeps latency low at low
/// rates (tiny batches, committed at once) and throughput high at high rates (full batches, back to back).
type BatchRequest = oneshot::Sender<Batch>;

/// Reads deliveries and cuts batches. Returns the subscription so that it outlives the writer's last ack.
async fn batcher(
    mut subscription: Box<dyn Subscription>,
    mut requests: mpsc::Receiver<BatchRequest>,
    options: ConsumerOptions,
    inflight: Arc<Inflight>,
    stop: CancellationToken,
) -> Result<Box<dyn Subscription>> {
    let metrics = inflight.metrics.clone();
    let mut batch = Batch::default();
    let mut cancelled = false;
    let mut ended = false;
    let mut health = tokio::time::interval(HEALTH_TICK);
    metrics.observe_subscription(subscription.as_ref());
    while !ended {
        // Wait for the first delivery of a batch, and for room for it.
        if batch.messages == 0 {
            let room = inflight.has_room();
            tokio::select! {
                biased;
                () = stop.cancelled(), if !cancelled => {
                    tracing::info!("Shutting down: no new deliveries; storing what is in hand.");
                    cancel(&mut subscription).await;
                    cancelled = true;
                    continue;
                }
                next = subscription.next(), if room => match next {
                    Ok(Some(delivery)) => batch.take(delivery, &options, &metrics),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "Receiving failed; the subscription reconnects.");
                        continue;
                    }
                },
                () = inflight.released.notified(), if !room => continue,
                _ = health.tick() => {
                    metrics.observe_subscription(subscription.as_ref());
                    continue;
                }
            }
        }
        // Take what is waiting already, up to a full batch, the batch timeout or the byte bound.
        let deadline = Instant::now() + options.batch_timeout;
        while batch.messages < options.batch_size
            && Instant::now() < deadline
            && inflight.has_room()
        {
            // Poll once, without a timer: what is not ready now means the queue ran dry.
            match subscription.next().now_or_never() {
                Some(Ok(Some(delivery))) => batch.take(delivery, &options, &metrics),
                Some(Ok(None)) => {
                    ended = true;
                    break;
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "Receiving failed; the subscription reconnects.");
                    break;
                }
                // The queue ran dry: commit now rather than wait out the timeout.
                None => break,
            }
        }
        // Hand the batch over as soon as the writer asks for one; until then keep filling it.
        loop {
            let full = batch.messages >= options.batch_size || !inflight.has_room();
            tokio::select! {
                biased;
                request = requests.recv() => {
                    let Some(request) = request else { return Ok(subscription) };
                    if let Err(unsent) = request.send(std::mem::take(&mut batch)) {
                        batch = unsent;
                        continue;
                    }
                    break;
                }
                () = stop.cancelled(), if !cancelled => {
                    tracing::info!("Shutting down: no new deliveries; storing what is in hand.");
                    cancel(&mut subscription).await;
                    cancelled = true;
                }
                next = subscription.next(), if !full && !ended => match next {
                    Ok(Some(delivery)) => batch.take(delivery, &options, &metrics),
                    Ok(None) => ended = true,
                    Err(error) => tracing::warn!(%error, "Receiving failed; the subscription reconnects."),
                },
                _ = health.tick() => metrics.observe_subscription(subscription.as_ref()),
            }
        }
    }
    if batch.messages > 0
        && let Some(request) = requests.recv().await
    {
        let _ = request.send(batch);
    }
    Ok(subscription)
}

async fn cancel(subscription: &mut Box<dyn Subscription>) {
    if let Err(error) = subscription.cancel().await {
        tracing::warn!(%error, "Cancelling the subscription failed; unacknowledged deliveries return to the queue.");
    }
}

/// Prepares the database, then asks for each batch, stores it (waiting out failures that can pass), then
/// acknowledges it.
async fn writer(
    requests: mpsc::Sender<BatchRequest>,
    sink: Arc<dyn EventSink>,
    options: ConsumerOptions,
    inflight: Arc<Inflight>,
    stop: CancellationToken,
) -> Result<()> {
    let metrics = &inflight.metrics;
    let waiting = Waiting {
        options: &options,
        metrics,
        stop: &stop,
    };
    if let Err(error) = waiting
        .retry("preparing the database", || sink.prepare())
        .await
    {
        tracing::error!(%error, "Cannot prepare the database; deliveries stay in the queue.");
        return Err(error);
    }
    loop {
        let (request, reply) = oneshot::channel();
        if requests.send(request).await.is_err() {
            return Ok(());
        }
        // The batcher drops the request once it has ended and handed over its last batch.
        let Ok(batch) = reply.await else {
            return Ok(());
        };
        let started = Instant::now();
        let newest = batch
            .rows
            .iter()
            .filter_map(|row| row.timestamp)
            .reduce(f64::max);
        let (messages, bytes) = (batch.messages, batch.bytes);
        let stored = match store_batch(
            &*sink,
            batch.rows,
            batch.messages_of_rows,
            batch.dead_letters,
            &waiting,
        )
        .await
        {
            Ok(stored) => stored,
            Err(error) => {
                // Not acked: the broker delivers these again, to this consumer's successor.
                tracing::error!(%error, unstored = messages, "Giving up on the database; unstored messages stay in the queue.");
                inflight.release(bytes);
                return Err(if error.is_transient() {
                    Error::Unstored {
                        events: messages,
                        cause: Box::new(error),
                    }
                } else {
                    error
                });
            }
        };
        metrics.record_batch(
            stored.inserted,
            stored.events,
            stored.dead_letters,
            started.elapsed(),
            newest,
        );
        if let Some(last) = batch.last {
            // A connection that is going down may never answer: the ack is then as good as lost, which is safe.
            match tokio::time::timeout(ACK_TIMEOUT, last.ack_up_to())
                .await
                .unwrap_or(Ok(AckOutcome::Stale))
            {
                Ok(AckOutcome::Acked) => {}
                Ok(AckOutcome::Stale) => {
                    tracing::debug!(
                        "The batch came from a closed channel; the broker redelivers it and duplicates are skipped."
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "Acknowledging a stored batch failed; the broker redelivers it and duplicates are skipped.")
                }
            }
        }
        inflight.release(bytes);
    }
}

/// What storing one batch did.
#[derive(Debug, Default)]
struct Stored {
    /// Events inserted (the others were duplicates).
    inserted: u64,
    /// Events offered to the `events` table.
    events: usize,
    /// Dead letters stored.
    dead_letters: usize,
}

/// Stores one batch, waiting out failures that can pass. If the database refuses the data itself, the events
/// are stored one by one and those it refuses become dead letters, with the database's reason. Any other
/// failure (the configuration's, or one that outlasted the shutdown grace period) is returned.
async fn store_batch(
    sink: &dyn EventSink,
    rows: Vec<EventRow>,
    messages_of_rows: Vec<RawMessage>,
    mut dead_letters: Vec<DeadLetterRow>,
    waiting: &Waiting<'_>,
) -> Result<Stored> {
    match waiting
        .retry("storing a batch", || sink.store(&rows, &dead_letters))
        .await
    {
        Ok(inserted) => {
            return Ok(Stored {
                inserted,
                events: rows.len(),
                dead_letters: dead_letters.len(),
            });
        }
        Err(error) if error.is_refused() => {
            tracing::warn!(%error, "The database refused the batch; storing its events one by one.")
        }
        Err(error) => return Err(error),
    }
    let mut stored = Stored::default();
    for (row, message) in rows.iter().zip(messages_of_rows) {
        let row = std::slice::from_ref(row);
        match waiting
            .retry("storing an event", || sink.store(row, &[]))
            .await
        {
            Ok(inserted) => {
                stored.inserted += inserted;
                stored.events += 1;
            }
            Err(error) if error.is_refused() => {
                dead_letters.push(
                    message.into_dead_letter(format!("the database refused the event: {error}")),
                );
            }
            Err(error) => return Err(error),
        }
    }
    waiting
        .retry("storing dead letters", || sink.store(&[], &dead_letters))
        .await?;
    stored.dead_letters = dead_letters.len();
    Ok(stored)
}

/// The one policy for database failures: wait out what can pass ([`Policy::OUTAGE`]), for as long
/// as the consumer runs (plus the shutdown grace period after a stop signal); report every failure in the
/// health state and the logs with the database's own message.
struct Waiting<'a> {
    options: &'a ConsumerOptions,
    metrics: &'a Metrics,
    stop: &'a CancellationToken,
}

impl Waiting<'_> {
    /// Runs `operation` until it succeeds or fails with an error that cannot pass ([`Error::is_transient`]);
    /// gives up on one that can only once the shutdown grace period after a stop signal has passed.
    async fn retry<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut delays = Policy::OUTAGE.delays();
        let mut give_up_at: Option<Instant> = None;
        let mut attempt = 0u32;
        let started = Instant::now();
        loop {
            match operation().await {
                Ok(value) => {
                    if attempt > 0 {
                        tracing::info!(
                            attempts = attempt + 1,
                            waited_s = started.elapsed().as_secs(),
                            "The database works again."
                        );
                    }
                    self.metrics.set_database_ok();
                    return Ok(value);
                }
                Err(error) => {
                    self.metrics.set_database_failed(error.to_string());
                    if !error.is_transient() {
                        return Err(error);
                    }
                    if self.stop.is_cancelled() {
                        let deadline = *give_up_at
                            .get_or_insert_with(|| Instant::now() + self.options.shutdown_grace);
                        if Instant::now() >= deadline {
                            return Err(error);
                        }
                    }
                    attempt += 1;
                    let delay = delays.next_or_longest();
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        tracing::warn!(
                            %error,
                            attempt,
                            waited_s = started.elapsed().as_secs(),
                            retry_in_ms = delay.as_millis() as u64,
                            "The database fails, for now; {what} again after a pause (deliveries stay unacknowledged)."
                        );
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
