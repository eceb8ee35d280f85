//! `colloquy export`: Rasa's `rasa export`, done so that nothing is lost.
//!
//! Conversations are read, read only, from the tracker store's `events` table (PostgreSQL, MySQL/MariaDB or
//! SQLite; a database Rasa created works as it is) in the byte order of their ids, each conversation's rows
//! in stored order (or by timestamp with `--order timestamp`, as Rasa does); the selected events are published
//! with Colloquy's usual
//! properties (`message_id` = the stored `event_id`, or for rows Rasa wrote the id our store would have given:
//! [`EventId::for_tracked`] of the position and body) plus Rasa's header `rasa-export-process-id` (one uuid per
//! run).
//!
//! Positions are counts of rows (as in the tracker store), so a resume token `SEQ:SENDER_ID` names one event
//! for good: the run that failed prints it for the first event RabbitMQ did not confirm (the broker confirms
//! in hand-over order, so `handed over - unconfirmed` says exactly where that is), and `--resume-from` skips
//! everything before it. Re-sent events carry the same ids, so a colloquy consumer stores each once.

use std::collections::VecDeque;

use anyhow::{Context, Result, anyhow};
use colloquy_broker::{AmqpBroker, EventBroker, MessageProperties};
use colloquy_events::{Envelope, Event, EventId, StampedEnvelope};
use colloquy_storage::{ConnectOptions, Database, ExportSelection, StoredEvent, redact};
use colloquy_tracker_store::{RedisConfig, RedisStore, TrackerStore};

use crate::cli::{DatabaseArgs, ExportArgs, ExportOrder};
use crate::progress::{Progress, Unit, rate};
use crate::settings::{DEFAULT_DATABASE_URL, Endpoints, database_url};

/// Rasa's header naming the export run.
pub const EXPORT_PROCESS_ID_HEADER: &str = "rasa-export-process-id";

/// A position in the export: the event at 0-based position `seq` of conversation `sender_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The position in the conversation.
    pub seq: u64,
    /// The conversation.
    pub sender_id: String,
}

impl ResumePoint {
    /// Reads `SEQ:SENDER_ID`.
    pub fn parse(token: &str) -> Option<Self> {
        let (seq, sender_id) = token.split_once(':')?;
        Some(Self {
            seq: seq.parse().ok()?,
            sender_id: sender_id.to_owned(),
        })
    }

    /// `SEQ:SENDER_ID`.
    pub fn token(&self) -> String {
        format!("{}:{}", self.seq, self.sender_id)
    }
}

/// The events an export selects, and where it resumes.
#[derive(Debug, Clone, Default)]
struct Filter {
    selection: ExportSelection,
    resume: Option<ResumePoint>,
}

/// Runs `colloquy export`.
pub async fn run(args: ExportArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    if let Some(redis) = redis_tracker_store(args.tracker_store.as_deref(), endpoints)
        .map_err(|error| super::ConfigError(format!("{error:#}")))?
    {
        return export_redis(args, endpoints, redis).await;
    }
    let url = database_url(
        &DatabaseArgs {
            database_url: args.tracker_store.clone(),
        },
        endpoints,
    )
    .map_err(|error| super::ConfigError(format!("{error:#}")))?;
    if args.tracker_store.is_none() && url == DEFAULT_DATABASE_URL {
        return Err(super::ConfigError(
            "export needs a tracker store: --tracker-store postgres://user:password@host:port/db (or mysql://…, \
             sqlite://…), or --endpoints endpoints.yml with a `tracker_store` section (type sql)"
                .into(),
        )
        .into());
    }
    let filter = filter_of(&args)?;
    let config = super::producer_config(&args.broker, &args.publish, endpoints, "export")?;

    // Read only: an export never creates or alters anything, so it works on a database Rasa created.
    let database =
        Database::connect_lazy(&url, &ConnectOptions::read_only()).map_err(super::storage_error)?;
    let conversations = with_retries("list the conversations", || async {
        database.require_events_table().await?;
        database.export_conversations(&filter.selection).await
    })
    .await?;
    let missing: Vec<&String> = filter
        .selection
        .only
        .iter()
        .filter(|id| !conversations.contains(id))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(missing = ?missing, "These conversations are not in the tracker store.");
    }
    let total = with_retries("count the events to export", || {
        database.count_selected(&conversations, &filter.selection)
    })
    .await?;
    if total == 0 {
        return Err(anyhow!(
            "no event of the tracker store at {} matches the selection (conversations, timestamps); nothing \
             to export",
            redact(&url)
        ));
    }

    let broker = super::connect_broker(config).await?;
    let process_id = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!(
        events = total,
        conversations = conversations.len(),
        export_process_id = process_id.as_str(),
        "Exporting."
    );
    let progress = Progress::new(args.publish.progress, "Exported", Unit::Events, Some(total));
    let mut export = Export {
        broker: &broker,
        process_id,
        window: VecDeque::new(),
        published: 0,
    };
    let outcome = export
        .publish_all(&database, &conversations, &filter, args.order, &progress)
        .await;
    progress.finish();
    database.close().await;
    finish(
        outcome,
        export.published,
        conversations.len(),
        &progress,
        &broker,
    )
    .await
}

