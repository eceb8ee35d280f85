//! [`RedisStore`]: conversations in Redis under the keys and in the values of Rasa 3.6's
//! `RedisTrackerStore`, new events streamed through an outbox stream in the same Redis.
//!
//! # Keys and values (shared with Rasa)
//! A conversation lives under `<key_prefix><sender_id>` (`tracker:` by default, `<p>:tracker:` for Rasa's
//! `key_prefix: p`), its value is what Rasa writes there: `{"events": [...], "name": <sender_id>}`, every event
//! in Rasa's bytes (`value.rs`), and every save sets Rasa's `record_exp` as the key's expiry. Rasa's
//! `RedisTrackerStore` reads what we save and we read what it saved. `retrieve` returns the latest session by
//! the rule of Rasa's Redis store (from the last `action_session_start`, by position), `retrieve_full`
//! everything. Unlike Rasa's `keys()`, which returns whole Redis keys (`tracker:alice`), ours returns
//! conversation ids (`alice`), as every [`TrackerStore`] does.
//!
//! Besides Rasa's key, we keep two keys of our own, outside Rasa's key space (Rasa's `keys()` does not list
//! them): a small hash `colloquy:meta:<key>` with the event count and byte length of the value we last wrote,
//! and the store's outbox stream `colloquy:outbox:<key_prefix>`.
//!
//! # A save: one round trip, only what changed
//! One Lua script (`save.lua`, atomic like every script): it checks that the conversation holds exactly the
//! events the tracker believes are stored (the count in the hash, trusted only while the value still has the
//! length we recorded and ends as our values end), splices the new events in before the value's closing
//! `], "name": ...}` (`SETRANGE`: the new events are the only event text sent and written), updates the hash,
//! sets the expiry, and appends the events to the outbox stream (`XADD`). A concurrent save of the same
//! conversation either ran before (the count no longer matches: [`Error::Conflict`]) or runs after.
//!
//! A value someone else wrote (Rasa, or us before Rasa appended) has another length: the script says so, and
//! the store reads the value, counts its events, and runs the script again handing it the value it read; the
//! script writes only if the value is still exactly that (the whole value is compared), then the usual
//! splice applies from the next save on. A key holding something that is not a tracker (another Redis type,
//! or a string that is not a Rasa dialogue) fails with [`Error::NotATracker`] naming the key, and nothing is
//! written. A retried save whose first attempt did commit is recognised by the ids of the stored events.
//!
//! # The outbox
//! The script records each save's events in the outbox stream in the same atomic step as the tracker, so an
//! event is in the outbox if and only if it is stored; a relay task publishes the stream in order and deletes
//! entries once the broker confirmed them (`relay.rs`). [`RedisStore::close`] waits (bounded) until everything
//! this store saved is confirmed. Durability is Redis's own: with `appendonly yes` and `appendfsync always` an
//! acknowledged save survives a crash of Redis; with the defaults, Redis may lose its last second.
//!
//! A Redis Cluster is not supported (a save touches the tracker key and the store's stream in one script).

pub mod config;
mod relay;
mod value;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_broker::EventBroker;
use colloquy_events::Tracker;
use colloquy_retry::Policy;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{BoxError, Error, Result};
use crate::store::{TrackerStore, restored};

pub use config::RedisConfig;
use relay::Relay;

/// How long [`RedisStore::close`] waits for the broker to confirm what this store saved.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a save re-reads a value that someone else keeps changing before it reports a conflict.
const ADOPT_ATTEMPTS: usize = 5;

/// Conversations in Redis, shared with Rasa's `RedisTrackerStore`. Cheap to share: wrap it in an `Arc`.
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Keys,
    record_exp_ms: u64,
    save_script: redis::Script,
    relay: Option<Relay>,
    /// The outbox entry id of this store's latest save (stream ids grow; `drain` waits for everything up to
    /// it).
    last_entry: LastEntry,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.keys.prefix)
            .field("relay", &self.relay.is_some())
            .finish_non_exhaustive()
    }
}

