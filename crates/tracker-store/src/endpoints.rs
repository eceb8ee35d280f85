//! Rasa's `endpoints.yml`, read once (feature `endpoints-yaml`): the one typed reader of the file, for the
//! `event_broker` section (the broker's [`AmqpConfig`]) and the `tracker_store` section ([`SqlConfig`], the
//! database URL, [`RedisConfig`](crate::RedisConfig)).
//!
//! [`Endpoints::from_yaml`] parses the text into typed sections (serde); other sections (`lock_store`,
//! `action_endpoint`, `nlg`, ...) and keys Colloquy does not use are ignored. `${VAR}` is substituted, as
//! Rasa does, only in what is used: each key's value when a section is turned into settings, through the
//! lookup the caller passes (the binary passes the process environment; this library never reads it). An
//! unset variable in a used key is an error that names it; one anywhere else is not.
//!
//! URLs are built here, once, with the `url` crate (which percent-encodes user names and passwords); what
//! may hold a password is shown through the storage layer's [`colloquy_storage::redact`] and each config's
//! `target()`.
//!
//! ```
//! use colloquy_tracker_store::endpoints::Endpoints;
//!
//! let yaml = "
//! event_broker:
//!   type: pika
//!   url: ${RABBIT_HOST}
//!   username: guest
//!   password: guest
//!   queues: [rasa_core_events]
//! tracker_store:
//!   type: sql
//!   dialect: postgresql
//!   url: localhost
//!   db: rasa
//! lock_store:
//!   type: redis
//!   password: ${NOT_SET_AND_NOT_USED}
//! ";
//! let env = |name: &str| (name == "RABBIT_HOST").then(|| "rabbit.internal".to_owned());
//! let endpoints = Endpoints::from_yaml(yaml)?;
//! let amqp = endpoints.amqp_config(env)?;
//! assert_eq!(amqp.target(), "amqp://guest@rabbit.internal:5672/%2f");
//! assert_eq!(endpoints.database_url(env)?.as_deref(), Some("postgres://localhost:5432/rasa"));
//! # Ok::<(), colloquy_tracker_store::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use colloquy_broker::AmqpConfig;
use serde::Deserialize;

use crate::config::SqlConfig;
use crate::error::{Error, Result};

/// The sections of Rasa's `endpoints.yml` that Colloquy reads, typed. Parse once with
/// [`Endpoints::from_yaml`], then turn each section into settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Endpoints {
    /// `event_broker:` (Rasa's `pika` broker).
    #[serde(default)]
    pub event_broker: Option<EventBrokerSection>,
    /// `tracker_store:` (`sql` or `redis`).
    #[serde(default)]
    pub tracker_store: Option<TrackerStoreSection>,
}

/// A scalar value of the file (a string, number or boolean), as written: `${VAR}` is not substituted yet.
#[derive(Clone, PartialEq)]
pub struct Scalar(String);

/// Rasa's keys of the `event_broker` section (type `pika`). Others are ignored, as Rasa does.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct EventBrokerSection {
    /// `type`: `pika` (or `rasa.core.brokers.pika.PikaEventBroker`).
    #[serde(rename = "type")]
    pub kind: Option<Scalar>,
    /// `url`: a host, or a whole `amqp://` / `amqps://` URL.
    pub url: Option<Scalar>,
    /// `username` (default `guest`; over a URL's).
    pub username: Option<Scalar>,
    /// `password` (default `guest`; over a URL's).
    pub password: Option<Scalar>,
    /// `port` (default 5672; over a URL's).
    pub port: Option<Scalar>,
    /// `queues`: a list or one name.
    pub queues: Option<OneOrMany>,
    /// `queue`: Rasa 1.x's single queue.
    pub queue: Option<Scalar>,
    /// `exchange_name` (default `rasa-exchange`).
    pub exchange_name: Option<Scalar>,
    /// `connection_attempts`.
    pub connection_attempts: Option<Scalar>,
    /// `retry_delay_in_seconds`.
    pub retry_delay_in_seconds: Option<Scalar>,
    /// `raise_on_failure` (= [`AmqpConfig::with_fail_when_full`]).
    pub raise_on_failure: Option<Scalar>,
    /// `should_keep_unpublished_messages`: accepted; Colloquy always keeps unpublished events.
    pub should_keep_unpublished_messages: Option<Scalar>,
}

/// A list of scalars, or one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A YAML sequence.
    Many(Vec<Scalar>),
    /// A single value.
    One(Scalar),
}

