//! The consumer's two tasks: the batcher reads deliveries and cuts batches; the writer stores each batch in one
//! transaction, then acknowledges it with one multiple-ack. They run concurrently, so the next batch fills
//! while the previous one commits; a bounded channel of one batch between them keeps memory bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use colloquy_broker::{AckOutcome, Acker, Subscription};
use colloquy_tracker_store::schema::{DeadLetterRow, EventRow};
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::database::EventSink;
use crate::decode::{Decoded, RawMessage, ReceivedEvent, decode};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// How the consumer batches, bounds and stops.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Most events in one transaction.
    pub batch_size: usize,
    /// Longest a batch keeps filling while deliveries keep arriving; a batch is handed to the writer as soon as
    /// no further delivery is waiting (the queue ran dry), so at low rates events do not wait this long.
    pub batch_timeout: Duration,
    /// Bodies larger than this are dead-lettered instead of stored as events.
    pub max_body_bytes: usize,
    /// After a shutdown signal, how long the writer keeps retrying a database that does not answer.
    pub shutdown_grace: Duration,
    /// Where to serve `/health` and `/metrics`, if anywhere.
    pub http: Option<SocketAddr>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            batch_timeout: Duration::from_millis(50),
            max_body_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            http: None,
        }
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
}

impl Batch {
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

