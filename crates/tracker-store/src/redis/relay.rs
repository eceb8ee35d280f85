//! The Redis store's outbox relay: publishes the outbox stream to the broker, in order, and deletes entries
//! only once the broker confirmed them.
//!
//! Each save appends one entry (`sender`, `seq` of its first event, `ids`, `events` as a JSON array) in the
//! same script that stores the events, so the stream holds exactly the stored, unconfirmed saves, in the
//! order they were stored. The relay, one task per store:
//! 1. takes or renews the relay lease (`SET colloquy:relay:<prefix> <token> NX PX`, renewed by its holder), so
//!    that one relay at a time publishes a stream and the per-conversation order holds across processes;
//! 2. reads at most `batch_size` entries from the start of the stream (`XRANGE`);
//! 3. hands them to the broker, one `publish_batch` per run of one conversation, then waits (bounded) for
//!    `flush` — every confirm;
//! 4. deletes them (`XDEL`).
//!
//! A crash or a failure anywhere before the delete leaves the entries in place: the next pass (or the next
//! process, once the lease expired) publishes them again with the same event ids, which a consumer drops as
//! duplicates. The relay is woken by every save of its store and also looks every `idle_check`.

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::EventBroker;
use colloquy_events::{Envelope, Event, EventId, StampedEnvelope};
use colloquy_retry::Policy;
use redis::aio::ConnectionManager;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Keys, redis_error};
use crate::config::RelayConfig;
use crate::error::{Error, Result};

