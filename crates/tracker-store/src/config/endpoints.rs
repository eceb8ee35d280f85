//! The `tracker_store` section of Rasa's `endpoints.yml` (feature `endpoints-yaml`).
//!
//! Rasa's rule for `${VAR}`: only what is used is substituted. The `tracker_store` section is, so an unset
//! variable in it is an error; one in a section this store does not read (`lock_store`, `action_endpoint`,
//! ...) is not.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SqlConfig;
use crate::error::{Error, Result};

impl SqlConfig {
    /// Settings from the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`, `dialect:
    /// postgresql` / `mysql` / `mysql+pymysql` / `sqlite`, `url` (a host, `host:port`, or a full URL), `port`,
    /// `db`, `username`, `password`, `login_db`, `query`). `${VAR}` in the section is replaced by
    /// `env("VAR")`; an unset variable there is an error, one in a section that is not read is not (Rasa's rule).
    pub fn from_endpoints_yaml(yaml: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let section = tracker_store_section(yaml, &env)?.ok_or_else(|| {
            Error::Config("the endpoints file has no `tracker_store` section".into())
        })?;
        let section: SqlSection = serde_norway::from_value(section)
            .map_err(|error| Error::Config(format!("`tracker_store`: {error}")))?;
        let mut config = Self::from_url(&section.database_url()?)?;
        config.login_db = section.login_db;
        Ok(config)
    }
}

/// The `tracker_store` section of an endpoints file with `${VAR}` substituted in it (and only in it), or
/// `None` when the file has none.
pub(crate) fn tracker_store_section(
    yaml: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<serde_norway::Value>> {
    let document: serde_norway::Value = serde_norway::from_str(yaml)
        .map_err(|error| Error::Config(format!("endpoints YAML: {error}")))?;
    let Some(section) = document
        .get("tracker_store")
        .filter(|section| !section.is_null())
    else {
        return Ok(None);
    };
    let mut section = section.clone();
    substitute_env(&mut section, env)?;
    Ok(Some(section))
}

/// The database URL of the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`), for any of
/// Rasa's dialects: `sqlite://<db>` (Rasa's default), a PostgreSQL or a MySQL URL. `Ok(None)` when the file has
/// no `tracker_store` section. `${VAR}` is substituted as in [`SqlConfig::from_endpoints_yaml`]. The consumer
/// service reads its database from here.
pub fn database_url_from_endpoints_yaml(
    yaml: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    let Some(section) = tracker_store_section(yaml, &env)? else {
        return Ok(None);
    };
    let section: SqlSection = serde_norway::from_value(section)
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

/// Percent-encodes a user name, password, database name or query value for a URL (RFC 3986 unreserved
/// characters stay as they are). The one encoder of the URLs this crate builds from endpoints files.
pub(crate) fn percent_encode(text: &str) -> String {
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

/// Replaces `${VAR}` in every string of `value` (Rasa's env-var expansion).
fn substitute_env(
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
    fn substitutes_only_the_section_it_reads() {
        // Rasa's rule: an unset variable where nothing reads it is not an error.
        let yaml = "lock_store:\n  type: redis\n  password: ${UNSET_LOCK_PASSWORD}\n\
                    event_broker:\n  type: pika\n  password: ${UNSET_BROKER_PASSWORD}\n\
                    tracker_store:\n  type: sql\n  dialect: postgresql\n  url: ${DB_HOST}\n  db: rasa\n";
        assert_eq!(url_of(yaml).unwrap(), "postgres://db.internal:5432/rasa");
        assert_eq!(
            database_url_from_endpoints_yaml(yaml, env).unwrap(),
            Some("postgres://db.internal:5432/rasa".into())
        );
        // Where it reads, an unset variable is an error that names it.
        let unset_here = yaml.replace("${DB_HOST}", "${UNSET_DB_HOST}");
        let error = url_of(&unset_here).unwrap_err().to_string();
        assert!(error.contains("`UNSET_DB_HOST`"), "{error}");
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
