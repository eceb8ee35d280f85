//! The outbox relay: publishes committed events to the broker, in order, and forgets them only once the
//! broker confirmed them.
//!
//! A save records its events in the `outbox` table in the same transaction as the events themselves, so an
//! event is in the outbox if and only if it is committed. The relay, one task per store:
//! 1. opens a transaction and takes the relay lock (`pg_try_advisory_xact_lock`), so that one relay at a time
//!    works on a database and the per-conversation order holds across processes;
//! 2. reads at most `batch_size` entries in `events.id` order (a conversation's saves are serialised by its
//!    lock, so id order is conversation order);
//! 3. hands them to the broker, then waits (bounded) for `flush` — every confirm;
//! 4. deletes them and commits.
//!
//! A crash or a failure anywhere before the commit leaves the entries in place: the next pass (or the next
//! process) publishes them again with the same event ids, which a consumer drops as duplicates. The relay is
//! woken by every save of its store; it also looks every `idle_check` for entries other processes left.

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::EventBroker;
use colloquy_events::{Envelope, Event, EventId, StampedEnvelope};
use sqlx::{PgPool, Row};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

use crate::config::RelayConfig;
use crate::error::{Error, Result};

/// The two-key advisory lock of the relay (a separate key space from the conversations' one-key locks).
const RELAY_LOCK: (i32, i32) = (0x636f_6c6c, 1);

/// The handle of a running relay task; dropping it aborts the task.
pub(crate) struct Relay {
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Relay {
    pub(crate) fn start(pool: PgPool, broker: Arc<dyn EventBroker>, config: RelayConfig) -> Self {
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(pool, broker, config, wake.clone(), stopped));
        Self {
            wake,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Tells the relay that there is something new (a permit is kept if it is busy, so nothing is missed).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops the relay after its current pass and waits for it.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.lock().await.take() {
            task.await.ok();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

async fn run(
    pool: PgPool,
    broker: Arc<dyn EventBroker>,
    config: RelayConfig,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        if *stopped.borrow() {
            return;
        }
        let pause = match relay_batch(&pool, broker.as_ref(), &config).await {
            // A full batch: more may be waiting.
            Ok(published) if published >= config.batch_size as usize => {
                failures = 0;
                continue;
            }
            Ok(published) => {
                if published > 0 {
                    tracing::debug!(published, "Published events from the outbox.");
                }
                failures = 0;
                config.idle_check
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = Duration::from_millis(100)
                    .saturating_mul(1 << failures.min(10))
                    .min(config.max_retry_delay);
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "The outbox relay failed; the events stay in the outbox and will be retried."
                );
                delay
            }
        };
        tokio::select! {
            // After a failure, a save must not cut the back-off short.
            _ = wake.notified(), if failures == 0 => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// One pass: publishes and confirms at most one batch; returns how many events it published.
pub(crate) async fn relay_batch(
    pool: &PgPool,
    broker: &dyn EventBroker,
    config: &RelayConfig,
) -> Result<usize> {
    let db = |action| move |error| Error::database(action, error);
    let mut tx = pool.begin().await.map_err(db("begin a relay pass"))?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
        .bind(RELAY_LOCK.0)
        .bind(RELAY_LOCK.1)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("take the relay lock"))?;
    if !locked {
        // Another process's relay is at work; look again later.
        return Ok(0);
    }
    let rows = sqlx::query(
        "SELECT o.event_row_id::int8 AS row_id, e.sender_id, e.seq, e.event_id, e.data
         FROM outbox o JOIN events e ON e.id = o.event_row_id
         ORDER BY o.event_row_id
         LIMIT $1",
    )
    .bind(i64::from(config.batch_size))
    .fetch_all(&mut *tx)
    .await
    .map_err(db("read the outbox"))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut row_ids = Vec::with_capacity(rows.len());
    let mut runs: Vec<Vec<StampedEnvelope>> = Vec::new();
    for row in &rows {
        let row_id: i64 = row.get("row_id");
        let sender_id: String = row.get("sender_id");
        let seq: Option<i64> = row.get("seq");
        let event_id: Option<String> = row.get("event_id");
        let data: Option<String> = row.get("data");
        let event = Event::from_json(data.unwrap_or_default().as_bytes()).map_err(|source| {
            Error::StoredEvent {
                sender_id: sender_id.clone(),
                row_id,
                source,
            }
        })?;
        let envelope = Envelope { sender_id, event };
        let stamped = match event_id {
            Some(id) => StampedEnvelope {
                envelope,
                id: EventId::from(id),
                seq: seq.map(|seq| seq as u64),
            },
            None => StampedEnvelope::unsequenced(envelope),
        };
        // One `publish_batch` per run of consecutive events of one conversation.
        match runs.last_mut() {
            Some(run) if run[0].envelope.sender_id == stamped.envelope.sender_id => {
                run.push(stamped)
            }
            _ => runs.push(vec![stamped]),
        }
        row_ids.push(row_id);
    }
    let published = row_ids.len();
    let timeout = config.confirm_timeout;
    let confirmed = tokio::time::timeout(timeout, async {
        for run in runs {
            broker.publish_batch(run).await?;
        }
        broker.flush().await
    })
    .await
    .map_err(|_| Error::Timeout {
        what: "publishing and confirming an outbox batch",
        seconds: timeout.as_secs(),
    })?;
    confirmed.map_err(Error::Broker)?;
    sqlx::query("DELETE FROM outbox WHERE event_row_id = ANY($1::int8[])")
        .bind(&row_ids)
        .execute(&mut *tx)
        .await
        .map_err(db("delete confirmed outbox entries"))?;
    tx.commit().await.map_err(db("commit a relay pass"))?;
    Ok(published)
}
