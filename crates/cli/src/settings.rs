//! Turning flags, environment and Rasa's endpoints.yml into typed settings — the one place that reads them.

use std::num::NonZeroU16;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use colloquy_broker::AmqpConfig;

use crate::cli::{BrokerArgs, DatabaseArgs};

/// The database used when none is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://colloquy.db";

/// Rasa's endpoints.yml, read once.
#[derive(Debug, Clone)]
pub struct Endpoints {
    path: PathBuf,
    text: String,
}

impl Endpoints {
    /// Reads the file, if one was given.
    pub fn load(path: Option<&Path>) -> Result<Option<Self>> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the endpoints file {}", path.display()))?;
        Ok(Some(Self {
            path: path.to_owned(),
            text,
        }))
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
        (None, Some(endpoints)) => AmqpConfig::from_endpoints_yaml(&endpoints.text, env_lookup)
            .with_context(|| {
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

/// The prefetch for a batch size: twice the batch, so one batch fills while the previous one commits.
pub fn prefetch_for(batch_size: u32, flag: Option<u16>) -> NonZeroU16 {
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
        Some(endpoints) => tracker_store_url(&endpoints.text).with_context(|| {
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

/// The database URL of an endpoints.yml `tracker_store` section of type `sql`, if there is one.
/// Keys as Rasa reads them: `dialect` (`postgresql` or `sqlite`, default `sqlite`), `url` (a host, or a full
/// URL), `port`, `db` (default `rasa.db`), `username`, `password`, `query` (a mapping of URL parameters).
fn tracker_store_url(text: &str) -> Result<Option<String>> {
    let root: serde_norway::Value = serde_norway::from_str(text).context("not valid YAML")?;
    let Some(section) = root
        .get("tracker_store")
        .filter(|section| !section.is_null())
    else {
        return Ok(None);
    };
    let field = |key: &str| -> Result<Option<String>> {
        match section.get(key) {
            None | Some(serde_norway::Value::Null) => Ok(None),
            Some(serde_norway::Value::String(text)) => substitute_env(text).map(Some),
            Some(serde_norway::Value::Number(number)) => Ok(Some(number.to_string())),
            Some(_) => bail!("`tracker_store.{key}` must be a string"),
        }
    };
    match field("type")?.as_deref() {
        Some("sql" | "SQL") => {}
        Some(other) => bail!("tracker_store type `{other}` is not supported (expected `sql`)"),
        None => return Ok(None),
    }
    let dialect = field("dialect")?.unwrap_or_else(|| "sqlite".to_owned());
    let db = field("db")?.unwrap_or_else(|| "rasa.db".to_owned());
    let host = field("url")?;
    if let Some(url) = host.as_deref().filter(|url| url.contains("://")) {
        return Ok(Some(url.to_owned()));
    }
    let url = match dialect.as_str() {
        "sqlite" => format!("sqlite://{db}"),
        "postgresql" | "postgres" => {
            let credentials = match (field("username")?, field("password")?) {
                (Some(user), Some(password)) => format!("{user}:{password}@"),
                (Some(user), None) => format!("{user}@"),
                _ => String::new(),
            };
            let host = host.unwrap_or_else(|| "localhost".to_owned());
            let port = field("port")?
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            let mut url = format!("postgres://{credentials}{host}{port}/{db}");
            if let Some(query) = section
                .get("query")
                .and_then(serde_norway::Value::as_mapping)
            {
                let pairs: Vec<String> = query
                    .iter()
                    .filter_map(|(key, value)| {
                        Some(format!("{}={}", key.as_str()?, value.as_str()?))
                    })
                    .collect();
                if !pairs.is_empty() {
                    url = format!("{url}?{}", pairs.join("&"));
                }
            }
            url
        }
        other => {
            bail!("tracker_store dialect `{other}` is not supported (use postgresql or sqlite)")
        }
    };
    Ok(Some(url))
}

/// Substitutes `${VAR}` references, failing on unset variables (as Rasa does).
fn substitute_env(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("unterminated `${{` in `{text}`")
        };
        let name = &after[..end];
        let Some(value) = env_lookup(name) else {
            bail!("environment variable `{name}` used in the endpoints file is not set")
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
