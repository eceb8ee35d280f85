//! Connection settings of the SQL store: from a URL (`postgres://`, `mysql://`, `sqlite://`), or from the
//! `tracker_store` section of Rasa's `endpoints.yml` (`type: sql` with any of Rasa's dialects).
//!
//! The library never reads the environment or files itself: [`SqlConfig::from_endpoints_yaml`] takes the
//! YAML text and a closure that looks variables up, used for Rasa's `${VAR}` substitution.

use std::collections::BTreeMap;
use std::time::Duration;

use colloquy_storage::Dialect;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Connection and relay settings of [`SqlStore`](crate::SqlStore). Its `Debug` output hides the password.
#[derive(Clone)]
pub struct SqlConfig {
    url: String,
    login_db: Option<String>,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How many times start-up tries to reach the database before giving up, with exponential back-off
    /// between attempts.
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
    /// The longest pause between retries after the database or the broker failed (the relay policy,
    /// [`colloquy_retry::Policy::RELAY`], with this longest pause).
    pub max_retry_delay: Duration,
    /// How long [`TrackerStore::close`](crate::TrackerStore::close) waits for the outbox to drain.
    pub close_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            confirm_timeout: Duration::from_secs(30),
            idle_check: Duration::from_secs(1),
            max_retry_delay: colloquy_retry::Policy::RELAY.delay_range().1,
            close_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConfig")
            .field("target", &self.target())
            .field("login_db", &self.login_db)
            .field("max_connections", &self.max_connections)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl SqlConfig {
    /// Settings for the database at `url` (`postgres://`, `postgresql://`, `mysql://`, `mariadb://` or
    /// `sqlite://`), with default pool, retry and relay settings.
    pub fn from_url(url: &str) -> Result<Self> {
        Dialect::of_url(url).map_err(|error| Error::Config(error.to_string()))?;
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
    /// postgresql` / `mysql` / `mysql+pymysql` / `sqlite`, `url` (a host, `host:port`, or a full URL), `port`,
    /// `db`, `username`, `password`, `login_db`, `query`). `${VAR}` in any string is replaced by
    /// `env("VAR")`; an unset variable is an error, as in Rasa.
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
        let mut config = Self::from_url(&section.database_url()?)?;
        config.login_db = section.login_db;
        Ok(config)
    }

    /// Settings for the same database that create it first when it does not exist, connecting to `login_db`
    /// to do so (Rasa's `login_db`; PostgreSQL and MySQL).
    pub fn with_login_db(mut self, login_db: impl Into<String>) -> Self {
        self.login_db = Some(login_db.into());
        self
    }

    /// The database URL (it may hold a password: show [`SqlConfig::target`] instead).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Host, port and database, without credentials: what error messages and logs may show.
    pub fn target(&self) -> String {
        colloquy_storage::target(&self.url)
    }

    /// The database to create if absent, connecting to `login_db` first (Rasa's `login_db`).
    pub fn login_db(&self) -> Option<&str> {
        self.login_db.as_deref()
    }
}

/// The database URL of the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`), for any of
/// Rasa's dialects: `sqlite://<db>` (Rasa's default), a PostgreSQL or a MySQL URL. `Ok(None)` when the file has
/// no `tracker_store` section. `${VAR}` is substituted as in [`SqlConfig::from_endpoints_yaml`]. The consumer
/// service reads its database from here.
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

    /// The database URL the section describes: `sqlite://<db>` for Rasa's default dialect, a server URL for
    /// `dialect: postgresql` or `mysql` (also SQLAlchemy's `mysql+pymysql`, `postgresql+psycopg2`, ...).
    fn database_url(&self) -> Result<String> {
        self.check_type()?;
        let dialect = self.dialect.as_deref().unwrap_or("sqlite");
        // SQLAlchemy names a driver after `+`: the dialect is what comes before it.
        match dialect.split('+').next().unwrap_or_default() {
            "sqlite" => Ok(format!(
                "sqlite://{}",
                self.db.as_deref().unwrap_or("rasa.db")
            )),
            "postgresql" | "postgres" => self.server_url("postgres", 5432),
            "mysql" | "mariadb" => self.server_url("mysql", 3306),
            _ => Err(Error::Config(format!(
                "SQL dialect `{dialect}` is not supported; use `postgresql`, `mysql` or `sqlite`"
            ))),
        }
    }

    fn server_url(&self, scheme: &str, default_port: u16) -> Result<String> {
        // Like Rasa: a `url` that contains `://` is the whole database URL, and the other keys are ignored.
        if let Some(url) = self.url.as_deref().filter(|url| url.contains("://")) {
            let (given_scheme, rest) = url.split_once("://").unwrap_or_default();
            let given_scheme = given_scheme.split('+').next().unwrap_or_default();
            let scheme = if given_scheme == "postgresql" {
                "postgresql"
            } else {
                scheme
            };
            return Ok(format!("{scheme}://{rest}"));
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
            (None, None) => default_port,
        };
        let db = self.db.clone().unwrap_or_else(|| "rasa.db".to_owned());
        let mut url = format!("{scheme}://");
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
        SqlConfig::from_endpoints_yaml(yaml, env).map(|config| config.url)
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
        let config = SqlConfig::from_endpoints_yaml(
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
            "tracker_store:\n  type: sql\n  dialect: oracle\n",
            "dialect `oracle` is not supported",
        );
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  password: ${NOPE}\n",
            "environment variable `NOPE`",
        );
        check(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  port: abc\n",
            "not a port number",
        );
        assert!(SqlConfig::from_url("mongodb://x").is_err());
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
        assert_eq!(
            url(
                "tracker_store:\n  type: sql\n  dialect: mysql+pymysql\n  url: db\n  db: rasa\n  username: root\n"
            ),
            Some("mysql://root@db:3306/rasa".into())
        );
        assert_eq!(
            url(
                "tracker_store:\n  type: sql\n  dialect: mysql\n  url: mysql+pymysql://u:p@h:1/r\n"
            ),
            Some("mysql://u:p@h:1/r".into())
        );
    }
}
