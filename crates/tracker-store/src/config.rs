//! Connection settings of the SQL store: from a URL (`postgres://`, `mysql://`, `sqlite://`), or from the
//! `tracker_store` section of Rasa's `endpoints.yml` (`type: sql` with any of Rasa's dialects).
//!
//! The library never reads the environment or files itself: `SqlConfig::from_endpoints_yaml` (feature
//! `endpoints-yaml`, on by default) takes the
//! YAML text and a closure that looks variables up, used for Rasa's `${VAR}` substitution.

use std::time::Duration;

use colloquy_storage::Dialect;

use crate::error::{Error, Result};

#[cfg(feature = "endpoints-yaml")]
mod endpoints;
#[cfg(feature = "endpoints-yaml")]
pub use endpoints::database_url_from_endpoints_yaml;

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