/// Rasa's keys of the `tracker_store` section, for `type: sql` and `type: redis`. Others (Rasa's pool
/// settings, ...) are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct TrackerStoreSection {
    /// `type`: `sql` (Rasa's default) or `redis`.
    #[serde(rename = "type")]
    pub kind: Option<Scalar>,
    /// `store_type`: Rasa's older name of `type`.
    pub store_type: Option<Scalar>,
    /// `dialect` (SQL): `postgresql`, `mysql`, `sqlite` (default), also SQLAlchemy's `mysql+pymysql`, ...
    pub dialect: Option<Scalar>,
    /// `url`: a host, `host:port`, or a whole database / `redis://` URL.
    pub url: Option<Scalar>,
    /// `port`.
    pub port: Option<Scalar>,
    /// `db`: the database (SQL; default `rasa.db`) or the database number (Redis; default 0).
    pub db: Option<Scalar>,
    /// `username`.
    pub username: Option<Scalar>,
    /// `password`.
    pub password: Option<Scalar>,
    /// `login_db` (SQL): the database to connect to first, to create `db` when it is missing.
    pub login_db: Option<Scalar>,
    /// `query` (SQL): URL query parameters (`sslmode`, ...).
    #[serde(default)]
    pub query: BTreeMap<String, Scalar>,
    /// `key_prefix` (Redis).
    pub key_prefix: Option<Scalar>,
    /// `record_exp` (Redis): seconds.
    pub record_exp: Option<Scalar>,
    /// `use_ssl` (Redis).
    pub use_ssl: Option<Scalar>,
    /// `ssl_keyfile` (Redis): not supported.
    pub ssl_keyfile: Option<Scalar>,
    /// `ssl_certfile` (Redis): not supported.
    pub ssl_certfile: Option<Scalar>,
    /// `ssl_ca_certs` (Redis): not supported.
    pub ssl_ca_certs: Option<Scalar>,
}

impl Endpoints {
    /// Parses the text of an `endpoints.yml`. Only YAML syntax and the shapes of the two sections read here
    /// are checked; no variable is looked up yet.
    pub fn from_yaml(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str::<Option<Self>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|error| {
                Error::Config(format!("the endpoints file is not valid YAML: {error}"))
            })
    }

    /// The broker settings of the `event_broker` section; an error when there is none.
    pub fn amqp_config(&self, env: impl Fn(&str) -> Option<String>) -> Result<AmqpConfig> {
        self.event_broker
            .as_ref()
            .ok_or_else(|| {
                Error::Config("the endpoints file has no `event_broker` section".into())
            })?
            .amqp_config(&env)
    }

    /// The SQL store settings of the `tracker_store` section; an error when there is none.
    pub fn sql_config(&self, env: impl Fn(&str) -> Option<String>) -> Result<SqlConfig> {
        self.tracker_store
            .as_ref()
            .ok_or_else(|| {
                Error::Config("the endpoints file has no `tracker_store` section".into())
            })?
            .sql_config(&env)
    }

    /// The database URL of an SQL `tracker_store` section (what the consumer stores into); `None` without
    /// a `tracker_store` section.
    pub fn database_url(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
        self.tracker_store
            .as_ref()
            .map(|section| section.database_url(&env))
            .transpose()
    }

    /// The Redis store settings when the `tracker_store` section has `type: redis`; `None` otherwise.
    #[cfg(feature = "redis")]
    pub fn redis_config(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<crate::RedisConfig>> {
        match &self.tracker_store {
            Some(section) if section.is_redis(&env)? => section.redis_config(&env).map(Some),
            _ => Ok(None),
        }
    }
}

