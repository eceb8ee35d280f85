//! The `tracker_store` section of Rasa's `endpoints.yml` from its text (feature `endpoints-yaml`): shortcuts
//! to the one reader, [`crate::endpoints::Endpoints`].

use super::SqlConfig;
use crate::endpoints::Endpoints;
use crate::error::Result;

impl SqlConfig {
    /// Settings from the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`, `dialect:
    /// postgresql` / `mysql` / `mysql+pymysql` / `sqlite`, `url` (a host, `host:port`, or a full URL), `port`,
    /// `db`, `username`, `password`, `login_db`, `query`). `${VAR}` in the keys read is replaced by
    /// `env("VAR")`; an unset variable there is an error, one elsewhere is not (Rasa's rule). Reading more
    /// than one section: parse once with [`Endpoints::from_yaml`].
    pub fn from_endpoints_yaml(yaml: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Endpoints::from_yaml(yaml)?.sql_config(env)
    }
}

/// The database URL of the `tracker_store` section of Rasa's `endpoints.yml` (`type: sql`), for any of
/// Rasa's dialects: `sqlite://<db>` (Rasa's default), a PostgreSQL or a MySQL URL. `Ok(None)` when the file has
/// no `tracker_store` section. `${VAR}` is substituted as in [`SqlConfig::from_endpoints_yaml`]. The consumer
/// service reads its database from here ([`Endpoints::database_url`]).
pub fn database_url_from_endpoints_yaml(
    yaml: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>> {
    Endpoints::from_yaml(yaml)?.database_url(env)
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
