//! The `event_broker` section of Rasa's `endpoints.yml` (feature `endpoints-yaml`).

use std::num::NonZeroU32;
use std::time::Duration;

use serde_norway::Value;

use super::{AmqpConfig, DEFAULT_QUEUE, percent_encode};
use crate::error::{Error, Result};

impl AmqpConfig {
    /// Settings from the `event_broker` section of Rasa's `endpoints.yml` (`type: pika`), with `${VAR}`
    /// substituted through `env` (the CLI passes `|name| std::env::var(name).ok()`). Keys: `url` (a host or a
    /// full URL), `username`, `password`, `port`, `queues` (list or string), `queue` (Rasa 1.x), `exchange_name`,
    /// `connection_attempts`, `retry_delay_in_seconds`, `raise_on_failure` (= [`AmqpConfig::with_fail_when_full`]),
    /// `should_keep_unpublished_messages` (accepted; Colloquy always keeps unpublished events). Other keys are
    /// ignored, as Rasa does.
    pub fn from_endpoints_yaml(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let root: Value = serde_norway::from_str(text)
            .map_err(|e| Error::Config(format!("endpoints file is not valid YAML: {e}")))?;
        let section = root
            .get("event_broker")
            .filter(|v| !v.is_null())
            .ok_or_else(|| Error::Config("endpoints file has no `event_broker` section".into()))?;
        let section = section
            .as_mapping()
            .ok_or_else(|| Error::Config("`event_broker` is not a mapping".into()))?;
        let get = |key: &str| -> Result<Option<Value>> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => substitute_value(value, &env).map(Some),
            }
        };
        let broker_type = get("type")?
            .map(|v| scalar_string("type", &v))
            .transpose()?
            .unwrap_or_default();
        if !matches!(
            broker_type.as_str(),
            "pika" | "rasa.core.brokers.pika.PikaEventBroker"
        ) {
            return Err(Error::Config(format!(
                "event_broker type `{broker_type}` is not supported here (expected `pika`)"
            )));
        }
        let username = get("username")?
            .map(|v| scalar_string("username", &v))
            .transpose()?;
        let password = get("password")?
            .map(|v| scalar_string("password", &v))
            .transpose()?;
        let port = get("port")?
            .map(|v| scalar_u64("port", &v))
            .transpose()?
            .map(|port| {
                u16::try_from(port)
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| Error::Config(format!("port {port} is out of range (1-65535)")))
            })
            .transpose()?;
        let url = get("url")?
            .map(|v| scalar_string("url", &v))
            .transpose()?
            .unwrap_or_else(|| "localhost".to_owned());
        let full_url = if url.contains("://") {
            // A full URL carries its own credentials and port (as with Rasa); explicit keys override them.
            url
        } else {
            format!(
                "amqp://{}:{}@{}:{}/%2f",
                percent_encode(username.as_deref().unwrap_or("guest")),
                percent_encode(password.as_deref().unwrap_or("guest")),
                url,
                port.unwrap_or(5672)
            )
        };
        let mut config = Self::from_url(&full_url)?;
        if let Some(username) = username {
            config.uri.authority.userinfo.username = username;
        }
        if let Some(password) = password {
            config.uri.authority.userinfo.password = password;
        }
        if let Some(port) = port {
            config.uri.authority.port = port;
        }
        let queues = match (get("queues")?, get("queue")?) {
            (Some(Value::Sequence(items)), _) => items
                .iter()
                .map(|item| scalar_string("queues", item))
                .collect::<Result<Vec<_>>>()?,
            (Some(single), _) | (None, Some(single)) => vec![scalar_string("queues", &single)?],
            (None, None) => vec![DEFAULT_QUEUE.to_owned()],
        };
        config = config.with_queues(queues)?;
        if let Some(exchange) = get("exchange_name")? {
            config = config.with_exchange(&scalar_string("exchange_name", &exchange)?)?;
        }
        if let Some(attempts) = get("connection_attempts")? {
            let attempts = scalar_u64("connection_attempts", &attempts)?;
            let attempts = u32::try_from(attempts)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    Error::Config(format!("connection_attempts {attempts} must be 1 or more"))
                })?;
            config = config.with_connection_attempts(attempts);
        }
        if let Some(delay) = get("retry_delay_in_seconds")? {
            let seconds = scalar_f64("retry_delay_in_seconds", &delay)?;
            let delay = Duration::try_from_secs_f64(seconds).map_err(|_| {
                Error::Config(format!(
                    "retry_delay_in_seconds {seconds} is not a valid duration"
                ))
            })?;
            let max = config.max_retry_delay.max(delay);
            config = config.with_retry_delays(delay, max)?;
        }
        if let Some(raise) = get("raise_on_failure")? {
            config = config.with_fail_when_full(scalar_bool("raise_on_failure", &raise)?);
        }
        if let Some(keep) = get("should_keep_unpublished_messages")? {
            scalar_bool("should_keep_unpublished_messages", &keep)?;
        }
        Ok(config)
    }
}

