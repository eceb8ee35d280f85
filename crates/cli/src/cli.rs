//! The command line: every flag, its environment variable and its help.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Colloquy streams the events of Rasa conversations from RabbitMQ into a database, exactly once, in Rasa's
/// own `events` schema — and publishes them there, from files or tracker stores.
///
/// Every flag can also be set through the environment variable named in its help. Precedence: flag, then
/// environment, then `--endpoints` (Rasa's endpoints.yml), then the defaults.
#[derive(Debug, Parser)]
#[command(
    name = "colloquy",
    version,
    propagate_version = true,
    max_term_width = 110,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Rasa's endpoints.yml: its `event_broker` section (type `pika`) gives the broker and queues, its
    /// `tracker_store` section (type `sql`) the database. `${VAR}` references are substituted.
    #[arg(long, global = true, env = "COLLOQUY_ENDPOINTS", value_name = "FILE")]
    pub endpoints: Option<PathBuf>,

    /// Log format: `text` for people, `json` for log collectors. Verbosity follows `RUST_LOG` (default `info`).
    #[arg(long, global = true, env = "COLLOQUY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, shown at the end of every `--help`.
pub const EXIT_CODES: &str = "Exit codes:
  0  success (import/export: every event was confirmed by RabbitMQ)
  1  failure at run time: the broker or database failed, events were not confirmed, a bad input line
     (the message says what and what to do; export prints the command that resumes)
  2  bad usage or configuration (unknown flag, invalid URL, unreadable endpoints file, refused
     credentials, an exchange that exists with another type or other properties)";

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume events from RabbitMQ and store them in the database (the main job). Runs until SIGTERM or
    /// SIGINT, then stores and acknowledges the batch in hand and exits 0.
    Consume(ConsumeArgs),
    /// Create or update the database schema (Rasa's `events` table, `event_id`, `dead_letters`), report the
    /// state of the `events` table (how far its `id` is from the limit of its type, which dedupe index it has),
    /// then exit. Conversions of a table that holds rows run only when asked for.
    Migrate(MigrateArgs),
    /// Inspect or requeue the messages that could not be stored as events.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Load conversations from a file into a tracker store, which streams their events to RabbitMQ exactly as
    /// a running bot would. With the default in-memory store this is the fastest way to publish a file of
    /// events. Exits 0 only once RabbitMQ confirmed every event.
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Publish the events stored in a tracker store (PostgreSQL or Redis) to RabbitMQ, like Rasa's `rasa export`, but
    /// exits 0 only once RabbitMQ confirmed every event, and prints the command that resumes after a failure.
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// A tour for newcomers: runs `colloquy consume` into a temporary SQLite database, imports bundled sample
    /// conversations through RabbitMQ, waits until they are stored and prints a summary. Starts a local
    /// RabbitMQ when none answers and `rabbitmq-server` is installed.
    Demo(DemoArgs),
    /// Rasa Pro's analytics tables (`rasa_sender`, `rasa_session`, `rasa_event`, ...) and metric views.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// Rasa's conversation markers (`rasa evaluate markers`), evaluated on the events a database holds.
    #[command(subcommand)]
    Markers(MarkersCommand),
    /// Serve the conversation inbox, the dashboard, the dead letters, Colloquy's JSON API (`/api`) and Rasa's
    /// tracker endpoints over a database (one Rasa wrote included; read only). Runs until SIGTERM or SIGINT.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
}

const SERVE_HELP: &str = "Auth: with --auth-token every request needs the token: `?token=TOKEN` (open
`http://HOST:PORT/?token=TOKEN` once: a cookie keeps it for the pages), or `Authorization: Bearer TOKEN`.
Writes (Rasa's POST/PUT tracker events, requeueing a dead letter) take only the query token or the bearer
header. Without --auth-token the server listens on loopback only and refuses every write.

Writes: Rasa's POST/PUT /conversations/{id}/tracker/events save through --tracker-store (or the
`tracker_store` section of --endpoints), streaming to the broker of --amqp-url (or `event_broker`);
without a tracker store they answer 503. Requeueing a dead letter needs the broker.

Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  failure at run time
  2  bad usage or configuration (a non-loopback --http without --auth-token, a database without Rasa's
     `events` table, refused credentials, an unreadable domain file)";

