//! `colloquy import`: conversations from a file into a tracker store, which streams their events to RabbitMQ.
//!
//! A reader thread parses the input in chunks ([`crate::input`]) while this task saves the previous chunk:
//! per chunk, events are grouped by conversation (keeping their order) and each conversation is saved once
//! (in slices of at most [`SAVE_MAX`] events), so memory stays bounded by the chunk size (the `memory` store
//! is a [`StreamingStore`], which keeps only counts).
//!
//! The broker is configured to fail rather than wait when its buffer is full; the import then waits until
//! RabbitMQ confirmed half of what is in flight and saves again (the stores accept a retried save). While
//! waiting it also watches `flush`, whose failure means RabbitMQ stayed unreachable for the configured number
//! of attempts: the import stops and names the events RabbitMQ did not confirm.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use colloquy_broker::{AmqpBroker, EventBroker};
use colloquy_events::Event;
use colloquy_tracker_store::{RedisConfig, RedisStore, SqlConfig, SqlStore, TrackerStore};
use tokio::sync::mpsc;

use crate::cli::ImportArgs;
use crate::input::{InputError, InputReader, Record};
use crate::progress::{Progress, Unit, rate};
use crate::settings::Endpoints;
use crate::streaming_store::StreamingStore;

/// How often the import looks whether the outbox relay has published everything (after a flush).
const OUTBOX_POLL: Duration = Duration::from_millis(20);

/// Events read per chunk.
pub const CHUNK: usize = 5_000;
/// The most events handed to the store in one save (well under the broker's buffer, so that a save always
/// fits once the buffer is drained).
pub const SAVE_MAX: usize = 1_000;
/// How many unconfirmed lines an error message lists.
const LINES_SHOWN: usize = 20;

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    /// Events published and confirmed.
    pub events: u64,
    /// Conversations they belong to.
    pub conversations: u64,
}

/// Runs `colloquy import`.
pub async fn run(args: ImportArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let config = super::producer_config(&args.broker, &args.publish, endpoints, "import")?;
    let reader =
        InputReader::open(&args.file).map_err(|error| super::ConfigError(error.to_string()))?;
    let total_bytes = file_size(&args.file);
    let store = StoreChoice::parse(&args.tracker_store)?;
    let broker = Arc::new(super::connect_broker(config).await?);
    let progress = Progress::new(args.publish.progress, "Imported", Unit::Bytes, total_bytes);
    let summary = import(reader, store, broker, &progress).await?;
    progress.finish();
    let elapsed = progress.elapsed();
    tracing::info!(
        events = summary.events,
        conversations = summary.conversations,
        seconds = elapsed.as_secs_f64(),
        events_per_second = rate(summary.events, elapsed) as u64,
        "Import finished; RabbitMQ confirmed every event."
    );
    Ok(())
}

/// Where the import saves conversations.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// [`StreamingStore`]: streams, keeps only each conversation's event count.
    Memory,
    /// [`SqlStore`] at this database URL (PostgreSQL, MySQL/MariaDB or SQLite).
    Sql(String),
    /// [`RedisStore`] with these settings.
    Redis(RedisConfig),
}

impl StoreChoice {
    /// Reads `--tracker-store`.
    pub fn parse(text: &str) -> Result<Self> {
        if text == "memory" {
            return Ok(Self::Memory);
        }
        if colloquy_storage::Dialect::of_url(text).is_ok() {
            return Ok(Self::Sql(text.to_owned()));
        }
        if text.starts_with("redis") {
            let config = RedisConfig::from_url(text)
                .map_err(|error| super::ConfigError(error.to_string()))?;
            return Ok(Self::Redis(config));
        }
        Err(super::ConfigError(format!(
            "--tracker-store must be `memory`, a database URL (postgres://user:password@host:port/db, \
             mysql://user:password@host:port/db or sqlite://path) or a Redis URL \
             (redis://[:password@]host:port/db[?key_prefix=P&record_exp=SECONDS]), not `{}`",
            colloquy_storage::redact(text)
        ))
        .into())
    }
}