/// The events an export selects, from its flags.
fn filter_of(args: &ExportArgs) -> Result<Filter> {
    if let (Some(min), Some(max)) = (args.minimum_timestamp, args.maximum_timestamp)
        && min >= max
    {
        return Err(super::ConfigError(format!(
            "--minimum-timestamp ({min}) must be smaller than --maximum-timestamp ({max})"
        ))
        .into());
    }
    let resume = match &args.resume_from {
        Some(token) => Some(ResumePoint::parse(token).ok_or_else(|| {
            super::ConfigError(format!(
                "--resume-from must be `SEQ:SENDER_ID` as printed by a failed export, not `{token}`"
            ))
        })?),
        None => None,
    };
    Ok(Filter {
        selection: ExportSelection {
            only: args
                .conversation_ids
                .iter()
                .filter(|id| !id.is_empty())
                .cloned()
                .collect(),
            from: resume.as_ref().map(|resume| resume.sender_id.clone()),
            minimum_timestamp: args.minimum_timestamp,
            maximum_timestamp: args.maximum_timestamp,
        },
        resume,
    })
}

/// Logs the summary of a finished export, or turns its failure into the message with the resume command.
async fn finish(
    outcome: Result<(), Failure>,
    published: u64,
    conversations: usize,
    progress: &Progress,
    broker: &AmqpBroker,
) -> Result<()> {
    match outcome {
        Ok(()) => {
            let elapsed = progress.elapsed();
            tracing::info!(
                events = published,
                conversations,
                seconds = elapsed.as_secs_f64(),
                events_per_second = rate(published, elapsed) as u64,
                "Export finished; RabbitMQ confirmed every event."
            );
            Ok(())
        }
        Err(Failure { error, resume_at }) => {
            let _ = tokio::time::timeout(super::CLOSE_TIMEOUT, broker.close()).await;
            Err(anyhow!(
                "{error:#}\nThe export stopped; RabbitMQ confirmed every event before conversation `{}` \
                 position {}. To resume once the problem is fixed, run:\n  {}",
                resume_at.sender_id,
                resume_at.seq,
                resume_command(&resume_at)
            ))
        }
    }
}

/// The Redis tracker store named by `--tracker-store redis://...` or by endpoints.yml (`type: redis`).
fn redis_tracker_store(
    flag: Option<&str>,
    endpoints: Option<&Endpoints>,
) -> Result<Option<RedisConfig>> {
    match (flag, endpoints) {
        (Some(url), _) if url.starts_with("redis") => Ok(Some(RedisConfig::from_url(url)?)),
        (None, Some(endpoints)) => crate::settings::redis_tracker_store(endpoints),
        _ => Ok(None),
    }
}