/// `colloquy serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    /// The address to listen on. Without --auth-token only a loopback address is accepted.
    #[arg(
        long,
        env = "COLLOQUY_SERVE_HTTP",
        value_name = "ADDR",
        default_value = "127.0.0.1:5006"
    )]
    pub http: SocketAddr,

    /// The token every request must carry (see below). Without it: loopback only, no writes.
    #[arg(
        long,
        env = "COLLOQUY_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,

    /// Rasa's domain file: the slots (and initial values) of the trackers Rasa's endpoints return. Without
    /// it a tracker's slots are those its events set.
    #[arg(long, env = "COLLOQUY_DOMAIN", value_name = "FILE")]
    pub domain: Option<PathBuf>,

    /// The tracker store Rasa's write endpoints save through: a database URL (`postgres://…`, `mysql://…`,
    /// `sqlite://…`; Colloquy's SQL tracker store, migrated on start) or a Redis URL. Default: the
    /// `tracker_store` section of --endpoints (type `sql`); none: writes answer 503.
    #[arg(long, env = "COLLOQUY_TRACKER_STORE", value_name = "URL")]
    pub tracker_store: Option<String>,

    /// The consumer's Prometheus endpoint (`http://HOST:PORT/metrics` of `colloquy consume --http`), for the
    /// dashboard's live events per second.
    #[arg(long, env = "COLLOQUY_CONSUMER_METRICS", value_name = "URL")]
    pub consumer_metrics: Option<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub broker: BrokerArgs,
}

/// `colloquy markers ...`.
#[derive(Debug, Subcommand)]
pub enum MarkersCommand {
    /// Evaluate markers on every conversation of a database (one Rasa wrote included; read only) and write
    /// the files Rasa 3.6's `rasa evaluate markers all` writes: the markers CSV and, with
    /// `--stats-file-prefix P`, `P-overall.csv` and `P-per-session.csv`. Conversations in byte order of
    /// their ids, each one's events in stored order.
    Evaluate(MarkersEvaluateArgs),
    /// Store the markers of a configuration as Rasa Pro's `rasa_pattern` rows (active; patterns not in the
    /// file become inactive). `colloquy consume --analytics` evaluates the active patterns as events arrive
    /// and writes each hit to `rasa_marker` once; `analytics rebuild --from-scratch` evaluates them on
    /// everything stored.
    Upload(MarkersUploadArgs),
}

/// `colloquy markers upload`.
#[derive(Debug, Clone, Args)]
pub struct MarkersUploadArgs {
    /// The marker configuration (Rasa's YAML: marker name -> condition).
    #[arg(long, value_name = "FILE")]
    pub config: std::path::PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
}

/// `colloquy markers evaluate`.
#[derive(Debug, Clone, Args)]
pub struct MarkersEvaluateArgs {
    /// The marker configuration (Rasa's YAML: marker name -> condition).
    #[arg(long, value_name = "FILE")]
    pub config: std::path::PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    /// Where to write the markers CSV (`sender_id,session_idx,marker,event_idx,num_preceding_user_turns`).
    #[arg(long, value_name = "FILE")]
    pub output_file: std::path::PathBuf,

    /// Also write the statistics: `<P>-overall.csv` and `<P>-per-session.csv`.
    #[arg(long, value_name = "P")]
    pub stats_file_prefix: Option<String>,
}

/// `colloquy analytics ...`.
#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Derive the analytics tables from the events a database holds already (a database Rasa wrote
    /// included), creating them when missing. Idempotent and resumable: each conversation continues after
    /// the last event derived, so running it again, or after an interruption, derives only what is missing,
    /// and the tables equal what `colloquy consume --analytics` keeps.
    Rebuild(AnalyticsRebuildArgs),
}

/// `colloquy analytics rebuild`.
#[derive(Debug, Clone, Args)]
pub struct AnalyticsRebuildArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    /// Empty the analytics tables first and derive everything again (the metric names are kept).
    #[arg(long)]
    pub from_scratch: bool,

    /// Conversations derived per transaction.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub conversations_per_transaction: u32,

    /// Progress display: `auto` draws a bar when standard error is a terminal and logs a line every few
    /// seconds otherwise; `bar` and `log` force one; `none` shows neither.
    #[arg(long, env = "COLLOQUY_PROGRESS", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