/// The names of a store's keys.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    outbox: String,
    relay_lock: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            outbox: format!("colloquy:outbox:{prefix}"),
            relay_lock: format!("colloquy:relay:{prefix}"),
        }
    }

    fn tracker(&self, sender_id: &str) -> String {
        format!("{}{sender_id}", self.prefix)
    }

    fn meta(&self, sender_id: &str) -> String {
        format!("colloquy:meta:{}{sender_id}", self.prefix)
    }
}

impl RedisStore {
    /// Connects (retrying a Redis that is not up yet, `config.connect_attempts` times with exponential
    /// back-off, then failing with [`Error::Unavailable`]) and — with a broker — starts the outbox relay,
    /// which first publishes whatever an earlier process saved but did not get confirmed.
    ///
    /// Without a broker nothing is recorded in the outbox and nothing is streamed.
    pub async fn connect(
        config: &RedisConfig,
        broker: Option<Arc<dyn EventBroker>>,
    ) -> Result<Self> {
        let client = config.client()?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.connect_timeout))
            .set_number_of_retries(2);
        let conn = with_start_up_retries(config, || {
            client.get_connection_manager_with_config(manager_config.clone())
        })
        .await?;
        let keys = Keys::new(config.key_prefix());
        let relay = broker
            .map(|broker| Relay::start(conn.clone(), keys.clone(), broker, config.relay.clone()));
        tracing::info!(target = %config.target(), key_prefix = config.key_prefix(), relay = relay.is_some(), "Redis tracker store connected.");
        Ok(Self {
            conn,
            keys,
            record_exp_ms: config
                .record_exp()
                .map_or(0, |exp| exp.as_millis().max(1) as u64),
            save_script: redis::Script::new(include_str!("save.lua")),
            relay,
            last_entry: LastEntry::default(),
        })
    }

    /// How many saved events wait in the outbox for the broker's confirm (all processes' saves).
    pub async fn outbox_len(&self) -> Result<u64> {
        relay::count_events(&mut self.conn.clone(), &self.keys.outbox, "+").await
    }

    /// Waits until the broker confirmed every event this store saved, at most `timeout`; otherwise fails with
    /// [`Error::Unpublished`], which says how many are left (they stay in the outbox, safe, and are published
    /// by the relay of this or the next store opened on it). Without a broker there is nothing to wait for.
    pub async fn drain(&self, timeout: Duration) -> Result<()> {
        let Some(relay) = &self.relay else {
            return Ok(());
        };
        let Some(last) = self.last_entry.get() else {
            return Ok(());
        };
        relay.drain(&last, timeout).await
    }

    /// [`TrackerStore::close`] with another bound on the wait.
    pub async fn close_within(&self, timeout: Duration) -> Result<()> {
        let drained = self.drain(timeout).await;
        if let Some(relay) = &self.relay {
            relay.stop().await;
        }
        drained
    }

    async fn read(&self, sender_id: &str, latest_only: bool) -> Result<Option<Tracker>> {
        let key = self.keys.tracker(sender_id);
        let value: Option<Vec<u8>> = self
            .conn
            .clone()
            .get(&key)
            .await
            .map_err(|error| wrong_type_or(error, &key, "read a conversation"))?;
        let Some(value) = value else {
            return Ok(None);
        };
        let mut events = value::parse(&key, &value)?;
        let total = events.len() as u64;
        if latest_only {
            events.drain(..value::latest_session_start(&events));
        }
        Ok(Some(restored(sender_id, total, events)))
    }

    /// Runs the save script; `adopt` is the value read and its events, when adopting a value someone else
    /// wrote.
    async fn run_save(
        &self,
        save: &Save<'_>,
        adopt: Option<(&[u8], &str)>,
    ) -> Result<(String, i64, String)> {
        let mut invocation = self.save_script.prepare_invoke();
        invocation
            .key(&save.key)
            .key(self.keys.meta(save.sender_id))
            .key(&self.keys.outbox)
            .arg(save.expected)
            .arg(save.count)
            .arg(&save.fragment)
            .arg(&save.suffix)
            .arg(self.record_exp_ms)
            .arg(if self.relay.is_some() { "1" } else { "0" })
            .arg(save.sender_id)
            .arg(&save.ids);
        match adopt {
            Some((read, replacement)) => invocation.arg(read).arg(save.expected).arg(replacement),
            None => invocation.arg("").arg(0).arg(""),
        };
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|error| redis_error("save a conversation", error))
    }

    /// Whether the events of `save` are stored already at their positions (a retry of a save that went
    /// through although its caller saw an error).
    async fn stored_already(
        &self,
        save: &Save<'_>,
        stamped: &[colloquy_events::StampedEnvelope],
    ) -> Result<bool> {
        let Some(stored) = self.read(save.sender_id, false).await? else {
            return Ok(false);
        };
        let from = save.expected as usize;
        if stored.events().len() != from + stamped.len() {
            return Ok(false);
        }
        let ids = stored.stamp_all();
        Ok(ids[from..]
            .iter()
            .zip(stamped)
            .all(|(stored, new)| stored.id == new.id))
    }
}

