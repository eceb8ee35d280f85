//! Connection settings of [`RedisStore`](super::RedisStore): from a URL, or from the `tracker_store` section
//! of Rasa's `endpoints.yml` (`type: redis`).

use std::time::Duration;

use crate::config::RelayConfig;
use crate::error::{Error, Result};

/// Rasa's default key prefix (`DEFAULT_REDIS_TRACKER_STORE_KEY_PREFIX`).
pub const DEFAULT_KEY_PREFIX: &str = "tracker:";

/// Connection, key and relay settings of [`RedisStore`](super::RedisStore). Its `Debug` output hides the
/// password.
#[derive(Clone)]
pub struct RedisConfig {
    url: String,
    key_prefix: String,
    record_exp: Option<Duration>,
    /// How many times start-up tries to reach Redis before giving up with [`Error::Unavailable`], with
    /// exponential back-off between attempts.
    pub connect_attempts: usize,
    /// How long one connection attempt, and then one command, may take.
    pub connect_timeout: Duration,
    /// The outbox relay's settings.
    pub relay: RelayConfig,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("target", &self.target())
            .field("key_prefix", &self.key_prefix)
            .field("record_exp", &self.record_exp)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// Settings for the Redis at `url`: `redis://[[user]:password@]host[:port][/db]`, with
    /// Rasa's default key prefix and no expiry. Two query parameters of our own set what Rasa sets in
    /// `endpoints.yml`: `key_prefix` (see [`RedisConfig::with_key_prefix`]) and `record_exp` (seconds), e.g.
    /// `redis://127.0.0.1:6379/0?key_prefix=bot1&record_exp=86400`.
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("rediss://") {
            return Err(Error::Config(
                "TLS to Redis (`rediss://`, `use_ssl: true`) is not supported yet".into(),
            ));
        }
        if !url.starts_with("redis://") {
            return Err(Error::Config(
                "the Redis URL must start with `redis://`".into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut rest = Vec::new();
        let mut key_prefix = None;
        let mut record_exp = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("key_prefix", value)) => key_prefix = Some(value.to_owned()),
                Some(("record_exp", value)) => record_exp = Some(parse_seconds(value)?),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        // Validate once, here; the message never contains the URL (it may hold a password).
        redis::Client::open(url.as_str()).map_err(|_| invalid_url())?;
        let config = Self {
            url,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            record_exp: None,
            connect_attempts: 5,
            connect_timeout: Duration::from_secs(5),
            relay: RelayConfig::default(),
        };
        Ok(config
            .with_key_prefix(key_prefix.as_deref())
            .with_record_exp(record_exp))
    }

    /// Settings from the `tracker_store` section of Rasa's `endpoints.yml` if it is of `type: redis`
    /// (`url` (the host, as Rasa reads it; a whole `redis://` URL is accepted too), `port`, `db`, `username`,
    /// `password`, `use_ssl`, `key_prefix`, `record_exp`); `Ok(None)` when the file has no such section.
    /// `${VAR}` in the section is replaced by `env("VAR")`; an unset variable there is an error, one in a
    /// section that is not read is not (Rasa's rule). Feature `endpoints-yaml`.
    #[cfg(feature = "endpoints-yaml")]
    pub fn from_endpoints_yaml(
        yaml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>> {
        crate::endpoints::Endpoints::from_yaml(yaml)?.redis_config(env)
    }

    /// Rasa's rule for `key_prefix`: an alphanumeric prefix `p` gives keys `p:tracker:<sender_id>`; anything
    /// else (with a warning) or nothing gives the default `tracker:<sender_id>`.
    pub fn with_key_prefix(mut self, key_prefix: Option<&str>) -> Self {
        self.key_prefix = match key_prefix.filter(|prefix| !prefix.is_empty()) {
            Some(prefix) if prefix.chars().all(char::is_alphanumeric) => {
                format!("{prefix}:{DEFAULT_KEY_PREFIX}")
            }
            Some(prefix) => {
                tracing::warn!(
                    key_prefix = prefix,
                    "Ignoring a non-alphanumeric Redis key prefix (as Rasa does); using `tracker:`."
                );
                DEFAULT_KEY_PREFIX.to_owned()
            }
            None => DEFAULT_KEY_PREFIX.to_owned(),
        };
        self
    }

    /// Rasa's `record_exp`: every save sets the tracker key to expire this long after it (`None` or zero:
    /// never, and a save removes an expiry set by someone else, as Rasa's `SET` does).
    pub fn with_record_exp(mut self, record_exp: Option<Duration>) -> Self {
        self.record_exp = record_exp.filter(|exp| !exp.is_zero());
        self
    }

    /// The prefix of every tracker key: `tracker:` or `<key_prefix>:tracker:`.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The expiry each save gives the tracker key.
    pub fn record_exp(&self) -> Option<Duration> {
        self.record_exp
    }

    /// Host, port and database, without credentials: what error messages and logs may show.
    pub fn target(&self) -> String {
        match redis::Client::open(self.url.as_str()) {
            Ok(client) => {
                let info = client.get_connection_info();
                format!("{}/{}", info.addr(), info.redis_settings().db())
            }
            Err(_) => "<invalid URL>".into(),
        }
    }

    pub(crate) fn client(&self) -> Result<redis::Client> {
        redis::Client::open(self.url.as_str()).map_err(|_| invalid_url())
    }
}

/// The error for a URL redis cannot use; never quotes the URL (it may hold a password).
fn invalid_url() -> Error {
    Error::Config("invalid Redis URL: expected `redis://[[user]:password@]host[:port][/db]`".into())
}

fn parse_seconds(text: &str) -> Result<Duration> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| Error::Config(format!("`record_exp` `{text}` is not a number of seconds")))
}