const IMPORT_HELP: &str = "Input formats (detected from the first record):
  - JSON lines of broker bodies: one event per line with its `sender_id` (anywhere in the object), as
    Rasa publishes them or as `rasa export` / Rasa's FileEventBroker (rasa_event.log) writes them;
  - Rasa tracker dumps: a JSON object with `sender_id` and `events` (one per line, or pretty-printed),
    or a JSON list of them.
Events of one conversation keep their order. JSON lines are streamed in chunks (bounded memory with
a PostgreSQL store). Each event gets a stable id from its conversation, position and body, so running
the same import again publishes the same ids and a colloquy consumer stores each event once.

Exit codes:
  0  every event was confirmed by RabbitMQ
  1  a bad input line (`line N: what is wrong`), or events not confirmed or rejected (Nack) by
     RabbitMQ (the message lists them)
  2  bad usage or configuration, refused credentials, incompatible exchange";

const EXPORT_HELP: &str = "Conversations are exported in the byte order of their ids, each conversation's events in order.
Every message carries the header `rasa-export-process-id` (one id per run, as Rasa does) besides
Colloquy's usual properties (message_id = the event's stable id, headers colloquy-event-id and
colloquy-seq), so a colloquy consumer drops events it already stored.

Resuming: when RabbitMQ fails, the export stops and prints this command again with
`--resume-from SEQ:SENDER_ID`: the position of the first event RabbitMQ did not confirm (events of
conversations before SENDER_ID, and the first SEQ events of SENDER_ID, are skipped).

Exit codes:
  0  every selected event was confirmed by RabbitMQ
  1  the database or the broker failed (the resume command is printed), or no event matched
  2  bad usage or configuration, refused credentials, incompatible exchange";

/// Where the broker is and what to consume.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// The RabbitMQ URL (`amqp://` or `amqps://`, with user, password, host, port and vhost).
    /// Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    #[arg(long, env = "AMQP_URL", value_name = "URL")]
    pub amqp_url: Option<String>,

    /// A queue to consume (repeat the flag for several; the variable takes a comma-separated list). Each is
    /// bound to the exchange; one that exists is used as it is (classic or quorum, with its arguments), one that
    /// does not is declared durable, as Rasa does (see --queue-type). Default: `rasa_core_events`.
    #[arg(
        long = "queue",
        env = "COLLOQUY_QUEUE",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub queues: Vec<String>,

    /// The fanout exchange the queues are bound to (declared non-durable, as Rasa does). Default: `rasa-exchange`.
    #[arg(long, env = "COLLOQUY_EXCHANGE", value_name = "NAME")]
    pub exchange: Option<String>,

    /// The type of the queues declared when they do not exist: `classic` (as Rasa) or `quorum` (replicated in
    /// a RabbitMQ cluster). A queue that exists is used as it is, whatever its type.
    #[arg(long, env = "COLLOQUY_QUEUE_TYPE", value_enum, default_value_t = QueueTypeArg::Classic)]
    pub queue_type: QueueTypeArg,
}

/// Queue types for `--queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueTypeArg {
    /// A classic durable queue without arguments.
    Classic,
    /// A quorum queue.
    Quorum,
}