/// Replaces every `${VAR}` in the string scalars of `value` (Rasa's endpoints substitution).
fn substitute_value(value: &Value, env: &impl Fn(&str) -> Option<String>) -> Result<Value> {
    Ok(match value {
        Value::String(text) => Value::String(expand_env(text, env)?),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .map(|item| substitute_value(item, env))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// Expands `${VAR}` references in one string of an endpoints file, as Rasa does: each is replaced by
/// `env("VAR")`, and a variable that is not set is an error. The one implementation shared by every reader of
/// `endpoints.yml` (the broker's `event_broker` section, the tracker store's `tracker_store` section).
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

fn scalar_string(key: &str, value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(Error::Config(format!("`{key}` must be a string"))),
    }
}

fn scalar_u64(key: &str, value: &Value) -> Result<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::Config(format!("`{key}` must be a non-negative integer")))
}

fn scalar_f64(key: &str, value: &Value) -> Result<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
    .ok_or_else(|| Error::Config(format!("`{key}` must be a non-negative number")))
}

fn scalar_bool(key: &str, value: &Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| Error::Config(format!("`{key}` must be true or false")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn endpoints_with_host_and_keys() {
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
        let config = AmqpConfig::from_endpoints_yaml(yaml, env).unwrap();
        assert_eq!(config.target(), "amqp://alice@rabbit.local:5673/%2f");
        assert_eq!(config.uri().authority.userinfo.password, "p@ss");
        let queues: Vec<_> = config.queues().iter().map(AmqpName::as_str).collect();
        assert_eq!(queues, ["a", "b"]);
        assert_eq!(config.exchange().as_str(), "ex");
        assert_eq!(config.connection_attempts().get(), 3);
        assert_eq!(config.retry_delays().0, Duration::from_secs(2));
        assert!(config.fail_when_full());
    }

    #[test]
    fn endpoints_with_full_url_and_old_queue_key() {
        let yaml = "event_broker:\n  type: pika\n  url: amqp://bob:pw@host:5674/v\n  queue: old\n";
        let config = AmqpConfig::from_endpoints_yaml(yaml, no_env).unwrap();
        assert_eq!(config.target(), "amqp://bob@host:5674/v");
        assert_eq!(config.queues()[0].as_str(), "old");
        let yaml = "event_broker:\n  type: pika\n  url: localhost\n  queues: single\n";
        let config = AmqpConfig::from_endpoints_yaml(yaml, no_env).unwrap();
        assert_eq!(config.queues()[0].as_str(), "single");
        assert_eq!(config.target(), "amqp://guest@localhost:5672/%2f");
    }

    #[test]
    fn endpoints_errors_are_clear() {
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
            let error = AmqpConfig::from_endpoints_yaml(yaml, no_env)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