impl EventBrokerSection {
    /// The broker settings this section describes, `${VAR}` substituted in the keys it reads.
    pub fn amqp_config(&self, env: &impl Fn(&str) -> Option<String>) -> Result<AmqpConfig> {
        let text = |scalar: &Option<Scalar>| scalar.as_ref().map(|s| s.expand(env)).transpose();
        let kind = text(&self.kind)?.unwrap_or_default();
        if !matches!(
            kind.as_str(),
            "pika" | "rasa.core.brokers.pika.PikaEventBroker"
        ) {
            return Err(Error::Config(format!(
                "event_broker type `{kind}` is not supported here (expected `pika`)"
            )));
        }
        let port = text(&self.port)?
            .map(|port| {
                port.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| Error::Config(format!("port {port} is out of range (1-65535)")))
            })
            .transpose()?;
        let host = text(&self.url)?.unwrap_or_else(|| "localhost".to_owned());
        // A whole URL carries its own credentials and port (as with Rasa); explicit keys override them.
        let base = if host.contains("://") {
            host
        } else {
            format!("amqp://{}:5672/%2f", bracketed(&host))
        };
        let username = text(&self.username)?;
        let password = text(&self.password)?;
        let url = with_userinfo_and_port(
            &base,
            username
                .as_deref()
                .or((!base_has_user(&base)).then_some("guest")),
            password
                .as_deref()
                .or((!base_has_user(&base)).then_some("guest")),
            port,
        )?;
        let mut config = AmqpConfig::from_url(&url).map_err(broker_config)?;
        let queues = match (&self.queues, &self.queue) {
            (Some(OneOrMany::Many(items)), _) => items
                .iter()
                .map(|item| item.expand(env))
                .collect::<Result<Vec<_>>>()?,
            (Some(OneOrMany::One(single)), _) | (None, Some(single)) => vec![single.expand(env)?],
            (None, None) => vec![colloquy_broker::DEFAULT_QUEUE.to_owned()],
        };
        config = config.with_queues(queues).map_err(broker_config)?;
        if let Some(exchange) = text(&self.exchange_name)? {
            config = config.with_exchange(&exchange).map_err(broker_config)?;
        }
        if let Some(attempts) = text(&self.connection_attempts)? {
            let attempts = attempts
                .trim()
                .parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    Error::Config(format!("connection_attempts {attempts} must be 1 or more"))
                })?;
            config = config.with_connection_attempts(attempts);
        }
        if let Some(delay) = text(&self.retry_delay_in_seconds)? {
            let delay = delay
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "retry_delay_in_seconds {delay} is not a valid duration"
                    ))
                })?;
            let max = config.retry_delays().1.max(delay);
            config = config
                .with_retry_delays(delay, max)
                .map_err(broker_config)?;
        }
        if let Some(raise) = text(&self.raise_on_failure)? {
            config = config.with_fail_when_full(boolean("raise_on_failure", &raise)?);
        }
        if let Some(keep) = text(&self.should_keep_unpublished_messages)? {
            boolean("should_keep_unpublished_messages", &keep)?;
        }
        Ok(config)
    }
}

impl TrackerStoreSection {
    fn kind(&self, env: &impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
        self.kind
            .as_ref()
            .or(self.store_type.as_ref())
            .map(|kind| kind.expand(env))
            .transpose()
    }

    #[cfg(feature = "redis")]
    fn is_redis(&self, env: &impl Fn(&str) -> Option<String>) -> Result<bool> {
        Ok(self
            .kind(env)?
            .is_some_and(|kind| kind.eq_ignore_ascii_case("redis")))
    }

    /// The SQL store settings this section describes (`type: sql`), `${VAR}` substituted in the keys it
    /// reads; `login_db` when given.
    pub fn sql_config(&self, env: &impl Fn(&str) -> Option<String>) -> Result<SqlConfig> {
        let config = SqlConfig::from_url(&self.database_url(env)?)?;
        Ok(match &self.login_db {
            Some(login_db) => config.with_login_db(login_db.expand(env)?),
            None => config,
        })
    }