/// Imports everything `reader` yields through a store of `choice` that streams to `broker`, and closes the
/// broker once every event is confirmed.
pub async fn import(
    reader: InputReader,
    choice: StoreChoice,
    broker: Arc<AmqpBroker>,
    progress: &Progress,
) -> Result<ImportSummary> {
    let mut redis: Option<Arc<RedisStore>> = None;
    let (store, postgres): (Arc<dyn TrackerStore>, Option<Arc<SqlStore>>) = match &choice {
        StoreChoice::Memory => (Arc::new(StreamingStore::new(broker.clone())), None),
        StoreChoice::Redis(config) => {
            let store = Arc::new(
                RedisStore::connect(config, Some(broker.clone()))
                    .await
                    .map_err(super::tracker_store_error)
                    .with_context(|| {
                        format!("cannot open the tracker store at {}", config.target())
                    })?,
            );
            redis = Some(store.clone());
            (store, None)
        }
        StoreChoice::Sql(url) => {
            let config =
                SqlConfig::from_url(url).map_err(|error| super::ConfigError(error.to_string()))?;
            let store = Arc::new(
                SqlStore::connect(&config, Some(broker.clone()))
                    .await
                    .map_err(super::tracker_store_error)
                    .with_context(|| {
                        format!("cannot open the tracker store at {}", config.target())
                    })?,
            );
            (store.clone(), Some(store))
        }
    };

    let (chunks, mut receiver) = mpsc::channel::<(Result<Vec<Record>, InputError>, u64)>(1);
    let reading = std::thread::spawn(move || {
        let mut reader = reader;
        loop {
            let chunk = reader.next_chunk(CHUNK);
            let done = !matches!(&chunk, Ok(records) if !records.is_empty());
            if chunks.blocking_send((chunk, reader.bytes_read())).is_err() || done {
                return;
            }
        }
    });

    // The lines of the events handed to the broker and not known to be confirmed, in hand-over order (the
    // broker confirms in that order). Only the in-memory store hands over directly.
    let mut unconfirmed_lines: VecDeque<u64> = VecDeque::new();
    let mut conversations: HashSet<String> = HashSet::new();
    let mut events = 0u64;
    // Ok(Some(error)): the input has a bad record; everything before it is published, then the error.
    let outcome: Result<Option<anyhow::Error>> = async {
        while let Some((chunk, bytes_read)) = receiver.recv().await {
            let records = match chunk {
                Ok(records) => records,
                Err(error @ InputError::Invalid { .. }) => {
                    return Ok(Some(anyhow!(
                        "{error}. The import stopped at that line; every event before it was published and \
                         confirmed. Fix the line and run the import again: events keep their ids, so a \
                         colloquy consumer stores each once"
                    )));
                }
                Err(error @ InputError::Io { .. }) => return Err(anyhow!(error)),
            };
            if records.is_empty() {
                break;
            }
            let count = records.len() as u64;
            for (sender_id, batch) in group_by_conversation(records) {
                let mut outage = super::Outage::default();
                let mut tracker = loop {
                    match store.get_or_create(&sender_id).await {
                        Ok(tracker) => break tracker,
                        Err(error) if error.is_transient() => {
                            outage
                                .wait(&error, "The tracker store failed; retrying the read.")
                                .await?;
                        }
                        Err(error) => {
                            return Err(anyhow!(error)).with_context(|| {
                                format!("cannot read conversation `{sender_id}` from the tracker store")
                            });
                        }
                    }
                };
                let mut batch = batch.into_iter().peekable();
                while batch.peek().is_some() {
                    let mut lines = Vec::with_capacity(SAVE_MAX);
                    for (line, event) in batch.by_ref().take(SAVE_MAX) {
                        lines.push(line);
                        tracker.apply(event);
                    }
                    save(store.as_ref(), &broker, &mut tracker, &lines, &unconfirmed_lines).await?;
                    if matches!(choice, StoreChoice::Memory) {
                        unconfirmed_lines.extend(lines);
                    }
                }
                conversations.insert(sender_id);
            }
            events += count;
            // Forget the lines RabbitMQ confirmed already.
            let unconfirmed = broker.unconfirmed() as usize;
            while unconfirmed_lines.len() > unconfirmed {
                unconfirmed_lines.pop_front();
            }
            progress.advance(count, bytes_read);
        }
        Ok(None)
    }
    .await;
    drop(receiver);
    let _ = reading.join();
    let bad_input = match outcome {
        Ok(bad_input) => bad_input,
        Err(error) => {
            if let Some(redis) = &redis {
                let _ = redis.close_within(Duration::ZERO).await;
            }
            abandon(&broker, postgres.as_deref()).await;
            return Err(error);
        }
    };

    if let Some(postgres) = &postgres {
        wait_for_outbox(postgres, &broker).await?;
        postgres.close().await?;
    }
    if let Some(redis) = &redis {
        redis.close_within(super::OUTAGE_LIMIT).await.map_err(|error| {
            anyhow!(
                "{error}: run `colloquy import --file /dev/null --tracker-store URL` with the same store once \
                 RabbitMQ answers"
            )
        })?;
    }
    if let Err(error) = broker.close().await {
        let unconfirmed = broker.unconfirmed() as usize;
        while unconfirmed_lines.len() > unconfirmed {
            unconfirmed_lines.pop_front();
        }
        return Err(not_confirmed(&unconfirmed_lines, None, &error));
    }
    if let Some(error) = bad_input {
        return Err(error);
    }
    Ok(ImportSummary {
        events,
        conversations: conversations.len() as u64,
    })
}