impl From<QueueTypeArg> for colloquy_broker::QueueType {
    fn from(arg: QueueTypeArg) -> Self {
        match arg {
            QueueTypeArg::Classic => Self::Classic,
            QueueTypeArg::Quorum => Self::Quorum,
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: `postgres://user@host:port/db` or `sqlite://path` (created when missing).
    /// Default: `sqlite://colloquy.db`.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

/// `colloquy migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    /// PostgreSQL: convert a table that held rows before the compact dedupe key existed: fill the 16-byte
    /// `event_key` of the stored rows (in chunks, consumers keep running), build its unique index without
    /// blocking writes, drop the unique index on `event_id` and the second index on `sender_id`. Takes about
    /// as long as reading and rewriting the table once (see docs/SCALING.md for measured times); prints each
    /// step's duration. Resumable: run it again after an interruption.
    #[arg(long)]
    pub convert_event_key: bool,

    /// Widen an int4 `id` (Rasa's SERIAL, limit 2,147,483,647) to BIGINT. Rewrites the whole table under an
    /// exclusive lock: writers (consumers, Rasa) wait until it is done; its duration grows with the table
    /// (see docs/SCALING.md) and is printed.
    #[arg(long)]
    pub convert_ids: bool,
}

/// `colloquy consume`.
#[derive(Debug, Clone, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,

    /// Most events stored in one transaction. Default: 1000; 5000 with --analytics, whose per-conversation
    /// work is done once per batch. A batch only grows this large while the queue holds a backlog.
    #[arg(long, env = "COLLOQUY_BATCH_SIZE", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: Option<u32>,

    /// Longest a batch keeps filling while events keep arriving, in milliseconds. A batch is committed as soon
    /// as the queue runs dry, so at low rates events do not wait this long.
    #[arg(long, env = "COLLOQUY_BATCH_TIMEOUT_MS", value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub batch_timeout_ms: u64,

    /// Most unacknowledged deliveries held at once (AMQP prefetch); bounds memory while the database is down.
    /// Default: twice the batch size, at most 65535.
    #[arg(long, env = "COLLOQUY_PREFETCH", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: Option<u16>,

    /// Serve `/health` and `/metrics` (Prometheus) on this address, e.g. `127.0.0.1:9187`. Off by default.
    #[arg(long, env = "COLLOQUY_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// Bodies larger than this many bytes are dead-lettered instead of stored as events.
    #[arg(long, env = "COLLOQUY_MAX_BODY_BYTES", value_name = "N", default_value_t = 1024 * 1024,
          value_parser = at_least_one)]
    pub max_body_bytes: u64,

    /// Bodies received and not yet acknowledged stay within this many bytes (or one body, if larger): the
    /// prefetch is sized to the bodies seen, and no delivery is taken while those held reach it.
    /// Default: 64 MiB, or 4 × --max-body-bytes if that is larger.
    #[arg(long, env = "COLLOQUY_MAX_INFLIGHT_BYTES", value_name = "N", value_parser = at_least_one)]
    pub max_inflight_bytes: Option<u64>,

    /// After SIGTERM, how many seconds to keep retrying a database that keeps failing before exiting with
    /// the batch in hand unacknowledged (it stays in the queue).
    #[arg(
        long,
        env = "COLLOQUY_SHUTDOWN_GRACE_SECS",
        value_name = "N",
        default_value_t = 30,
        value_parser = at_least_one
    )]
    pub shutdown_grace_secs: u64,

    /// Also keep Rasa Pro's analytics tables (`rasa_sender`, `rasa_session`, `rasa_turn`, `rasa_event`, ...) and
    /// the metric views, derived from each batch's new events in the same transaction. Creates them on start.
    #[arg(long, env = "COLLOQUY_ANALYTICS", value_parser = clap::builder::BoolishValueParser::new())]
    pub analytics: bool,
}

/// Parses a size, count or duration that cannot be meant as 0 (a body limit of 0 would dead-letter every
/// message; a grace period of 0 would not wait at all).
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 (0 cannot be meant here)".to_owned()),
        Ok(value) => Ok(value),
        Err(_) => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// `colloquy dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead letters: id, time, source queue, reason and the start of the body.
    List {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// Show at most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
        /// Print each as a JSON line (body as text when it is UTF-8, else base64-free hex) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Publish dead letters back to the exchange (with their original properties), then delete them. A
    /// message is deleted only after the broker confirmed it.
    Requeue {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        broker: BrokerArgs,
        /// Requeue only these ids (comma-separated); default: all.
        #[arg(long, value_delimiter = ',', value_name = "ID")]
        ids: Vec<i64>,
    },
}

/// How producers talk to the broker (import and export).
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// How many times in a row to try reaching RabbitMQ (at start and after losing the connection) before
    /// giving up and reporting the events that were not confirmed.
    #[arg(
        long,
        env = "COLLOQUY_CONNECTION_ATTEMPTS",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub connection_attempts: u32,

    /// Progress display: `auto` draws a bar when standard error is a terminal and logs a line every few
    /// seconds otherwise; `bar` and `log` force one; `none` shows neither.
    #[arg(long, env = "COLLOQUY_PROGRESS", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, log lines otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// Always periodic log lines.
    Log,
    /// Nothing.
    None,
}