/// `colloquy export` from a Redis tracker store, read through the [`TrackerStore`] trait: its conversations
/// (`keys`, in byte order), each one's events (`retrieve_full`), ids as our stores stamp them.
async fn export_redis(
    args: ExportArgs,
    endpoints: Option<&Endpoints>,
    store: RedisConfig,
) -> Result<()> {
    let filter = filter_of(&args)?;
    let config = super::producer_config(&args.broker, &args.publish, endpoints, "export")?;
    let target = store.target();
    let store = RedisStore::connect(&store, None)
        .await
        .map_err(super::tracker_store_error)
        .with_context(|| format!("cannot open the tracker store at {target}"))?;
    let conversations: Vec<String> = store
        .keys()
        .await
        .with_context(|| format!("cannot list the conversations of the tracker store at {target}"))?
        .into_iter()
        .filter(|id| filter.selection.only.is_empty() || filter.selection.only.contains(id))
        .filter(|id| {
            filter
                .resume
                .as_ref()
                .is_none_or(|resume| id.as_bytes() >= resume.sender_id.as_bytes())
        })
        .collect();
    let broker = super::connect_broker(config).await?;
    let progress = Progress::new(args.publish.progress, "Exported", Unit::Events, None);
    let mut export = Export {
        broker: &broker,
        process_id: uuid::Uuid::new_v4().simple().to_string(),
        window: VecDeque::new(),
        published: 0,
    };
    tracing::info!(
        conversations = conversations.len(),
        export_process_id = export.process_id.as_str(),
        "Exporting."
    );
    let outcome = export
        .publish_trackers(&store, &conversations, &filter, &progress)
        .await;
    progress.finish();
    if outcome.is_ok() && export.published == 0 {
        return Err(anyhow!(
            "no event of the tracker store at {target} matches the selection (conversations, timestamps); \
             nothing to export"
        ));
    }
    finish(
        outcome,
        export.published,
        conversations.len(),
        &progress,
        &broker,
    )
    .await
}

/// Why an export stopped, and where to resume.
struct Failure {
    error: anyhow::Error,
    resume_at: ResumePoint,
}

/// One run's publishing state.
struct Export<'a> {
    broker: &'a AmqpBroker,
    process_id: String,
    /// The positions handed over and not known to be confirmed, in hand-over order.
    window: VecDeque<ResumePoint>,
    published: u64,
}