    /// The database URL this section describes (`type: sql`): `sqlite://<db>` for Rasa's default dialect, a
    /// server URL for `dialect: postgresql` or `mysql` (also SQLAlchemy's `mysql+pymysql`,
    /// `postgresql+psycopg2`, ...).
    pub fn database_url(&self, env: &impl Fn(&str) -> Option<String>) -> Result<String> {
        let kind = self.kind(env)?.unwrap_or_else(|| "sql".to_owned());
        if !kind.eq_ignore_ascii_case("sql") {
            return Err(Error::Config(format!(
                "tracker store type `{kind}` is not supported; use `type: sql`"
            )));
        }
        let text = |scalar: &Option<Scalar>| scalar.as_ref().map(|s| s.expand(env)).transpose();
        let dialect = text(&self.dialect)?.unwrap_or_else(|| "sqlite".to_owned());
        let db = text(&self.db)?.unwrap_or_else(|| "rasa.db".to_owned());
        // SQLAlchemy names a driver after `+`: the dialect is what comes before it.
        let (scheme, default_port) = match dialect.split('+').next().unwrap_or_default() {
            "sqlite" => return Ok(format!("sqlite://{db}")),
            "postgresql" | "postgres" => ("postgres", 5432),
            "mysql" | "mariadb" => ("mysql", 3306),
            _ => {
                return Err(Error::Config(format!(
                    "SQL dialect `{dialect}` is not supported; use `postgresql`, `mysql` or `sqlite`"
                )));
            }
        };
        let url = text(&self.url)?;
        // Like Rasa: a `url` that contains `://` is the whole database URL, and the other keys are ignored.
        if let Some(url) = url.as_deref().filter(|url| url.contains("://")) {
            let (given_scheme, rest) = url.split_once("://").unwrap_or_default();
            let scheme = match given_scheme.split('+').next().unwrap_or_default() {
                "postgresql" => "postgresql",
                _ => scheme,
            };
            return Ok(format!("{scheme}://{rest}"));
        }
        let (host, url_port) = match url.as_deref() {
            Some(url) => split_host_port(url)?,
            None => ("localhost".to_owned(), None),
        };
        let port = match (url_port, text(&self.port)?) {
            (Some(port), _) => port,
            (None, Some(port)) => parse_port(&port)?,
            (None, None) => default_port,
        };
        let mut parsed = parse_url(&format!("{scheme}://{}:{port}/", bracketed(&host)))?;
        parsed
            .path_segments_mut()
            .map_err(|()| bad_url())?
            .push(&db);
        if !self.query.is_empty() {
            let mut pairs = parsed.query_pairs_mut();
            for (key, value) in &self.query {
                pairs.append_pair(key, &value.expand(env)?);
            }
        }
        let username = text(&self.username)?;
        // Rasa reads `password` whatever `username` says; a URL can hold it only after a user name.
        let password = text(&self.password)?.filter(|_| username.is_some());
        set_userinfo(&mut parsed, username.as_deref(), password.as_deref())?;
        Ok(parsed.into())
    }

    /// The Redis store settings this section describes (`type: redis`): `url` (the host, as Rasa reads it;
    /// a whole `redis://` URL is accepted too), `port`, `db`, `username`, `password`, `use_ssl`,
    /// `key_prefix`, `record_exp`, `${VAR}` substituted in the keys it reads.
    #[cfg(feature = "redis")]
    pub fn redis_config(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<crate::RedisConfig> {
        for (key, value) in [
            ("ssl_keyfile", &self.ssl_keyfile),
            ("ssl_certfile", &self.ssl_certfile),
            ("ssl_ca_certs", &self.ssl_ca_certs),
        ] {
            if value.is_some() {
                return Err(Error::Config(format!(
                    "`tracker_store.{key}` is not supported by the Redis store"
                )));
            }
        }
        let text = |scalar: &Option<Scalar>| scalar.as_ref().map(|s| s.expand(env)).transpose();
        let host = text(&self.url)?.unwrap_or_else(|| "localhost".to_owned());
        let url = if host.contains("://") {
            host
        } else {
            let port = text(&self.port)?
                .map(|port| parse_port(&port))
                .transpose()?
                .unwrap_or(6379);
            let db = match text(&self.db)? {
                Some(db) => db
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| Error::Config(format!("`db` `{db}` is not a number")))?,
                None => 0,
            };
            let tls = match text(&self.use_ssl)? {
                None => false,
                Some(flag) => boolean("use_ssl", &flag)?,
            };
            let scheme = if tls { "rediss" } else { "redis" };
            let mut parsed = parse_url(&format!("{scheme}://{}:{port}/{db}", bracketed(&host)))?;
            let username = text(&self.username)?;
            let password = text(&self.password)?;
            if username.is_some() || password.is_some() {
                set_userinfo(
                    &mut parsed,
                    Some(username.as_deref().unwrap_or_default()),
                    password.as_deref(),
                )?;
            }
            parsed.into()
        };
        let record_exp = text(&self.record_exp)?
            .map(|seconds| {
                seconds
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "`record_exp` `{seconds}` is not a number of seconds"
                        ))
                    })
            })
            .transpose()?;
        Ok(crate::RedisConfig::from_url(&url)?
            .with_key_prefix(text(&self.key_prefix)?.as_deref())
            .with_record_exp(record_exp))
    }
}

impl Scalar {
    /// The value with every `${VAR}` replaced by `env("VAR")` (see [`expand_env`]).
    pub fn expand(&self, env: &impl Fn(&str) -> Option<String>) -> Result<String> {
        expand_env(&self.0, env)
    }