/// Takes the lease if it is free, renews it if we hold it. Returns 1 when we hold it.
const TAKE_LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// Gives the lease up if we hold it.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// The handle of a running relay task; dropping it aborts the task.
pub(crate) struct Relay {
    conn: ConnectionManager,
    keys: Keys,
    wake: Arc<Notify>,
    stop: CancellationToken,
    /// Counts finished passes, so that `drain` waits for the relay instead of polling on a timer.
    passes: watch::Receiver<u64>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Relay {
    pub(crate) fn start(
        conn: ConnectionManager,
        keys: Keys,
        broker: Arc<dyn EventBroker>,
        config: RelayConfig,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let (pass_done, passes) = watch::channel(0);
        let worker = Worker {
            conn: conn.clone(),
            keys: keys.clone(),
            broker,
            token: lease_token(),
            lease: redis::Script::new(TAKE_LEASE),
            config,
        };
        let task = tokio::spawn(worker.run(wake.clone(), stopped, pass_done));
        Self {
            conn,
            keys,
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

    /// Waits until no outbox entry up to `last` (an entry id) is left, at most `timeout`.
    pub(crate) async fn drain(&self, last: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut passes = self.passes.clone();
        let mut conn = self.conn.clone();
        loop {
            passes.borrow_and_update();
            let left = count_events(&mut conn, &self.keys.outbox, last).await?;
            if left == 0 {
                return Ok(());
            }
            self.wake();
            let relay_ran = tokio::time::timeout_at(deadline, passes.changed()).await;
            if !matches!(relay_ran, Ok(Ok(()))) {
                return Err(Error::Unpublished {
                    events: left,
                    seconds: timeout.as_secs(),
                });
            }
        }
    }

    /// Stops the relay after its current pass, waits for it, and gives its lease up.
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

/// How many events the outbox entries up to `last` (an entry id, or `+` for all) hold.
pub(crate) async fn count_events(
    conn: &mut ConnectionManager,
    outbox: &str,
    last: &str,
) -> Result<u64> {
    const PAGE: usize = 1000;
    let mut start = "-".to_owned();
    let mut events = 0u64;
    loop {
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(outbox)
            .arg(&start)
            .arg(last)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await
            .map_err(|error| redis_error("count the outbox", error))?;
        for (_, fields) in &entries {
            let ids = field(fields, "ids").unwrap_or_default();
            events += ids
                .split(|&b| b == b' ')
                .filter(|id| !id.is_empty())
                .count() as u64;
        }
        match entries.last() {
            Some((id, _)) if entries.len() == PAGE => start = format!("({id}"),
            _ => return Ok(events),
        }
    }
}

struct Worker {
    conn: ConnectionManager,
    keys: Keys,
    broker: Arc<dyn EventBroker>,
    token: String,
    lease: redis::Script,
    config: RelayConfig,
}

impl Worker {
    async fn run(
        self,
        wake: Arc<Notify>,
        stopped: CancellationToken,
        pass_done: watch::Sender<u64>,
    ) {
        let mut failures: u32 = 0;
        // The pauses after failed passes ([`Policy::RELAY`]); started again after a pass that worked.
        let mut retry_delays = None;
        loop {
            if stopped.is_cancelled() {
                break;
            }
            let result = self.pass().await;
            pass_done.send_modify(|passes| *passes += 1);
            let pause = match result {
                // A full batch: more may be waiting.
                Ok(entries) if entries >= self.config.batch_size as usize => {
                    failures = 0;
                    retry_delays = None;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    retry_delays = None;
                    self.config.idle_check
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delays
                        .get_or_insert_with(|| {
                            Policy::RELAY
                                .with_max_delay(self.config.max_retry_delay)
                                .delays()
                        })
                        .next_or_longest();
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "The Redis outbox relay failed; the events stay in the outbox and will be retried."
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
        let released: redis::RedisResult<i64> = redis::Script::new(RELEASE_LEASE)
            .key(&self.keys.relay_lock)
            .arg(&self.token)
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(error) = released {
            tracing::debug!(%error, "Could not release the relay lease; it expires by itself.");
        }
    }

    /// One pass: publishes and confirms at most one batch of entries; returns how many entries it handled.
    async fn pass(&self) -> Result<usize> {
        let mut conn = self.conn.clone();
        let lease_ms = (self.config.confirm_timeout * 2).as_millis() as u64;
        let held: i64 = self
            .lease
            .key(&self.keys.relay_lock)
            .arg(&self.token)
            .arg(lease_ms.max(1000))
            .invoke_async(&mut conn)
            .await
            .map_err(|error| redis_error("take the relay lease", error))?;
        if held == 0 {
            // Another process's relay is at work; look again later.
            return Ok(0);
        }
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(&self.keys.outbox)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(self.config.batch_size.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|error| redis_error("read the outbox", error))?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut runs: Vec<Vec<StampedEnvelope>> = Vec::new();
        for (id, fields) in &entries {
            let events = decode_entry(fields).map_err(|reason| Error::Database {
                action: "read the outbox",
                source: format!(
                    "entry {id} of `{}` is not readable: {reason}",
                    self.keys.outbox
                )
                .into(),
                transient: false,
            })?;
            match runs.last_mut() {
                Some(run) if run[0].envelope.sender_id == events[0].envelope.sender_id => {
                    run.extend(events)
                }
                _ => runs.push(events),
            }
        }
        let timeout = self.config.confirm_timeout;
        let confirmed = tokio::time::timeout(timeout, async {
            for run in runs {
                self.broker.publish_batch(run).await?;
            }
            self.broker.flush().await
        })
        .await
        .map_err(|_| Error::Timeout {
            what: "publishing and confirming an outbox batch",
            seconds: timeout.as_secs(),
        })?;
        confirmed.map_err(Error::Broker)?;
        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        let _: u64 = redis::cmd("XDEL")
            .arg(&self.keys.outbox)
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .map_err(|error| redis_error("delete confirmed outbox entries", error))?;
        tracing::debug!(
            entries = entries.len(),
            "Published saves from the Redis outbox."
        );
        Ok(entries.len())
    }
}

/// The value of `name` in an entry's flat field list.
fn field<'a>(fields: &'a [Vec<u8>], name: &str) -> Option<&'a [u8]> {
    fields
        .chunks_exact(2)
        .find(|pair| pair[0] == name.as_bytes())
        .map(|pair| pair[1].as_slice())
}

/// The stamped events of one outbox entry (one save of one conversation).
fn decode_entry(fields: &[Vec<u8>]) -> std::result::Result<Vec<StampedEnvelope>, String> {
    let text = |name: &str| {
        field(fields, name)
            .and_then(|value| std::str::from_utf8(value).ok())
            .ok_or_else(|| format!("no `{name}` field"))
    };
    let sender_id = text("sender")?;
    let seq: u64 = text("seq")?
        .parse()
        .map_err(|_| "`seq` is not a number".to_owned())?;
    let ids: Vec<&str> = text("ids")?.split(' ').collect();
    let events: Vec<serde_json::Value> =
        serde_json::from_slice(field(fields, "events").ok_or("no `events` field")?)
            .map_err(|error| format!("`events`: {error}"))?;
    if events.is_empty() || events.len() != ids.len() {
        return Err(format!("{} events for {} ids", events.len(), ids.len()));
    }
    events
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (event, id))| {
            let event = Event::from_value(event).map_err(|error| format!("event {i}: {error}"))?;
            Ok(StampedEnvelope {
                envelope: Envelope {
                    sender_id: sender_id.to_owned(),
                    event,
                },
                id: EventId::from(id.to_owned()),
                seq: Some(seq + i as u64),
            })
        })
        .collect()
}

/// A token that tells this relay's lease from any other's.
fn lease_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}
