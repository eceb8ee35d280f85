//! Connection settings of the PostgreSQL store: from a URL, or from the `tracker_store` section of Rasa's
//! `endpoints.yml`.
//!
//! The library never reads the environment or files itself: [`PostgresConfig::from_endpoints_yaml`] takes the
//! YAML text and a closure that looks variables up, used for Rasa's `${VAR}` substitution.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

/// Connection and relay settings of [`PostgresStore`](crate::PostgresStore). Its `Debug` output hides the
/// password.
#[derive(Clone)]
pub struct PostgresConfig {
    url: String,
    login_db: Option<String>,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How many times start-up tries to reach the database before giving up with
    /// [`Error::Unavailable`], with exponential back-off between attempts.
    pub connect_attempts: usize,
    /// How long one connection attempt (or a wait for a pooled connection) may take.
    pub connect_timeout: Duration,
    /// The outbox relay's settings.
    pub relay: RelayConfig,
}

/// How the outbox relay works: bounded batches, a bounded wait for the broker's confirms.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The most outbox entries published per batch (and per broker flush).
    pub batch_size: u32,
    /// How long to wait for the broker to confirm a batch before retrying it.
    pub confirm_timeout: Duration,
    /// The relay is woken by every save of this store; this is how often it also looks for entries left by
    /// other processes or by a crash.
    pub idle_check: Duration,
    /// The longest pause between retries after the database or the broker failed.
    pub max_retry_delay: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            confirm_timeout: Duration::from_secs(30),
            idle_check: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("target", &self.target())
            .field("login_db", &self.login_db)
            .field("max_connections", &self.max_connections)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// Settings for the database at `url` (`postgres://` or `postgresql://`), with default pool, retry and
    /// relay settings.
    pub fn from_url(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::Config(
                "the database URL must start with `postgres://` or `postgresql://`".into(),
            ));
        }
        // Validate once, here; the message of a parse error never contains the URL (it may hold a password).
        PgConnectOptions::from_str(url).map_err(|error| {
            Error::Config(format!("invalid PostgreSQL URL ({})", kind_of(&error)))
        })?;
        Ok(Self {
            url: url.to_owned(),
            login_db: None,
            max_connections: 8,
            connect_attempts: 5,
            connect_timeout: Duration::from_secs(5),
            relay: RelayConfig::default(),
        })
    }

    /// Settings from the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`, `dialect:
    /// postgresql`, `url` (a host, `host:port`, or a full URL), `port`, `db`, `username`, `password`,
    /// `login_db`, `query`). `${VAR}` in any string is replaced by `env("VAR")`; an unset variable is an
    /// error, as in Rasa.
    pub fn from_endpoints_yaml(yaml: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut document: serde_norway::Value = serde_norway::from_str(yaml)
            .map_err(|error| Error::Config(format!("endpoints YAML: {error}")))?;
        substitute_env(&mut document, &env)?;
        let section = document
            .get("tracker_store")
            .filter(|section| !section.is_null())
            .ok_or_else(|| {
                Error::Config("the endpoints file has no `tracker_store` section".into())
            })?;
        let section: SqlSection = serde_norway::from_value(section.clone())
            .map_err(|error| Error::Config(format!("`tracker_store`: {error}")))?;
        section.into_config()
    }

    /// Host, port and database, without credentials: what error messages and logs may show.
    pub fn target(&self) -> String {
        match PgConnectOptions::from_str(&self.url) {
            Ok(options) => format!(
                "{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            ),
            Err(_) => "<invalid URL>".into(),
        }
    }

    /// The database to create if absent, connecting to `login_db` first (Rasa's `login_db`).
    pub fn login_db(&self) -> Option<&str> {
        self.login_db.as_deref()
    }

    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions> {
        Ok(PgConnectOptions::from_str(&self.url)
            .map_err(|error| {
                Error::Config(format!("invalid PostgreSQL URL ({})", kind_of(&error)))
            })?
            .application_name("colloquy-tracker-store"))
    }
}

