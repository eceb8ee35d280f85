//! One module per subcommand.

pub mod analytics;
pub mod consume;
pub mod dead_letters;
pub mod demo;
pub mod export;
pub mod import;
pub mod markers;
pub mod migrate;
pub mod serve;

use std::time::Duration;

use std::num::NonZeroU32;

use colloquy_broker::{AmqpBroker, AmqpConfig, AmqpSubscription};

use crate::cli::{BrokerArgs, PublishArgs};
use crate::settings::{Endpoints, amqp_config};

/// The database named by the flags, environment or endpoints.yml (connected lazily), and its URL. With
/// `options.read_only`, nothing is created: not the SQLite file, not a table.
pub fn open_database(
    args: &crate::cli::DatabaseArgs,
    endpoints: Option<&crate::settings::Endpoints>,
    options: &colloquy_storage::ConnectOptions,
) -> anyhow::Result<(colloquy_storage::Database, String)> {
    let url = crate::settings::database_url(args, endpoints)
        .map_err(|error| ConfigError(format!("{error:#}")))?;
    let database = colloquy_storage::Database::connect_lazy(&url, options)
        .map_err(|error| ConfigError(error.to_string()))?;
    Ok((database, url))
}

/// A tracker-store error as the CLI reports it: a configuration error (exit 2) when the settings or the schema
/// are at fault, else a run-time failure.
pub fn tracker_store_error(error: colloquy_tracker_store::Error) -> anyhow::Error {
    if error.is_config() {
        ConfigError(error.to_string()).into()
    } else {
        error.into()
    }
}

/// A storage error as the CLI reports it: a configuration error (exit 2) when the settings or the schema are
/// at fault, else a run-time failure.
pub fn storage_error(error: colloquy_storage::Error) -> anyhow::Error {
    if error.is_config() {
        ConfigError(error.to_string()).into()
    } else {
        error.into()
    }
}

/// How long a command waits for a broker or database to close after its work is done (they may be gone).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a database that keeps failing is retried (consumer start-up, import, export) before giving up.
pub const OUTAGE_LIMIT: Duration = Duration::from_secs(120);

/// Retries through a passing outage: [`colloquy_retry::Policy::OUTAGE`], at most [`OUTAGE_LIMIT`] in all.
#[derive(Debug)]
pub struct Outage {
    started: Option<std::time::Instant>,
    delays: colloquy_retry::Delays,
}

impl Default for Outage {
    fn default() -> Self {
        Self {
            started: None,
            delays: colloquy_retry::Policy::OUTAGE.delays(),
        }
    }
}

impl Outage {
    /// Waits before the next attempt, or returns `error` once the outage lasted too long.
    pub async fn wait<E>(&mut self, error: &E, message: &'static str) -> anyhow::Result<()>
    where
        E: std::fmt::Display,
    {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        if started.elapsed() > OUTAGE_LIMIT {
            return Err(anyhow::anyhow!(
                "{error} (still failing after {} s)",
                OUTAGE_LIMIT.as_secs()
            ));
        }
        let delay = self.delays.next_or_longest();
        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "{message}");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// A configuration problem: reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The exit code for a failure: 2 for configuration problems (a [`ConfigError`], or a broker error that is
/// one: refused credentials, an exchange that exists with other properties), 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let config = error.chain().any(|cause| {
        cause.is::<ConfigError>()
            || cause
                .downcast_ref::<colloquy_broker::Error>()
                .is_some_and(colloquy_broker::Error::is_config)
    });
    if config {
        crate::EXIT_USAGE
    } else {
        crate::EXIT_FAILURE
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only SIGINT stops the consumer.");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!(signal = "SIGINT", "Stop requested."),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "Stop requested."),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
        tracing::info!(signal = "SIGINT", "Stop requested.");
    }
}

/// The broker settings of a producer (`import`, `export`): fail rather than wait when the buffer is full (the
/// caller then flushes, which reports a broker that stays unreachable instead of waiting forever), the
/// configured number of connection attempts, and a connection name operators recognise
/// (`colloquy-<role>-<pid>`).
pub fn producer_config(
    broker: &BrokerArgs,
    publish: &PublishArgs,
    endpoints: Option<&Endpoints>,
    role: &str,
) -> anyhow::Result<AmqpConfig> {
    let config =
        amqp_config(broker, endpoints).map_err(|error| ConfigError(format!("{error:#}")))?;
    Ok(config
        .with_fail_when_full(true)
        .with_connection_attempts(
            NonZeroU32::new(publish.connection_attempts).unwrap_or(NonZeroU32::MIN),
        )
        .with_connection_name(format!("colloquy-{role}-{}", std::process::id())))
}

/// Connects a publisher, turning the broker's answers into messages that say what to do.
pub async fn connect_broker(config: AmqpConfig) -> anyhow::Result<AmqpBroker> {
    let target = config.target();
    let exchange = config.exchange().as_str().to_owned();
    match AmqpBroker::connect(config).await {
        Ok(broker) => Ok(broker),
        Err(error) => Err(broker_error_with_advice(&error, &target, &exchange)),
    }
}

/// Subscribes (the consumer), holding at most `max_unacked_bytes` of bodies unacknowledged, turning the
/// broker's answers into messages that say what to do, as [`connect_broker`] does.
pub async fn subscribe(
    config: AmqpConfig,
    max_unacked_bytes: std::num::NonZeroUsize,
) -> anyhow::Result<AmqpSubscription> {
    let target = config.target();
    let exchange = config.exchange().as_str().to_owned();
    match AmqpSubscription::connect_bounded(config, max_unacked_bytes).await {
        Ok(subscription) => Ok(subscription),
        Err(error) => Err(broker_error_with_advice(&error, &target, &exchange)),
    }
}

/// A broker error in one line, with what the operator can do about it: the same cause gives the same message
/// and the same exit code in every command.
pub fn broker_error_with_advice(
    error: &colloquy_broker::Error,
    target: &str,
    exchange: &str,
) -> anyhow::Error {
    // Refused credentials and topology say all in their own sentence; for the rest the cause matters.
    let what = if error.is_config() {
        error.to_string()
    } else {
        error.chain()
    };
    let advice = match error {
        colloquy_broker::Error::AccessRefused { .. } => "check the user name and password in \
             --amqp-url (or AMQP_URL, or the event_broker section of endpoints.yml), and that this user may use \
             the virtual host (`rabbitmqctl list_permissions`)"
            .to_owned(),
        colloquy_broker::Error::Topology { .. } => format!(
            "Rasa declares its exchange as a non-durable fanout exchange; declare `{exchange}` the same way \
             everywhere, choose another name with --exchange, or delete the existing one (management UI, or \
             `rabbitmqadmin delete exchange name={exchange}`) if nothing else uses it"
        ),
        _ => format!(
            "is RabbitMQ running at {target}? Start it (`rabbitmq-server -detached`, or \
             `docker run -d -p 5672:5672 rabbitmq:3`) or point --amqp-url at it"
        ),
    };
    let message = format!("{what}. What to do: {advice}");
    if error.is_config() {
        ConfigError(message).into()
    } else {
        anyhow::anyhow!(message)
    }
}
