//! Database URLs: which dialect a URL names, and the URL as logs and messages may show it.

use std::fmt;

use crate::error::{Error, Result};

/// The SQL dialects of Rasa's `SQLTrackerStore` that Colloquy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// SQLite (`sqlite:`).
    Sqlite,
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    MySql,
}

impl Dialect {
    /// The dialect a database URL names.
    pub fn of_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "sqlite" => Ok(Self::Sqlite),
            "mysql" | "mariadb" => Ok(Self::MySql),
            _ => Err(Error::Url(format!(
                "`{}` is not a database URL Colloquy can use: give postgres://…, mysql://… or sqlite://…",
                redact(url)
            ))),
        }
    }

    /// The most bytes Rasa's `data` column holds in this dialect, where it is bounded: MySQL's `TEXT` (the
    /// type SQLAlchemy gives Rasa's `Text` column there) holds 65,535 bytes.
    pub fn max_data_bytes(self) -> Option<usize> {
        match self {
            Self::MySql => Some(65_535),
            Self::Postgres | Self::Sqlite => None,
        }
    }
}

impl Dialect {
    /// The largest dead-letter body this dialect takes in one statement, where it is bounded: one MySQL
    /// packet (`max_allowed_packet`, 16 MiB by default on MariaDB) holds the whole row, so a body is kept well
    /// under it. A larger body is refused before it is sent, deterministically, rather than failing half-way
    /// through the write with a connection error that would look transient.
    pub fn max_dead_letter_bytes(self) -> Option<usize> {
        match self {
            Self::MySql => Some(15 * 1024 * 1024),
            Self::Postgres | Self::Sqlite => None,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "PostgreSQL",
            Self::Sqlite => "SQLite",
            Self::MySql => "MySQL",
        })
    }
}

/// `url` without its password (`postgres://user:***@host/db`), for messages and logs. A URL that cannot be
/// parsed is shown only up to its scheme, in case it holds a secret in an unexpected place.
pub fn redact(url: &str) -> String {
    match ::url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Setting a password fails only for URLs that cannot have one, which had none to hide.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://***"),
            _ => url.to_owned(),
        },
    }
}

/// Host, port and database (or the SQLite file) of `url`, without credentials: how errors name a database.
pub fn target(url: &str) -> String {
    match ::url::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "sqlite" => {
            url.split('?').next().unwrap_or(url).to_owned()
        }
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("localhost");
            let port = parsed
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            format!("{host}{port}{}", parsed.path())
        }
        Err(_) => redact(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_and_names_targets() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
                "h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db", "h/db"),
            (
                "mysql://root:p%40ss@127.0.0.1:3306/test",
                "mysql://root:***@127.0.0.1:3306/test",
                "127.0.0.1:3306/test",
            ),
            (
                "sqlite://colloquy.db",
                "sqlite://colloquy.db",
                "sqlite://colloquy.db",
            ),
            (
                "sqlite:///tmp/x.db?mode=ro",
                "sqlite:///tmp/x.db?mode=ro",
                "sqlite:///tmp/x.db",
            ),
        ];
        for (url, redacted, target_of) in cases {
            assert_eq!(redact(url), redacted, "{url}");
            assert_eq!(target(url), target_of, "{url}");
        }
    }

    #[test]
    fn knows_the_dialects() {
        assert_eq!(
            Dialect::of_url("postgresql://x/y").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(Dialect::of_url("sqlite::memory:").unwrap(), Dialect::Sqlite);
        assert_eq!(
            Dialect::of_url("mysql://root@h/db").unwrap(),
            Dialect::MySql
        );
        let error = Dialect::of_url("mongodb://u:pw@h/db")
            .unwrap_err()
            .to_string();
        assert!(error.contains("mongodb://u:***@h/db"), "{error}");
    }
}
