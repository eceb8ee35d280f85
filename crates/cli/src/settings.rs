//! Turning flags, environment and Rasa's endpoints.yml into typed settings — the one place that reads them.

use std::num::NonZeroU16;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use colloquy_broker::AmqpConfig;

use crate::cli::{BrokerArgs, DatabaseArgs};

/// The database used when none is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://colloquy.db";

/// Rasa's endpoints.yml, read and parsed once (by the one reader, `colloquy_tracker_store::Endpoints`);
/// each command turns the sections it uses into settings, `${VAR}` substituted in what it reads.
#[derive(Debug, Clone)]
pub struct Endpoints {
    path: PathBuf,
    parsed: colloquy_tracker_store::Endpoints,
}

impl Endpoints {
    /// Reads and parses the file, if one was given.
    pub fn load(path: Option<&Path>) -> Result<Option<Self>> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the endpoints file {}", path.display()))?;
        let parsed = colloquy_tracker_store::Endpoints::from_yaml(&text)
            .with_context(|| format!("invalid endpoints file {}", path.display()))?;
        Ok(Some(Self {
            path: path.to_owned(),
            parsed,
        }))
    }
}

impl Endpoints {
    /// Whether the file has an `event_broker` section.
    pub fn has_event_broker(&self) -> bool {
        self.parsed.event_broker.is_some()
    }

    /// The database URL of a `tracker_store` section of type `sql`, if there is one.
    pub fn sql_tracker_store(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<String>> {
        self.parsed
            .database_url(env)
            .with_context(|| format!("invalid tracker_store section in {}", self.path.display()))
    }
}

/// Looks an environment variable up for `${VAR}` substitution in endpoints.yml.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The broker settings: flags and environment over endpoints.yml's `event_broker` over the defaults.
pub fn amqp_config(args: &BrokerArgs, endpoints: Option<&Endpoints>) -> Result<AmqpConfig> {
    let mut config = match (&args.amqp_url, endpoints) {
        (Some(url), _) => AmqpConfig::from_url(url).context("invalid --amqp-url")?,
        (None, Some(endpoints)) => endpoints.parsed.amqp_config(env_lookup).with_context(|| {
            format!(
                "invalid event_broker section in {}",
                endpoints.path.display()
            )
        })?,
        (None, None) => AmqpConfig::default(),
    };
    if let Some(exchange) = &args.exchange {
        config = config
            .with_exchange(exchange)
            .context("invalid --exchange")?;
    }
    if !args.queues.is_empty() {
        config = config
            .with_queues(&args.queues)
            .context("invalid --queue")?;
    }
    config = config.with_queue_type(args.queue_type.into());
    if let Ok(environment) = std::env::var("RASA_ENVIRONMENT") {
        config = config
            .with_app_id(Some(&environment))
            .context("invalid RASA_ENVIRONMENT")?;
    }
    let tls = colloquy_broker::TlsFiles {
        client_certificate: std::env::var_os("RABBITMQ_SSL_CLIENT_CERTIFICATE").map(PathBuf::from),
        client_key: std::env::var_os("RABBITMQ_SSL_CLIENT_KEY").map(PathBuf::from),
        ..config.tls_files().clone()
    };
    config = config
        .with_tls_files(tls)
        .context("invalid TLS client certificate settings")?;
    Ok(config)
}

/// The batch size: `--batch-size`, else the consumer's default for the mode (larger with `--analytics`, whose
/// per-conversation work is done once per batch).
pub fn batch_size_for(flag: Option<u32>, analytics: bool) -> usize {
    flag.map_or_else(
        || colloquy_consumer::ConsumerOptions::default_batch_size(analytics),
        |size| size as usize,
    )
}

/// The prefetch for a batch size: twice the batch, so one batch fills while the previous one commits.
pub fn prefetch_for(batch_size: usize, flag: Option<u16>) -> NonZeroU16 {
    let prefetch =
        flag.unwrap_or_else(|| u16::try_from(batch_size.saturating_mul(2)).unwrap_or(u16::MAX));
    NonZeroU16::new(prefetch).unwrap_or(NonZeroU16::MIN)
}

/// The database URL: flag and environment over endpoints.yml's `tracker_store` over the default.
pub fn database_url(args: &DatabaseArgs, endpoints: Option<&Endpoints>) -> Result<String> {
    if let Some(url) = &args.database_url {
        return Ok(url.clone());
    }
    let from_endpoints = match endpoints {
        Some(endpoints) => endpoints.parsed.database_url(env_lookup).with_context(|| {
            format!(
                "invalid tracker_store section in {}",
                endpoints.path.display()
            )
        })?,
        None => None,
    };
    if let Some(url) = from_endpoints {
        return Ok(url);
    }
    Ok(DEFAULT_DATABASE_URL.to_owned())
}

/// The Redis tracker store of an endpoints.yml `tracker_store` section of type `redis`, if there is one.
pub fn redis_tracker_store(
    endpoints: &Endpoints,
) -> Result<Option<colloquy_tracker_store::RedisConfig>> {
    endpoints.parsed.redis_config(env_lookup).with_context(|| {
        format!(
            "invalid tracker_store section in {}",
            endpoints.path.display()
        )
    })
}

/// The flags whose value is a URL that may carry a password (with `--database-url`, export's alias).
const URL_FLAGS: [&str; 3] = ["--tracker-store", "--database-url", "--amqp-url"];

/// A command line fit to print: the password in the value of every URL flag (`--amqp-url`,
/// `--tracker-store`, `--database-url`, as `--flag VALUE` or `--flag=VALUE`) replaced by `***`. Also says
/// whether a password was removed, so that the caller can tell the user to give it again.
pub fn redact_command_line(args: impl IntoIterator<Item = String>) -> (Vec<String>, bool) {
    let mut redacted = false;
    let mut value_of_url_flag = false;
    let mut printable = Vec::new();
    for arg in args {
        let shown = if value_of_url_flag {
            colloquy_storage::redact(&arg)
        } else {
            match arg.split_once('=') {
                Some((flag, value)) if URL_FLAGS.contains(&flag) => {
                    format!("{flag}={}", colloquy_storage::redact(value))
                }
                _ => arg.clone(),
            }
        };
        value_of_url_flag = URL_FLAGS.contains(&arg.as_str());
        redacted |= shown != arg;
        printable.push(shown);
    }
    (printable, redacted)
}

#[cfg(test)]
mod tests {
    use super::{batch_size_for, prefetch_for, redact_command_line};