impl Export<'_> {
    async fn publish_all(
        &mut self,
        database: &Database,
        conversations: &[String],
        filter: &Filter,
        order: ExportOrder,
        progress: &Progress,
    ) -> Result<(), Failure> {
        for sender_id in conversations {
            let skip = match &filter.resume {
                Some(resume) if &resume.sender_id == sender_id => resume.seq,
                _ => 0,
            };
            // A database that restarts in the middle is waited for (bounded); then the resume command.
            let rows = with_retries("read a conversation", || {
                database.conversation_rows(sender_id)
            })
            .await
            .map_err(|error| {
                self.failure(
                    error.context(format!("cannot read conversation `{sender_id}`")),
                    sender_id,
                    skip,
                )
            })?;
            // Positions are stored positions, whatever the publishing order. Each row's event is read first:
            // ordering and the time bounds use the event's own `timestamp`, as Rasa's exporter does, not the
            // column (which a table Rasa created on MySQL holds as a 4-byte FLOAT, rounded to 128 s).
            let mut rows: Vec<(u64, StoredEvent, Result<Event, String>)> = rows
                .into_iter()
                .enumerate()
                .map(|(seq, row)| {
                    let event = Event::from_json(row.data.as_bytes()).map_err(|e| e.to_string());
                    (seq as u64, row, event)
                })
                .collect();
            let timestamp_of = |row: &StoredEvent, event: &Result<Event, String>| match event {
                Ok(event) => event.timestamp(),
                Err(_) => row.timestamp,
            };
            if order == ExportOrder::Timestamp {
                // Rasa sorts with Python's stable sort on the timestamp.
                rows.sort_by(|(_, a, a_event), (_, b, b_event)| {
                    timestamp_of(a, a_event)
                        .unwrap_or(f64::NEG_INFINITY)
                        .total_cmp(&timestamp_of(b, b_event).unwrap_or(f64::NEG_INFINITY))
                });
            }
            for (seq, row, event) in rows {
                if seq < skip || !filter.selection.selects(timestamp_of(&row, &event)) {
                    continue;
                }
                let StoredEvent {
                    row_id, event_id, ..
                } = row;
                let event = event.map_err(|error| {
                    self.failure(
                        anyhow!(
                            "row {row_id} of conversation `{sender_id}` is not a readable event: {error}"
                        ),
                        sender_id,
                        seq,
                    )
                })?;
                self.publish(sender_id, seq, event, event_id).await?;
                progress.advance(1, 0);
            }
        }
        self.broker.close().await.map_err(|error| {
            let at = self.first_unconfirmed(None);
            Failure {
                error: anyhow!(error.chain()),
                resume_at: at,
            }
        })
    }

    async fn publish_trackers(
        &mut self,
        store: &dyn TrackerStore,
        conversations: &[String],
        filter: &Filter,
        progress: &Progress,
    ) -> Result<(), Failure> {
        for sender_id in conversations {
            let skip = match &filter.resume {
                Some(resume) if &resume.sender_id == sender_id => resume.seq,
                _ => 0,
            };
            let mut outage = super::Outage::default();
            let tracker = loop {
                match store.retrieve_full(sender_id).await {
                    Ok(tracker) => break tracker,
                    Err(error) if error.is_transient() => {
                        if let Err(error) = outage
                            .wait(&error, "The tracker store failed; retrying the read.")
                            .await
                        {
                            let error =
                                error.context(format!("cannot read conversation `{sender_id}`"));
                            return Err(self.failure(error, sender_id, skip));
                        }
                    }
                    Err(error) => {
                        let error = anyhow!(error)
                            .context(format!("cannot read conversation `{sender_id}`"));
                        return Err(self.failure(error, sender_id, skip));
                    }
                }
            };
            let Some(tracker) = tracker else { continue };
            let stamped = tracker.stamp_all();
            for stamped in stamped {
                let seq = stamped.seq.unwrap_or_default();
                if seq < skip || !filter.selection.selects(stamped.envelope.event.timestamp()) {
                    continue;
                }
                let id = stamped.id.as_str().to_owned();
                self.publish(sender_id, seq, stamped.envelope.event, Some(id))
                    .await?;
                progress.advance(1, 0);
            }
        }
        self.broker.close().await.map_err(|error| Failure {
            error: anyhow!(error.chain()),
            resume_at: self.first_unconfirmed(None),
        })
    }

    async fn publish(
        &mut self,
        sender_id: &str,
        seq: u64,
        event: Event,
        event_id: Option<String>,
    ) -> Result<(), Failure> {
        let envelope = Envelope {
            sender_id: sender_id.to_owned(),
            event,
        };
        let id = match event_id {
            Some(id) => EventId::from(id),
            // The id our tracker store gives the event at this position (over its live broker body).
            None => EventId::for_tracked(sender_id, seq, envelope.to_rasa_json().as_bytes()),
        };
        // What `rasa export` publishes: Rasa's form with `sender_id` last.
        let body = envelope.to_rasa_export_json().into_bytes();
        let stamped = StampedEnvelope {
            envelope,
            id,
            seq: Some(seq),
        };
        let app_id = self.broker.config().app_id().map(|name| name.as_str());
        let mut properties = MessageProperties::for_event(&stamped, app_id);
        properties.headers.insert(
            EXPORT_PROCESS_ID_HEADER.to_owned(),
            serde_json::Value::String(self.process_id.clone()),
        );
        loop {
            match self.broker.publish_raw(body.clone(), &properties).await {
                Ok(()) => break,
                Err(error) if error.is_buffer_full() => {
                    if let Err(error) = super::import::drained(self.broker).await {
                        return Err(self.failure(anyhow!(error.chain()), sender_id, seq));
                    }
                }
                Err(error) => {
                    return Err(self.failure(anyhow!(error.chain()), sender_id, seq));
                }
            }
        }
        self.window.push_back(ResumePoint {
            seq,
            sender_id: sender_id.to_owned(),
        });
        self.published += 1;
        // Forget what RabbitMQ confirmed already (it confirms in hand-over order).
        let unconfirmed = self.broker.unconfirmed() as usize;
        while self.window.len() > unconfirmed {
            self.window.pop_front();
        }
        Ok(())
    }

    /// A failure while the next event to publish was `seq` of `sender_id`.
    fn failure(&self, error: anyhow::Error, sender_id: &str, seq: u64) -> Failure {
        Failure {
            error,
            resume_at: self.first_unconfirmed(Some(ResumePoint {
                seq,
                sender_id: sender_id.to_owned(),
            })),
        }
    }

    /// The first event of the window RabbitMQ did not confirm, else `next`.
    fn first_unconfirmed(&self, next: Option<ResumePoint>) -> ResumePoint {
        let unconfirmed = (self.broker.unconfirmed() as usize).min(self.window.len());
        match self.window.get(self.window.len() - unconfirmed) {
            Some(point) => point.clone(),
            None => next.unwrap_or_else(|| {
                // Everything was confirmed but closing failed: resume after the last event.
                self.window.back().map_or(
                    ResumePoint {
                        seq: 0,
                        sender_id: String::new(),
                    },
                    |last| ResumePoint {
                        seq: last.seq + 1,
                        sender_id: last.sender_id.clone(),
                    },
                )
            }),
        }
    }
}