    /// Runs until `shutdown` resolves (then: stop taking deliveries, store and ack what is in hand, return) or
    /// the subscription ends.
    pub async fn run(
        self,
        subscription: Box<dyn Subscription>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunSummary> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let http = match self.options.http {
            Some(addr) => {
                let mut stop = stop_rx.clone();
                let server =
                    crate::http::serve(addr, self.metrics.clone(), self.sink.clone(), async move {
                        stopped(&mut stop).await;
                    })
                    .await?;
                Some(tokio::spawn(server))
            }
            None => None,
        };

        let (requests_tx, requests_rx) = mpsc::channel(1);
        let batcher = tokio::spawn(batcher(
            subscription,
            requests_rx,
            self.options.clone(),
            self.metrics.clone(),
            stop_rx.clone(),
        ));
        let written = writer(
            requests_tx,
            self.sink.clone(),
            self.options.clone(),
            self.metrics.clone(),
            stop_rx,
        )
        .await;
        // The writer stops early only on failure; the batcher then sees no more requests and returns.
        let subscription = batcher
            .await
            .map_err(|error| Error::Task(error.to_string()))?;
        // Only now, with every ack sent, may the subscription (and its connection) close.
        drop(subscription);
        if let Some(http) = http {
            http.abort();
        }
        written?;
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
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) -> Result<Box<dyn Subscription>> {
    let mut batch = Batch::default();
    let mut cancelled = false;
    let mut ended = false;
    let mut health = tokio::time::interval(HEALTH_TICK);
    metrics.observe_subscription(subscription.as_ref());
    while !ended {
        // Wait for the first delivery of a batch.
        if batch.messages == 0 {
            tokio::select! {
                biased;
                _ = stopped(&mut stop), if !cancelled => {
                    tracing::info!("Shutting down: no new deliveries; storing what is in hand.");
                    cancel(&mut subscription).await;
                    cancelled = true;
                    continue;
                }
                next = subscription.next() => match next {
                    Ok(Some(delivery)) => batch.push(decode(delivery, options.max_body_bytes)),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "Receiving failed; the subscription reconnects.");
                        continue;
                    }
                },
                _ = health.tick() => {
                    metrics.observe_subscription(subscription.as_ref());
                    continue;
                }
            }
        }
        // Take what is waiting already, up to a full batch or the batch timeout.
        let deadline = Instant::now() + options.batch_timeout;
        while batch.messages < options.batch_size && Instant::now() < deadline {
            // Poll once, without a timer: what is not ready now means the queue ran dry.
            match subscription.next().now_or_never() {
                Some(Ok(Some(delivery))) => batch.push(decode(delivery, options.max_body_bytes)),
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
            let full = batch.messages >= options.batch_size;
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
                _ = stopped(&mut stop), if !cancelled => {
                    tracing::info!("Shutting down: no new deliveries; storing what is in hand.");
                    cancel(&mut subscription).await;
                    cancelled = true;
                }
                next = subscription.next(), if !full && !ended => match next {
                    Ok(Some(delivery)) => batch.push(decode(delivery, options.max_body_bytes)),
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

/// Resolves once the stop signal was given.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here rather than hold it in a `select!`.
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}

async fn cancel(subscription: &mut Box<dyn Subscription>) {
    if let Err(error) = subscription.cancel().await {
        tracing::warn!(%error, "Cancelling the subscription failed; unacknowledged deliveries return to the queue.");
    }
}

/// Asks for each batch, stores it (retrying while the database is unreachable), then acknowledges it.
async fn writer(
    requests: mpsc::Sender<BatchRequest>,
    sink: Arc<dyn EventSink>,
    options: ConsumerOptions,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
) -> Result<()> {
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
        let messages = batch.messages;
        let stored = match store_with_retry(
            &*sink,
            batch.rows,
            batch.messages_of_rows,
            batch.dead_letters,
            &options,
            &metrics,
            &stop,
        )
        .await
        {
            Ok(stored) => stored,
            Err(error) => {
                // Not acked: the broker delivers these again, to this consumer's successor.
                tracing::error!(%error, unstored = messages, "Giving up on the database; unstored messages stay in the queue.");
                return Err(Error::Unstored { events: messages });
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

/// Stores one batch. Transient failures (the database is down or busy) are retried with capped exponential
/// backoff for as long as the consumer runs, plus the shutdown grace period after a stop signal. If the
/// database refuses the data itself, the events are stored one by one and those it refuses become dead letters.
async fn store_with_retry(
    sink: &dyn EventSink,
    rows: Vec<EventRow>,
    messages_of_rows: Vec<RawMessage>,
    mut dead_letters: Vec<DeadLetterRow>,
    options: &ConsumerOptions,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
) -> Result<Stored> {
    match retry_transient(|| sink.store(&rows, &dead_letters), options, metrics, stop).await {
        Ok(inserted) => {
            return Ok(Stored {
                inserted,
                events: rows.len(),
                dead_letters: dead_letters.len(),
            });
        }
        Err(error) if error.is_transient() => return Err(error),
        Err(error) => {
            tracing::warn!(%error, "The database refused the batch; storing its events one by one.")
        }
    }
    let mut stored = Stored::default();
    for (row, message) in rows.iter().zip(messages_of_rows) {
        let row = std::slice::from_ref(row);
        match retry_transient(|| sink.store(row, &[]), options, metrics, stop).await {
            Ok(inserted) => {
                stored.inserted += inserted;
                stored.events += 1;
            }
            Err(error) if error.is_transient() => return Err(error),
            Err(error) => {
                let reason = match &error {
                    Error::Database(sqlx::Error::Database(db)) => {
                        format!("the database refused the event: {}", db.message())
                    }
                    other => format!("the database refused the event: {other}"),
                };
                dead_letters.push(message.into_dead_letter(reason));
            }
        }
    }
    retry_transient(|| sink.store(&[], &dead_letters), options, metrics, stop).await?;
    stored.dead_letters = dead_letters.len();
    Ok(stored)
}

/// Runs `operation` until it succeeds or fails with a non-transient error; gives up on transient errors only
/// once the shutdown grace period after a stop signal has passed.
async fn retry_transient<T, F, Fut>(
    mut operation: F,
    options: &ConsumerOptions,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    let mut give_up_at: Option<Instant> = None;
    let mut attempt = 0u32;
    loop {
        match operation().await {
            Ok(value) => {
                if attempt > 0 {
                    tracing::info!(attempts = attempt + 1, "The database answers again.");
                }
                metrics.set_database_ready(true);
                return Ok(value);
            }
            Err(error) if error.is_transient() => {
                metrics.set_database_ready(false);
                if *stop.borrow() {
                    let deadline =
                        *give_up_at.get_or_insert_with(|| Instant::now() + options.shutdown_grace);
                    if Instant::now() >= deadline {
                        return Err(error);
                    }
                }
                attempt += 1;
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "The database is unavailable; retrying the batch.");
                }
                tokio::time::sleep(delay).await;
            }
            Err(error) => return Err(error),
        }
    }
}