    #[test]
    fn analytics_takes_larger_batches_unless_told_otherwise() {
        assert_eq!(batch_size_for(None, false), 1000);
        assert_eq!(batch_size_for(None, true), 5000);
        assert_eq!(batch_size_for(Some(50), true), 50);
        assert_eq!(prefetch_for(batch_size_for(None, true), None).get(), 10_000);
    }

    fn redacted(args: &[&str]) -> (Vec<String>, bool) {
        redact_command_line(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn command_lines_lose_their_passwords() {
        let cases: [(&[&str], &[&str], bool); 6] = [
            (
                &[
                    "colloquy",
                    "export",
                    "--tracker-store",
                    "postgres://u:secret@h/db",
                ],
                &[
                    "colloquy",
                    "export",
                    "--tracker-store",
                    "postgres://u:***@h/db",
                ],
                true,
            ),
            (
                &[
                    "colloquy",
                    "export",
                    "--amqp-url=amqp://guest:pw@h:5672/%2f",
                ],
                &[
                    "colloquy",
                    "export",
                    "--amqp-url=amqp://guest:***@h:5672/%2f",
                ],
                true,
            ),
            (
                &[
                    "colloquy",
                    "export",
                    "--database-url",
                    "postgresql://u:p@h/db",
                    "--queue",
                    "q",
                ],
                &[
                    "colloquy",
                    "export",
                    "--database-url",
                    "postgresql://u:***@h/db",
                    "--queue",
                    "q",
                ],
                true,
            ),
            (
                &["colloquy", "export", "--tracker-store", "postgres://u@h/db"],
                &["colloquy", "export", "--tracker-store", "postgres://u@h/db"],
                false,
            ),
            // Only the values of URL flags: a conversation id that looks like a URL stays as it is.
            (
                &["colloquy", "export", "--conversation-ids", "a://b:c@d"],
                &["colloquy", "export", "--conversation-ids", "a://b:c@d"],
                false,
            ),
            (&["colloquy", "export"], &["colloquy", "export"], false),
        ];
        for (args, expected, removed) in cases {
            let (printable, was_removed) = redacted(args);
            assert_eq!(printable, expected, "{args:?}");
            assert_eq!(was_removed, removed, "{args:?}");
            assert!(
                !printable
                    .iter()
                    .any(|arg| arg.contains("secret") || arg.contains(":pw@"))
            );
        }
    }
}