/// `colloquy import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file to import (`-` reads standard input): JSON lines of broker bodies, or Rasa tracker dumps.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,

    /// The tracker store that receives the conversations and streams their events: `memory` (default;
    /// nothing kept after the run), a database URL — `postgres://…`, `mysql://…` or `sqlite://…` (events are
    /// stored in Rasa's `events` table) — or a Redis URL (`redis://[:password@]host:port/db`, with
    /// `?key_prefix=P&record_exp=SECONDS` as Rasa's settings; stored as Rasa's RedisTrackerStore stores them).
    /// Stores publish through their outbox; a conversation the store holds already gets the file's events
    /// appended after its own.
    #[arg(
        long,
        env = "COLLOQUY_TRACKER_STORE",
        value_name = "memory|URL",
        default_value = "memory"
    )]
    pub tracker_store: String,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub publish: PublishArgs,
}

/// The order in which `colloquy export` publishes a conversation's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportOrder {
    /// The stored order (the table's `id`).
    Stored,
    /// By timestamp, stable for equal ones (Rasa 3.6's `rasa export`).
    Timestamp,
}

/// `colloquy export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The tracker store to read: a database URL (`postgres://…`, `mysql://…`, `sqlite://…`), read only — a
    /// database Rasa's SQLTrackerStore created and Colloquy never touched works as it is — or a Redis URL
    /// (`redis://[:password@]host:port/db`, `?key_prefix=P` for Rasa's `key_prefix`). Default: the
    /// `tracker_store` section of `--endpoints` (`type: sql` or `type: redis`).
    #[arg(
        long,
        alias = "database-url",
        env = "COLLOQUY_TRACKER_STORE",
        value_name = "URL"
    )]
    pub tracker_store: Option<String>,

    /// Export only these conversations (comma-separated sender ids). Default: all.
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub conversation_ids: Vec<String>,

    /// Export only events with a timestamp at or after this one (unix seconds, inclusive).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub minimum_timestamp: Option<f64>,

    /// Export only events with a timestamp before this one (unix seconds, exclusive).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub maximum_timestamp: Option<f64>,

    /// Resume a failed export: `SEQ:SENDER_ID`, as printed by the failed run (see below).
    #[arg(long, value_name = "SEQ:SENDER_ID")]
    pub resume_from: Option<String>,

    /// The order of each conversation's events: `stored` (default: the order they were stored in, which is
    /// the order they happened) or `timestamp` (sorted by timestamp, as `rasa export` does — which reorders
    /// events whose clocks disagree).
    #[arg(
        long,
        value_enum,
        default_value = "stored",
        value_name = "stored|timestamp"
    )]
    pub order: ExportOrder,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub broker: BrokerArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub publish: PublishArgs,
}

/// `colloquy demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The RabbitMQ URL. Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    #[arg(long, env = "AMQP_URL", value_name = "URL")]
    pub amqp_url: Option<String>,

    /// The SQLite file the demo's consumer writes. Default: a file in a new temporary directory.
    #[arg(long, value_name = "FILE")]
    pub database: Option<PathBuf>,

    /// Longest wait for the sample to be stored, in seconds.
    #[arg(long, default_value_t = 60, value_parser = at_least_one)]
    pub timeout_secs: u64,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn values_that_cannot_be_meant_are_refused() {
        for args in [
            &["colloquy", "consume", "--max-body-bytes", "0"][..],
            &["colloquy", "consume", "--max-inflight-bytes", "0"],
            &["colloquy", "consume", "--shutdown-grace-secs", "0"],
            &["colloquy", "consume", "--batch-size", "0"],
            &["colloquy", "consume", "--batch-timeout-ms", "0"],
            &["colloquy", "consume", "--prefetch", "0"],
            &["colloquy", "consume", "--max-body-bytes", "1k"],
            &["colloquy", "dead-letters", "list", "--limit", "0"],
            &["colloquy", "demo", "--timeout-secs", "0"],
        ] {
            let error = Cli::try_parse_from(args).expect_err(&format!("{args:?} must be refused"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
            let flag = args[args.len() - 2];
            assert!(error.to_string().contains(flag), "{args:?}: {error}");
        }
        assert!(Cli::try_parse_from(["colloquy", "consume", "--max-body-bytes", "1"]).is_ok());
    }
}