/// What one save sends.
struct Save<'a> {
    sender_id: &'a str,
    key: String,
    expected: u64,
    count: usize,
    fragment: String,
    suffix: String,
    ids: String,
}

#[async_trait]
impl TrackerStore for RedisStore {
    async fn retrieve(&self, sender_id: &str) -> Result<Option<Tracker>> {
        self.read(sender_id, true).await
    }

    async fn retrieve_full(&self, sender_id: &str) -> Result<Option<Tracker>> {
        self.read(sender_id, false).await
    }

    async fn save(&self, tracker: &mut Tracker) -> Result<u64> {
        if tracker.events_since_last_save().is_empty() {
            return Ok(0);
        }
        let sender_id = tracker.sender_id().to_owned();
        let stamped = tracker.stamped_since_last_save();
        let save = Save {
            sender_id: &sender_id,
            key: self.keys.tracker(&sender_id),
            expected: tracker.first_seq() + tracker.saved_len() as u64,
            count: stamped.len(),
            fragment: value::events_fragment(&stamped)?,
            suffix: value::suffix(&sender_id),
            ids: stamped
                .iter()
                .map(|event| event.id.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let mut reply = self.run_save(&save, None).await?;
        for _ in 0..ADOPT_ATTEMPTS {
            if reply.0 != "unknown" && reply.0 != "changed" {
                break;
            }
            // A value we did not write last: read it, check it is a tracker, and hand it back to the script.
            let read: Option<Vec<u8>> = self
                .conn
                .clone()
                .get(&save.key)
                .await
                .map_err(|error| wrong_type_or(error, &save.key, "read a conversation"))?;
            let Some(read) = read else {
                reply = self.run_save(&save, None).await?;
                continue;
            };
            let events = value::parse(&save.key, &read)?;
            if events.len() as u64 != save.expected {
                reply = ("conflict".into(), events.len() as i64, String::new());
                break;
            }
            let mut replacement = value::whole_value(&sender_id, &events)?;
            replacement.truncate(replacement.len() - save.suffix.len());
            if !events.is_empty() {
                replacement.push_str(", ");
            }
            replacement.push_str(&save.fragment);
            replacement.push_str(&save.suffix);
            reply = self.run_save(&save, Some((&read, &replacement))).await?;
        }
        match reply.0.as_str() {
            "ok" => {
                tracker.mark_saved();
                if let Some(relay) = &self.relay {
                    self.last_entry.raise(&reply.2);
                    relay.wake();
                }
                Ok(save.count as u64)
            }
            "wrongtype" => Err(Error::NotATracker {
                key: save.key,
                reason: format!("it holds a Redis {}, not a string", reply.2),
            }),
            "conflict" if self.stored_already(&save, &stamped).await? => {
                // Stored (and in the outbox) by an earlier attempt.
                tracker.mark_saved();
                Ok(0)
            }
            "conflict" => Err(Error::Conflict {
                sender_id: sender_id.clone(),
                expected: save.expected,
                stored: reply.1.max(0) as u64,
            }),
            _ => Err(Error::Conflict {
                sender_id: sender_id.clone(),
                expected: save.expected,
                stored: save.expected,
            }),
        }
    }

    async fn keys(&self) -> Result<Vec<String>> {
        let pattern = format!("{}*", glob_escape(&self.keys.prefix));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut ids = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|error| redis_error("list the conversations", error))?;
            ids.extend(
                keys.into_iter()
                    .filter_map(|key| key.strip_prefix(&self.keys.prefix).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice.
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    async fn exists(&self, sender_id: &str) -> Result<bool> {
        self.conn
            .clone()
            .exists(self.keys.tracker(sender_id))
            .await
            .map_err(|error| redis_error("look for a conversation", error))
    }

    /// [`RedisStore::drain`] with [`DEFAULT_CLOSE_TIMEOUT`], then stops the relay. The relay is stopped even
    /// when the drain failed; what it had not published stays in the outbox for the next store.
    async fn close(&self) -> Result<()> {
        self.close_within(DEFAULT_CLOSE_TIMEOUT).await
    }
}

/// The outbox entry id (`<ms>-<seq>`) of a store's latest save, kept so that it only grows.
#[derive(Default)]
struct LastEntry(std::sync::Mutex<Option<(u64, u64)>>);

impl LastEntry {
    fn raise(&self, id: &str) {
        let parsed = id
            .split_once('-')
            .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)));
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if parsed > *last {
            *last = parsed;
        }
    }

    fn get(&self) -> Option<String> {
        let last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.map(|(ms, seq)| format!("{ms}-{seq}"))
    }
}

/// Escapes Redis glob characters.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Redis failure while doing `action`, classified.
pub(crate) fn redis_error(action: &'static str, error: redis::RedisError) -> Error {
    let transient = is_transient(&error);
    Error::Database {
        action,
        source: Box::new(error),
        transient,
    }
}

/// [`redis_error`], except that `WRONGTYPE` (the key holds a hash, a list, ...) is [`Error::NotATracker`].
fn wrong_type_or(error: redis::RedisError, key: &str, action: &'static str) -> Error {
    if error.code() == Some("WRONGTYPE") {
        Error::NotATracker {
            key: key.to_owned(),
            reason: "it holds a Redis value of another type than string".into(),
        }
    } else {
        redis_error(action, error)
    }
}

/// Whether retrying may succeed: the connection was lost or timed out, or the server is loading, busy or
/// failing over.
fn is_transient(error: &redis::RedisError) -> bool {
    use redis::RetryMethod;
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || (error.kind() != redis::ErrorKind::AuthenticationFailed
            && matches!(
                error.retry_method(),
                RetryMethod::Reconnect | RetryMethod::RetryImmediately | RetryMethod::WaitAndRetry
            ))
}

/// Runs `connect` until it succeeds, a non-transient error occurs, or `config.connect_attempts` are used
/// ([`Policy::START_UP`]).
async fn with_start_up_retries<T, F, Fut>(config: &RedisConfig, mut connect: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut delays = Policy::START_UP
        .with_attempts(config.connect_attempts)
        .delays();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error: BoxError = match tokio::time::timeout(config.connect_timeout, connect()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if !is_transient(&error) => {
                return Err(redis_error("connect to Redis", error));
            }
            Ok(Err(error)) => Box::new(error),
            Err(elapsed) => Box::new(elapsed),
        };
        match delays.next() {
            Some(delay) => {
                tracing::warn!(target = %config.target(), attempt, error = %error, "Redis is not reachable yet; retrying.");
                tokio::time::sleep(delay).await;
            }
            None => {
                return Err(Error::Unavailable {
                    target: config.target(),
                    attempts: attempt,
                    source: error,
                });
            }
        }
    }
}
