//! What the consumer counts, and its Prometheus text form.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use colloquy_broker::{ConsumerRole, Subscription};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The consumer's counters and health. Cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events_stored: Counter,
    duplicates_skipped: Counter,
    dead_letters: Counter,
    batches: Counter,
    batch_seconds: Histogram,
    lag_seconds: Gauge<f64, AtomicU64>,
    broker_connected: Gauge,
    database_connected: Gauge,
    inflight_bytes: Gauge,
    consumer_active: Gauge,
    broker_ready: AtomicBool,
    standby: AtomicBool,
    /// Why the last attempt to store a batch (or prepare the database) failed; `None` once one succeeded.
    database_failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("events_stored", &self.events_stored())
            .field("duplicates_skipped", &self.duplicates_skipped())
            .field("dead_letters", &self.dead_letters())
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero, not connected.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("colloquy");
        let inner = Inner {
            events_stored: Counter::default(),
            duplicates_skipped: Counter::default(),
            dead_letters: Counter::default(),
            batches: Counter::default(),
            // 0.5 ms .. ~16 s
            batch_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            lag_seconds: Gauge::default(),
            broker_connected: Gauge::default(),
            database_connected: Gauge::default(),
            inflight_bytes: Gauge::default(),
            consumer_active: Gauge::default(),
            broker_ready: AtomicBool::new(false),
            standby: AtomicBool::new(false),
            database_failure: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "events_stored",
            "Events inserted into the events table",
            inner.events_stored.clone(),
        );
        registry.register(
            "duplicates_skipped",
            "Events not inserted because their event_id was stored already (redeliveries, re-sends)",
            inner.duplicates_skipped.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages stored in dead_letters instead of events",
            inner.dead_letters.clone(),
        );
        registry.register("batches", "Transactions committed", inner.batches.clone());
        registry.register(
            "batch_commit_seconds",
            "Time to store and commit one batch, retries included",
            inner.batch_seconds.clone(),
        );
        registry.register(
            "lag_seconds",
            "Now minus the timestamp of the newest event stored in the last batch",
            inner.lag_seconds.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while connected to the broker",
            inner.broker_connected.clone(),
        );
        registry.register(
            "database_connected",
            "1 once the database is prepared and while batches commit; 0 from a failed attempt until the next commit",
            inner.database_connected.clone(),
        );
        registry.register(
            "inflight_bytes",
            "Bytes of message bodies taken from the broker and not yet acknowledged",
            inner.inflight_bytes.clone(),
        );
        registry.register(
            "consumer_active",
            "1 while this instance is the active consumer of its queues, 0 while it waits as a standby (one \
             active consumer per queue)",
            inner.consumer_active.clone(),
        );
        Self {
            inner: Arc::new(Inner { registry, ..inner }),
        }
    }

    /// Records a committed batch.
    pub(crate) fn record_batch(
        &self,
        inserted: u64,
        events: usize,
        dead_letters: usize,
        took: Duration,
        newest: Option<f64>,
    ) {
        let duplicates = (events as u64).saturating_sub(inserted);
        self.inner.events_stored.inc_by(inserted);
        self.inner.duplicates_skipped.inc_by(duplicates);
        self.inner.dead_letters.inc_by(dead_letters as u64);
        self.inner.batches.inc();
        self.inner.batch_seconds.observe(took.as_secs_f64());
        if let Some(newest) = newest {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.inner.lag_seconds.set((now - newest).max(0.0));
        }
    }

    /// Records whether the subscription is connected, and its role.
    pub(crate) fn observe_subscription(&self, subscription: &dyn Subscription) {
        let ready = subscription.is_ready();
        self.inner.broker_ready.store(ready, Ordering::Relaxed);
        self.inner.broker_connected.set(i64::from(ready));
        let role = subscription.role();
        self.inner
            .standby
            .store(role == ConsumerRole::Standby, Ordering::Relaxed);
        self.inner
            .consumer_active
            .set(i64::from(role == ConsumerRole::Active));
    }

    /// Whether this instance consumes or waits as a standby, at the last check.
    pub fn role(&self) -> ConsumerRole {
        if self.inner.standby.load(Ordering::Relaxed) {
            ConsumerRole::Standby
        } else {
            ConsumerRole::Active
        }
    }

    /// Records that the database committed (or prepared) what was asked: it is healthy again.
    pub(crate) fn set_database_ok(&self) {
        *self.database_failure_slot() = None;
        self.inner.database_connected.set(1);
    }

    /// Records that storing failed, with the database's own message: unhealthy until the next commit.
    pub(crate) fn set_database_failed(&self, message: String) {
        *self.database_failure_slot() = Some(message);
        self.inner.database_connected.set(0);
    }

    fn database_failure_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic elsewhere cannot leave an `Option<String>` half-written: use the value as it is.
        self.inner
            .database_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `bytes` to the bytes held (taken from the broker, not yet acknowledged).
    pub(crate) fn hold_bytes(&self, bytes: usize) {
        self.inner
            .inflight_bytes
            .inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Removes `bytes` from the bytes held (acknowledged, or handed back to the broker).
    pub(crate) fn release_bytes(&self, bytes: usize) {
        self.inner
            .inflight_bytes
            .dec_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Bytes of message bodies taken from the broker and not yet acknowledged (the batch filling and the batch
    /// being stored).
    pub fn inflight_bytes(&self) -> usize {
        usize::try_from(self.inner.inflight_bytes.get()).unwrap_or_default()
    }

    /// Whether the broker was connected at the last check.
    pub fn broker_ready(&self) -> bool {
        self.inner.broker_ready.load(Ordering::Relaxed)
    }

    /// Whether batches are being committed: false from a failed attempt to store a batch (or to prepare the
    /// database) until the next commit.
    pub fn database_ready(&self) -> bool {
        self.database_failure().is_none()
    }

    /// Why the last attempt to store failed, in the database's own words, while no batch was committed since.
    pub fn database_failure(&self) -> Option<String> {
        self.database_failure_slot().clone()
    }

    /// Events inserted so far.
    pub fn events_stored(&self) -> u64 {
        self.inner.events_stored.get()
    }

    /// Events skipped as duplicates so far.
    pub fn duplicates_skipped(&self) -> u64 {
        self.inner.duplicates_skipped.get()
    }

    /// Dead letters stored so far.
    pub fn dead_letters(&self) -> u64 {
        self.inner.dead_letters.get()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // tidy: allow(unwrap) `fmt::Write` for `String` never fails.
        encode(&mut text, &self.inner.registry).expect("writing to a String cannot fail");
        text
    }
}