    /// The value as written, `${VAR}` included.
    pub fn as_written(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // It may be a password: show only whether it is a reference to a variable.
        if self.0.contains("${") {
            fmt::Debug::fmt(&self.0, f)
        } else {
            f.write_str("\"…\"")
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar(value.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Expands `${VAR}` references in one value of an endpoints file, as Rasa does: each is replaced by
/// `env("VAR")`, and a variable that is not set is an error that names it. The one implementation of Rasa's
/// substitution; [`Scalar::expand`] applies it to the keys that are read, and only to those.
pub fn expand_env(text: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(Error::Config(format!("unterminated `${{` in `{text}`")));
        };
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            Error::Config(format!(
                "environment variable `{name}` used in the endpoints file is not set"
            ))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::Config(format!("`{key}` must be true or false"))),
    }
}

fn broker_config(error: colloquy_broker::Error) -> Error {
    Error::Config(error.to_string())
}

fn bad_url() -> Error {
    Error::Config("the endpoints file describes no valid URL".into())
}

/// Parses a URL built from the file's keys; the message never shows the URL (it may hold a password).
fn parse_url(text: &str) -> Result<url::Url> {
    url::Url::parse(text).map_err(|error| {
        Error::Config(format!(
            "the endpoints file describes no valid URL: {error}"
        ))
    })
}

/// An IPv6 address in brackets, as a URL writes it.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn base_has_user(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| !url.username().is_empty())
}

/// `url` with the user name and password set (percent-encoded by the `url` crate), and the port.
fn with_userinfo_and_port(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
    port: Option<u16>,
) -> Result<String> {
    let mut parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        // Not a URL the `url` crate reads: let the broker say what is wrong with it.
        Err(_) => return Ok(url.to_owned()),
    };
    set_userinfo(&mut parsed, username, password)?;
    if let Some(port) = port {
        parsed.set_port(Some(port)).map_err(|()| bad_url())?;
    }
    Ok(parsed.into())
}

fn set_userinfo(url: &mut url::Url, username: Option<&str>, password: Option<&str>) -> Result<()> {
    if let Some(username) = username {
        url.set_username(username).map_err(|()| bad_url())?;
    }
    if let Some(password) = password {
        url.set_password(Some(password)).map_err(|()| bad_url())?;
    }
    Ok(())
}

fn split_host_port(url: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = url.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::Config(format!("`url` `{url}` has an unclosed `[`")))?;
        let port = after.strip_prefix(':').map(parse_port).transpose()?;
        return Ok((host.to_owned(), port));
    }
    match url.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_owned(), Some(parse_port(port)?))),
        _ => Ok((url.to_owned(), None)),
    }
}

