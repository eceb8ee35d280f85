//! The outbox relay: publishes committed events to the broker, in order, and forgets them only once the
//! broker confirmed them.
//!
//! A save records its events in the `outbox` table in the same transaction as the events themselves, so an
//! event is in the outbox if and only if it is committed. The relay, one task per store, repeats one pass
//! ([`Database::relay_outbox`]): take the relay lock (one relay at a time per database, so that the
//! per-conversation order holds across processes; see the storage layer for each dialect's lock), read at most
//! `batch_size` entries in row order (a conversation's saves are serialised by the count guard, so row order is
//! conversation order), hand them to the broker and wait (bounded) for every confirm, then delete them.
//!
//! A crash or a failure anywhere before the delete commits leaves the entries in place: the next pass (or the
//! next process) publishes them again with the same event ids, which a consumer drops as duplicates. The relay
//! is woken by every save of its store; it also looks every `idle_check` for entries other processes left.

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::EventBroker;
use colloquy_events::{Envelope, EventId, StampedEnvelope};
use colloquy_retry::Policy;
use colloquy_storage::{Database, OutboxEntry, RelayError, RelayPass};
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RelayConfig;
use crate::error::{Error, Result};
use crate::sql::parse_stored;

/// The handle of a running relay task; dropping it aborts the task.
pub(crate) struct Relay {
    wake: Arc<Notify>,
    stop: CancellationToken,
    /// How many passes the relay has finished: `drain` looks at the outbox again after each one.
    passes: watch::Receiver<u64>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Relay {
    pub(crate) fn start(
        database: Database,
        broker: Arc<dyn EventBroker>,
        config: RelayConfig,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let (pass_done, passes) = watch::channel(0);
        let task = tokio::spawn(run(
            database,
            broker,
            config,
            wake.clone(),
            stopped,
            pass_done,
        ));
        Self {
            wake,
            stop,
            passes,
            task: Mutex::new(Some(task)),
        }
    }

    /// Tells the relay that there is something new (a permit is kept if it is busy, so nothing is missed).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until the outbox is empty — everything committed so far published and confirmed — or until
    /// `timeout`, then says how many events are left.
    pub(crate) async fn drain(&self, database: &Database, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut passes = self.passes.clone();
        loop {
            passes.borrow_and_update();
            let left = database.outbox_len().await?;
            if left == 0 {
                return Ok(());
            }
            self.wake();
            // The outbox changes only in a relay pass (ours, or another process's, which ours sees as busy
            // within `idle_check`): look again after the next one.
            let relay_ran = tokio::time::timeout_at(deadline, passes.changed()).await;
            if !matches!(relay_ran, Ok(Ok(()))) {
                return Err(Error::Unpublished {
                    events: left,
                    seconds: timeout.as_secs(),
                });
            }
        }
    }

    /// Stops the relay after its current pass and waits for it.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
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
    database: Database,
    broker: Arc<dyn EventBroker>,
    config: RelayConfig,
    wake: Arc<Notify>,
    stopped: CancellationToken,
    pass_done: watch::Sender<u64>,
) {
    let mut failures: u32 = 0;
    // The pauses after failed passes ([`Policy::RELAY`]); started again after a pass that worked.
    let mut retry_delays = None;
    loop {
        if stopped.is_cancelled() {
            return;
        }
        let outcome = relay_batch(&database, broker.as_ref(), &config).await;
        pass_done.send_modify(|passes| *passes += 1);
        let pause = match outcome {
            // A full batch: more may be waiting.
            Ok(published) if published >= config.batch_size as usize => {
                failures = 0;
                retry_delays = None;
                continue;
            }
            Ok(published) => {
                if published > 0 {
                    tracing::debug!(published, "Published events from the outbox.");
                }
                failures = 0;
                retry_delays = None;
                config.idle_check
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = retry_delays
                    .get_or_insert_with(|| {
                        Policy::RELAY
                            .with_max_delay(config.max_retry_delay)
                            .delays()
                    })
                    .next_or_longest();
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
            () = stopped.cancelled() => {}
        }
    }
}

/// One pass: publishes and confirms at most one batch; returns how many events it published.
pub(crate) async fn relay_batch(
    database: &Database,
    broker: &dyn EventBroker,
    config: &RelayConfig,
) -> Result<usize> {
    let pass = database
        .relay_outbox(config.batch_size, async |entries: Vec<OutboxEntry>| {
            let runs = runs_of(entries)?;
            let timeout = config.confirm_timeout;
            tokio::time::timeout(timeout, async {
                for run in runs {
                    broker.publish_batch(run).await?;
                }
                broker.flush().await
            })
            .await
            .map_err(|_| Error::Timeout {
                what: "publishing and confirming an outbox batch",
                seconds: timeout.as_secs(),
            })?
            .map_err(Error::Broker)
        })
        .await;
    match pass {
        Ok(RelayPass::Published(published)) => Ok(published),
        Ok(RelayPass::Busy) => Ok(0),
        Err(RelayError::Storage(error)) => Err(error.into()),
        Err(RelayError::Publish(error)) => Err(error),
    }
}

/// The entries as runs of consecutive events of one conversation (one `publish_batch` each).
fn runs_of(entries: Vec<OutboxEntry>) -> Result<Vec<Vec<StampedEnvelope>>> {
    let mut runs: Vec<Vec<StampedEnvelope>> = Vec::new();
    for entry in entries {
        let OutboxEntry {
            row_id,
            sender_id,
            seq,
            event_id,
            data,
        } = entry;
        let event = parse_stored(&sender_id, row_id, &data)?;
        let envelope = Envelope { sender_id, event };
        let stamped = match event_id {
            Some(id) => StampedEnvelope {
                envelope,
                id: EventId::from(id),
                seq: seq.map(|seq| seq as u64),
            },
            None => StampedEnvelope::unsequenced(envelope),
        };
        match runs.last_mut() {
            Some(run) if run[0].envelope.sender_id == stamped.envelope.sender_id => {
                run.push(stamped)
            }
            _ => runs.push(vec![stamped]),
        }
    }
    Ok(runs)
}
