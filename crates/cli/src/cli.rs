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
    max_term_width = 110
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
    /// Create or update the database schema (Rasa's `events` table, `event_id`, `dead_letters`), then exit.
    Migrate(DatabaseArgs),
    /// Inspect or requeue the messages that could not be stored as events.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

/// Where the broker is and what to consume.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// The RabbitMQ URL (`amqp://` or `amqps://`, with user, password, host, port and vhost).
    /// Default: `amqp://guest:guest@127.0.0.1:5672/%2f`.
    #[arg(long, env = "AMQP_URL", value_name = "URL")]
    pub amqp_url: Option<String>,

    /// A queue to consume (repeat the flag for several; the variable takes a comma-separated list). Each is
    /// declared durable and bound to the exchange, as Rasa does. Default: `rasa_core_events`.
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
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The database: `postgres://user@host:port/db` or `sqlite://path` (created when missing).
    /// Default: `sqlite://colloquy.db`.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
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

    /// Most events stored in one transaction.
    #[arg(long, env = "COLLOQUY_BATCH_SIZE", value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,

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
    #[arg(long, env = "COLLOQUY_MAX_BODY_BYTES", value_name = "N", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// After SIGTERM, how many seconds to keep retrying a database that does not answer before exiting with
    /// the batch in hand unacknowledged (it stays in the queue).
    #[arg(
        long,
        env = "COLLOQUY_SHUTDOWN_GRACE_SECS",
        value_name = "N",
        default_value_t = 30
    )]
    pub shutdown_grace_secs: u64,
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
        #[arg(long, default_value_t = 100)]
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