fn parse_port(port: &str) -> Result<u16> {
    port.trim()
        .parse()
        .map_err(|_| Error::Config(format!("`port` `{port}` is not a port number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn amqp(yaml: &str, env: impl Fn(&str) -> Option<String>) -> Result<AmqpConfig> {
        Endpoints::from_yaml(yaml)?.amqp_config(env)
    }

    #[test]
    fn event_broker_with_host_and_keys() {
        let yaml = "
event_broker:
  type: pika
  url: ${RABBIT_HOST}
  username: ${RABBIT_USER}
  password: p@ss
  port: 5673
  queues: [a, b]
  exchange_name: ex
  connection_attempts: 3
  retry_delay_in_seconds: 2
  raise_on_failure: true
  should_keep_unpublished_messages: false
tracker_store:
  type: sql
";
        let env = |name: &str| match name {
            "RABBIT_HOST" => Some("rabbit.local".to_owned()),
            "RABBIT_USER" => Some("alice".to_owned()),
            _ => None,
        };
        let config = amqp(yaml, env).unwrap();
        assert_eq!(config.target(), "amqp://alice@rabbit.local:5673/%2f");
        let queues: Vec<_> = config.queues().iter().map(|q| q.as_str()).collect();
        assert_eq!(queues, ["a", "b"]);
        assert_eq!(config.exchange().as_str(), "ex");
        assert_eq!(config.connection_attempts().get(), 3);
        assert_eq!(config.retry_delays().0, Duration::from_secs(2));
        assert!(config.fail_when_full());
    }

    #[test]
    fn event_broker_with_full_url_and_old_queue_key() {
        let yaml = "event_broker:\n  type: pika\n  url: amqp://bob:pw@host:5674/v\n  queue: old\n";
        let config = amqp(yaml, no_env).unwrap();
        assert_eq!(config.target(), "amqp://bob@host:5674/v");
        assert_eq!(config.queues()[0].as_str(), "old");
        let yaml = "event_broker:\n  type: pika\n  url: amqp://bob:pw@host:5674/v\n  password: other\n  port: 1\n";
        let config = amqp(yaml, no_env).unwrap();
        assert_eq!(config.target(), "amqp://bob@host:1/v");
        let yaml = "event_broker:\n  type: pika\n  url: localhost\n  queues: single\n";
        let config = amqp(yaml, no_env).unwrap();
        assert_eq!(config.queues()[0].as_str(), "single");
        assert_eq!(config.target(), "amqp://guest@localhost:5672/%2f");
    }

    #[test]
    fn keys_override_a_whole_url_and_are_percent_encoded() {
        let url = |base, user, password, port| {
            with_userinfo_and_port(base, user, password, port).unwrap()
        };
        assert_eq!(
            url("amqp://bob:pw@host:5674/v", None, Some("other"), Some(1)),
            "amqp://bob:other@host:1/v"
        );
        assert_eq!(
            url(
                "amqp://rabbit.local:5672/%2f",
                Some("alice"),
                Some("p@ss:w/rd"),
                Some(5673)
            ),
            "amqp://alice:p%40ss%3Aw%2Frd@rabbit.local:5673/%2f"
        );
    }

    #[test]
    fn event_broker_errors_are_clear() {
        let cases = [
            ("tracker_store: {}\n", "no `event_broker` section"),
            (
                "event_broker:\n  type: kafka\n",
                "type `kafka` is not supported",
            ),
            (
                "event_broker:\n  type: pika\n  url: ${NOPE}\n",
                "`NOPE` used in the endpoints file is not set",
            ),
            (
                "event_broker:\n  type: pika\n  port: 70000\n",
                "port 70000 is out of range",
            ),
            (
                "event_broker:\n  type: pika\n  url: http://x\n",
                "unsupported URL scheme `http`",
            ),
            ("event_broker: [\n", "not valid YAML"),
        ];
        for (yaml, expected) in cases {
            let error = amqp(yaml, no_env).unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn substitutes_only_what_is_used() {
        // Rasa's rule: an unset variable where nothing reads it is not an error: another section, a key
        // Colloquy ignores, the other kind of tracker store's keys.
        let yaml = "
lock_store:
  type: redis
  password: ${UNSET_LOCK_PASSWORD}
action_endpoint:
  url: ${UNSET_ACTION_URL}
event_broker:
  type: pika
  url: ${RABBIT_HOST}
  ssl_keyfile: ${UNSET_IGNORED_KEY}
tracker_store:
  type: sql
  dialect: postgresql
  url: ${DB_HOST}
  db: rasa
  key_prefix: ${UNSET_REDIS_ONLY_KEY}
";
        let env = |name: &str| match name {
            "RABBIT_HOST" => Some("rabbit.local".to_owned()),
            "DB_HOST" => Some("db.local".to_owned()),
            _ => None,
        };
        let endpoints = Endpoints::from_yaml(yaml).unwrap();
        assert_eq!(
            endpoints.amqp_config(env).unwrap().target(),
            "amqp://guest@rabbit.local:5672/%2f"
        );
        assert_eq!(
            endpoints.database_url(env).unwrap().as_deref(),
            Some("postgres://db.local:5432/rasa")
        );
        // Where it is read, an unset variable is an error that names it.
        let error = endpoints.database_url(no_env).unwrap_err().to_string();
        assert!(error.contains("`DB_HOST`"), "{error}");
        let error = endpoints.amqp_config(no_env).unwrap_err().to_string();
        assert!(error.contains("`RABBIT_HOST`"), "{error}");
    }

    #[test]
    fn an_empty_file_has_no_sections() {
        let endpoints = Endpoints::from_yaml("").unwrap();
        assert!(endpoints.event_broker.is_none() && endpoints.tracker_store.is_none());
        assert_eq!(endpoints.database_url(no_env).unwrap(), None);
    }

    #[test]
    fn expands_variables_and_names_the_missing_one() {
        let env = |name: &str| (name == "A").then(|| "x".to_owned());
        assert_eq!(expand_env("${A}-${A}", &env).unwrap(), "x-x");
        assert_eq!(expand_env("plain", &env).unwrap(), "plain");
        let error = expand_env("${B}", &env).unwrap_err().to_string();
        assert!(error.contains("`B`"), "{error}");
        assert!(expand_env("${A", &env).is_err());
    }
}