/// Runs a read of the tracker store, retrying (bounded) only while the database is unreachable; a missing
/// table or refused credentials end the export at once with exit code 2.
async fn with_retries<T, F, Fut>(action: &'static str, mut read: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = colloquy_storage::Result<T>>,
{
    let mut outage = super::Outage::default();
    loop {
        match read().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() => {
                outage
                    .wait(&error, "The tracker store does not answer; retrying.")
                    .await
                    .with_context(|| format!("cannot {action}"))?;
            }
            Err(error) => return Err(super::storage_error(error)),
        }
    }
}

/// This process's command line with `--resume-from` set to `at`, quoted for a POSIX shell, without passwords.
fn resume_command(at: &ResumePoint) -> String {
    let mut args: Vec<String> = Vec::new();
    let (given, redacted) = crate::settings::redact_command_line(std::env::args());
    let mut given = given.into_iter();
    if let Some(program) = given.next() {
        args.push(program);
    }
    while let Some(arg) = given.next() {
        if arg == "--resume-from" {
            given.next();
        } else if !arg.starts_with("--resume-from=") {
            args.push(arg);
        }
    }
    args.push("--resume-from".into());
    args.push(at.token());
    let command = args
        .iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ");
    if redacted {
        format!(
            "{command}\n(the password is not repeated: put it back in place of ***, or give it through \
             COLLOQUY_TRACKER_STORE / AMQP_URL or endpoints.yml)"
        )
    } else {
        command
    }
}

/// `arg` as one POSIX shell word.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%,+".contains(&b));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens() {
        let point = ResumePoint::parse("17:user:with:colons").unwrap();
        assert_eq!(point.seq, 17);
        assert_eq!(point.sender_id, "user:with:colons");
        assert_eq!(point.token(), "17:user:with:colons");
        assert_eq!(ResumePoint::parse("x:alice"), None);
        assert_eq!(ResumePoint::parse("alice"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--queue"), "--queue");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn timestamp_filter_is_inclusive_then_exclusive() {
        let selection = ExportSelection {
            minimum_timestamp: Some(10.0),
            maximum_timestamp: Some(20.0),
            ..ExportSelection::default()
        };
        assert!(selection.selects(Some(10.0)));
        assert!(!selection.selects(Some(20.0)));
        assert!(!selection.selects(Some(9.99)));
        assert!(!selection.selects(None));
        assert!(ExportSelection::default().selects(None));
    }
}