/// The database URL of the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`), for either of
/// Rasa's dialects: `sqlite://<db>` (Rasa's default) or a PostgreSQL URL. `Ok(None)` when the file has no
/// `tracker_store` section. `${VAR}` is substituted as in [`PostgresConfig::from_endpoints_yaml`]. The consumer service reads its database from here.
pub fn database_url_from_endpoints_yaml(
    yaml: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    let mut document: serde_norway::Value = serde_norway::from_str(yaml)
        .map_err(|error| Error::Config(format!("endpoints YAML: {error}")))?;
    substitute_env(&mut document, &env)?;
    let Some(section) = document
        .get("tracker_store")
        .filter(|section| !section.is_null())
    else {
        return Ok(None);
    };
    let section: SqlSection = serde_norway::from_value(section.clone())
        .map_err(|error| Error::Config(format!("`tracker_store`: {error}")))?;
    section.database_url().map(Some)
}

fn kind_of(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Configuration(_) => "bad setting",
        _ => "unreadable",
    }
}

/// Rasa's keys of the `tracker_store` section (others, such as Rasa's pool settings, are ignored).
#[derive(Deserialize)]
struct SqlSection {
    #[serde(rename = "type")]
    kind: Option<String>,
    dialect: Option<String>,
    url: Option<String>,
    #[serde(default)]
    port: Option<Scalar>,
    db: Option<String>,
    username: Option<String>,
    password: Option<String>,
    login_db: Option<String>,
    #[serde(default)]
    query: BTreeMap<String, Scalar>,
}

/// A YAML scalar that may arrive as a number or, after `${VAR}` substitution, as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(i64),
    Bool(bool),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Text(s) => s.clone(),
        }
    }
}

impl SqlSection {
    fn check_type(&self) -> Result<()> {
        let kind = self.kind.as_deref().unwrap_or("sql");
        if !kind.eq_ignore_ascii_case("sql") {
            return Err(Error::Config(format!(
                "tracker store type `{kind}` is not supported; use `type: sql`"
            )));
        }
        Ok(())
    }

    /// The database URL the section describes: `sqlite://<db>` for Rasa's default dialect, a PostgreSQL URL for
    /// `dialect: postgresql`.
    fn database_url(&self) -> Result<String> {
        self.check_type()?;
        match self.dialect.as_deref().unwrap_or("sqlite") {
            "sqlite" => Ok(format!(
                "sqlite://{}",
                self.db.as_deref().unwrap_or("rasa.db")
            )),
            dialect if dialect.starts_with("postgres") => self.postgres_url(),
            dialect => Err(Error::Config(format!(
                "SQL dialect `{dialect}` is not supported; use `postgresql` or `sqlite`"
            ))),
        }
    }

    fn into_config(self) -> Result<PostgresConfig> {
        self.check_type()?;
        // Rasa's default dialect is SQLite; this store is PostgreSQL only.
        let dialect = self.dialect.as_deref().unwrap_or("sqlite");
        if !dialect.starts_with("postgres") {
            return Err(Error::Config(format!(
                "SQL dialect `{dialect}` is not supported; use `dialect: postgresql`"
            )));
        }
        let mut config = PostgresConfig::from_url(&self.postgres_url()?)?;
        config.login_db = self.login_db;
        Ok(config)
    }

    fn postgres_url(&self) -> Result<String> {
        // Like Rasa: a `url` that contains `://` is the whole database URL, and the other keys are ignored.
        if let Some(url) = self.url.as_deref().filter(|url| url.contains("://")) {
            return Ok(url.replacen("postgresql+psycopg2://", "postgresql://", 1));
        }
        let (host, url_port) = match self.url.as_deref() {
            Some(url) => split_host_port(url)?,
            None => ("localhost".to_owned(), None),
        };
        let port = match (url_port, &self.port) {
            (Some(port), _) => port,
            (None, Some(port)) => port.text().parse::<u16>().map_err(|_| {
                Error::Config(format!("`port` `{}` is not a port number", port.text()))
            })?,
            (None, None) => 5432,
        };
        let db = self.db.clone().unwrap_or_else(|| "rasa.db".to_owned());
        let mut url = String::from("postgres://");
        if let Some(username) = &self.username {
            url.push_str(&percent_encode(username));
            if let Some(password) = &self.password {
                url.push(':');
                url.push_str(&percent_encode(password));
            }
            url.push('@');
        }
        if host.contains(':') {
            url.push_str(&format!("[{host}]:{port}/"));
        } else {
            url.push_str(&format!("{host}:{port}/"));
        }
        url.push_str(&percent_encode(&db));
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(key, value)| {
                format!("{}={}", percent_encode(key), percent_encode(&value.text()))
            })
            .collect();
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Ok(url)
    }
}