/// Groups a chunk by conversation, in order of first appearance, each conversation's events in input order.
fn group_by_conversation(records: Vec<Record>) -> Vec<(String, Vec<(u64, Event)>)> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(String, Vec<(u64, Event)>)> = Vec::new();
    for record in records {
        let slot = match index.get(&record.sender_id) {
            Some(&slot) => slot,
            None => {
                index.insert(record.sender_id.clone(), groups.len());
                groups.push((record.sender_id, Vec::new()));
                groups.len() - 1
            }
        };
        groups[slot].1.push((record.line, record.event));
    }
    groups
}

/// Saves, waiting for the broker's confirms when its buffer is full.
async fn save(
    store: &dyn TrackerStore,
    broker: &AmqpBroker,
    tracker: &mut colloquy_events::Tracker,
    lines: &[u64],
    unconfirmed_lines: &VecDeque<u64>,
) -> Result<()> {
    let mut outage = super::Outage::default();
    loop {
        match store.save(tracker).await {
            Ok(_) => return Ok(()),
            Err(error)
                if broker_error(&error).is_some_and(colloquy_broker::Error::is_buffer_full) =>
            {
                if let Err(error) = drained(broker).await {
                    // Still unconfirmed: the tail of what was handed over, then this save's events.
                    let unconfirmed = broker.unconfirmed() as usize;
                    let skip = unconfirmed_lines.len().saturating_sub(unconfirmed);
                    let mut lines_left: VecDeque<u64> =
                        unconfirmed_lines.iter().skip(skip).copied().collect();
                    lines_left.extend(lines);
                    return Err(not_confirmed(&lines_left, lines.first().copied(), &error));
                }
            }
            // A database that restarts or drops connections: the same save is retried (a save whose commit
            // went through is recognised by its event ids and not written twice).
            Err(error) if broker_error(&error).is_none() && error.is_transient() => {
                outage
                    .wait(&error, "The tracker store failed; retrying the save.")
                    .await
                    .with_context(|| {
                        format!(
                            "cannot save conversation `{}` (events from line {})",
                            tracker.sender_id(),
                            lines.first().copied().unwrap_or_default()
                        )
                    })?;
            }
            Err(error) => {
                return Err(anyhow!(error)).with_context(|| {
                    format!(
                        "cannot save conversation `{}` (events from line {})",
                        tracker.sender_id(),
                        lines.first().copied().unwrap_or_default()
                    )
                });
            }
        }
    }
}