// The cases read endpoints files (feature `endpoints-yaml`, on by default).
#[cfg(all(test, feature = "endpoints-yaml"))]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REDIS_HOST" => Some("cache.internal".into()),
            "REDIS_PASSWORD" => Some("p@ss:w/rd".into()),
            "REDIS_PORT" => Some("6380".into()),
            _ => None,
        }
    }

    fn from_yaml(yaml: &str) -> Result<Option<RedisConfig>> {
        RedisConfig::from_endpoints_yaml(yaml, env)
    }

    #[test]
    fn reads_rasas_redis_section() {
        let check = |yaml: &str, url: &str, prefix: &str, exp: Option<u64>| {
            let config = from_yaml(yaml).unwrap().expect("a redis section");
            assert_eq!(config.url, url, "{yaml}");
            assert_eq!(config.key_prefix(), prefix, "{yaml}");
            assert_eq!(config.record_exp(), exp.map(Duration::from_secs), "{yaml}");
        };
        check(
            "tracker_store:\n  type: redis\n",
            "redis://localhost:6379/0",
            "tracker:",
            None,
        );
        check(
            "tracker_store:\n  type: Redis\n  url: ${REDIS_HOST}\n  port: ${REDIS_PORT}\n  db: 3\n  password: ${REDIS_PASSWORD}\n  key_prefix: bot1\n  record_exp: 60\n",
            "redis://:p%40ss%3Aw%2Frd@cache.internal:6380/3",
            "bot1:tracker:",
            Some(60),
        );
        check(
            "tracker_store:\n  type: redis\n  url: localhost\n  username: u\n  password: p\n  use_ssl: false\n  key_prefix: not-alnum\n  record_exp: 0\n",
            "redis://u:p@localhost:6379/0",
            "tracker:",
            None,
        );
        check(
            "tracker_store:\n  store_type: redis\n  url: redis://h:1/2\n",
            "redis://h:1/2",
            "tracker:",
            None,
        );
        assert!(
            from_yaml("tracker_store:\n  type: sql\n")
                .unwrap()
                .is_none()
        );
        assert!(
            from_yaml("event_broker:\n  type: pika\n")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn substitutes_only_the_section_it_reads() {
        let yaml = "lock_store:\n  type: redis\n  password: ${UNSET_LOCK_PASSWORD}\n\
                    tracker_store:\n  type: redis\n  url: ${REDIS_HOST}\n";
        let config = from_yaml(yaml).unwrap().expect("a redis section");
        assert_eq!(config.url, "redis://cache.internal:6379/0");
    }

    #[test]
    fn refuses_what_it_cannot_use_with_clear_messages() {
        let check = |yaml: &str, needle: &str| {
            let error = from_yaml(yaml).unwrap_err().to_string();
            assert!(
                error.contains(needle),
                "{error:?} should mention {needle:?}"
            );
        };
        check(
            "tracker_store:\n  type: redis\n  port: abc\n",
            "not a port number",
        );
        check("tracker_store:\n  type: redis\n  db: x\n", "`db` `x`");
        check(
            "tracker_store:\n  type: redis\n  password: ${NOPE}\n",
            "environment variable `NOPE`",
        );
        check(
            "tracker_store:\n  type: redis\n  record_exp: soon\n",
            "not a number of seconds",
        );
        check(
            "tracker_store:\n  type: redis\n  use_ssl: true\n",
            "not supported yet",
        );
        check(
            "tracker_store:\n  type: redis\n  ssl_certfile: a.pem\n",
            "ssl_certfile",
        );
        assert!(RedisConfig::from_url("postgres://x").is_err());
    }

    #[test]
    fn url_carries_prefix_and_expiry_and_hides_the_password() {
        let config =
            RedisConfig::from_url("redis://:secret@127.0.0.1:6379/2?key_prefix=abc&record_exp=5")
                .unwrap();
        assert_eq!(config.key_prefix(), "abc:tracker:");
        assert_eq!(config.record_exp(), Some(Duration::from_secs(5)));
        assert_eq!(config.target(), "127.0.0.1:6379/2");
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(config.url, "redis://:secret@127.0.0.1:6379/2");
    }
}