fn split_host_port(url: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = url.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::Config(format!("`url` `{url}` has an unclosed `[`")))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(parse_port(port)?),
            None => None,
        };
        return Ok((host.to_owned(), port));
    }
    match url.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_owned(), Some(parse_port(port)?))),
        _ => Ok((url.to_owned(), None)),
    }
}

fn parse_port(port: &str) -> Result<u16> {
    port.parse()
        .map_err(|_| Error::Config(format!("`{port}` is not a port number")))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Replaces `${VAR}` in every string of the document (Rasa's env-var expansion).
pub(crate) fn substitute_env(
    value: &mut serde_norway::Value,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<()> {
    match value {
        serde_norway::Value::String(text) if text.contains("${") => {
            *text = expand(text, env)?;
        }
        serde_norway::Value::Sequence(items) => {
            for item in items {
                substitute_env(item, env)?;
            }
        }
        serde_norway::Value::Mapping(map) => {
            for (_, item) in map.iter_mut() {
                substitute_env(item, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(text: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String> {
    colloquy_broker::expand_env(text, env).map_err(|error| Error::Config(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "DB_HOST" => Some("db.internal".into()),
            "DB_PASSWORD" => Some("p@ss:w/rd".into()),
            "DB_PORT" => Some("6543".into()),
            _ => None,
        }
    }

    fn url_of(yaml: &str) -> Result<String> {
        PostgresConfig::from_endpoints_yaml(yaml, env).map(|config| config.url)
    }

    #[test]
    fn reads_rasas_tracker_store_section() {
        let check =
            |yaml: &str, expected: &str| assert_eq!(url_of(yaml).unwrap(), expected, "{yaml}");
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: localhost\n  db: rasa\n  username: postgres\n",
            "postgres://postgres@localhost:5432/rasa",
        );
        check(
            "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: ${DB_HOST}\n  port: ${DB_PORT}\n  db: rasa\n  username: u\n  password: ${DB_PASSWORD}\n",
            "postgres://u:p%40ss%3Aw%2Frd@db.internal:6543/rasa",
        );
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: db:5433\n  port: 1\n  db: rasa\n  query:\n    sslmode: disable\n",
            "postgres://db:5433/rasa?sslmode=disable",
        );
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: postgresql://a@b:1/c\n  db: ignored\n",
            "postgresql://a@b:1/c",
        );
        check(
            "event_broker:\n  type: pika\ntracker_store:\n  type: sql\n  dialect: postgresql\n  port: 5432\n",
            "postgres://localhost:5432/rasa.db",
        );
        let config = PostgresConfig::from_endpoints_yaml(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  db: rasa\n  login_db: postgres\n  password: secret\n  username: u\n",
            env,
        )
        .unwrap();
        assert_eq!(config.login_db(), Some("postgres"));
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(config.target(), "localhost:5432/rasa");
    }

    #[test]
    fn refuses_what_it_cannot_use_with_clear_messages() {
        let check = |yaml: &str, needle: &str| {
            let error = url_of(yaml).unwrap_err().to_string();
            assert!(
                error.contains(needle),
                "{error:?} should mention {needle:?}"
            );
        };
        check("event_broker: {}\n", "no `tracker_store` section");
        check(
            "tracker_store:\n  type: mongod\n",
            "type `mongod` is not supported",
        );
        check(
            "tracker_store:\n  type: sql\n",
            "dialect `sqlite` is not supported",
        );
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  password: ${NOPE}\n",
            "environment variable `NOPE`",
        );
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  port: abc\n",
            "not a port number",
        );
        assert!(PostgresConfig::from_url("mysql://x").is_err());
    }

    #[test]
    fn gives_the_database_url_of_either_dialect() {
        let url = |yaml: &str| database_url_from_endpoints_yaml(yaml, env).unwrap();
        assert_eq!(
            url("tracker_store:\n  type: sql\n"),
            Some("sqlite://rasa.db".into())
        );
        assert_eq!(
            url("tracker_store:\n  type: sql\n  dialect: sqlite\n  db: ${DB_HOST}.db\n"),
            Some("sqlite://db.internal.db".into())
        );
        assert_eq!(
            url(
                "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: localhost\n  db: rasa\n"
            ),
            Some("postgres://localhost:5432/rasa".into())
        );
        assert_eq!(url("event_broker:\n  type: pika\n"), None);
        let error = database_url_from_endpoints_yaml(
            "tracker_store:\n  type: sql\n  dialect: mysql\n",
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("dialect `mysql` is not supported"),
            "{error}"
        );
    }
}