/// Waits until RabbitMQ confirmed half of the broker's buffer (so the pipeline never runs dry, as waiting for
/// a full flush would), or fails as `flush` does when RabbitMQ stays unreachable.
pub async fn drained(broker: &AmqpBroker) -> colloquy_broker::Result<()> {
    let half = broker.config().buffer_capacity().get() as u64 / 2;
    broker.wait_for_unconfirmed_at_most(half).await
}

/// The broker error behind a store error, if any.
fn broker_error(error: &colloquy_tracker_store::Error) -> Option<&colloquy_broker::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(broker) = cause.downcast_ref::<colloquy_broker::Error>() {
            return Some(broker);
        }
        source = cause.source();
    }
    None
}

/// The error of an import that RabbitMQ did not confirm in full.
fn not_confirmed(
    lines: &VecDeque<u64>,
    stopped_before: Option<u64>,
    error: &colloquy_broker::Error,
) -> anyhow::Error {
    let mut shown: Vec<String> = lines.iter().take(LINES_SHOWN).map(u64::to_string).collect();
    if lines.len() > LINES_SHOWN {
        shown.push(format!("and {} more", lines.len() - LINES_SHOWN));
    }
    let stopped = match stopped_before {
        Some(line) => format!(
            "; the import stopped there, so nothing from line {line} on was published either"
        ),
        None => String::new(),
    };
    anyhow!(
        "RabbitMQ did not confirm {} event(s) (input lines {}){stopped}: {}. Nothing else is lost: run the \
         same import again once RabbitMQ answers — every event keeps its id (message_id), so a colloquy \
         consumer stores each event once",
        lines.len(),
        shown.join(", "),
        error.chain()
    )
}

/// Waits until the SQL store's outbox is empty (every saved event confirmed by RabbitMQ).
async fn wait_for_outbox(store: &SqlStore, broker: &AmqpBroker) -> Result<()> {
    let mut outage = super::Outage::default();
    loop {
        let left = match store.outbox_len().await {
            Ok(left) => left,
            Err(error) if error.is_transient() => {
                outage
                    .wait(&error, "The tracker store failed; retrying.")
                    .await
                    .context("cannot read the tracker store's outbox")?;
                continue;
            }
            Err(error) => {
                return Err(anyhow!(error)).context("cannot read the tracker store's outbox");
            }
        };
        if left == 0 {
            return Ok(());
        }
        // A failed flush means RabbitMQ stayed unreachable: the relay keeps the events in the outbox.
        if let Err(error) = broker.flush().await {
            return Err(anyhow!(
                "{left} event(s) are stored in the tracker store but not confirmed by RabbitMQ: {}. They stay \
                 in its `outbox` table and are published by the next Colloquy process that opens this store \
                 with a broker (e.g. `colloquy import --file /dev/null --tracker-store URL`)",
                error.chain()
            ));
        }
        tokio::time::sleep(OUTBOX_POLL).await;
    }
}

/// Stops what is running after a failure (without waiting for confirms that will not come).
async fn abandon(broker: &AmqpBroker, postgres: Option<&SqlStore>) {
    if let Some(postgres) = postgres {
        // The events it holds are safe in its outbox; what is left is said by the caller's error.
        let _ = tokio::time::timeout(super::CLOSE_TIMEOUT, postgres.close()).await;
    }
    let _ = tokio::time::timeout(super::CLOSE_TIMEOUT, broker.close()).await;
}

fn file_size(path: &Path) -> Option<u64> {
    if path.as_os_str() == "-" {
        return None;
    }
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|metadata| metadata.len())
}
