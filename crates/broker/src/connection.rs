//! The one place that opens AMQP connections (publisher and subscription alike): connect timeout around every
//! attempt, connection name, TLS, and the reconnect backoff ([`Policy::RECONNECT`] with the configured pauses).
//!
//! The publisher and the subscription reconnect through these functions rather than through lapin's automatic
//! recovery: on a new connection every event handed over and not confirmed must go out again first, in its
//! original order and with its id, before anything newer, and no delivery of the dead channel may be acked on
//! the new one. lapin's recovery replays the channel's state, not those obligations (its in-flight confirms
//! fail on recovery), so the tasks own the reconnect (see the crate documentation).

use std::time::Duration;

use colloquy_retry::{Delays, Policy};
use lapin::types::LongString;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::config::AmqpConfig;
use crate::error::{Error, Result, channel_error, connect_error};
use crate::topology;

/// Opens one connection, within the configured connect timeout. `role` names the connection when the
/// configuration does not (`colloquy-publisher`, `colloquy-subscriber`).
pub(crate) async fn open(config: &AmqpConfig, role: &str) -> Result<Connection> {
    let name = config
        .connection_name()
        .map_or_else(|| format!("colloquy-{role}"), str::to_owned);
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(name))
        .with_client_property("product".into(), LongString::from("colloquy"));
    let tls = tls_config(config)?;
    let target = config.target();
    let runtime = lapin::runtime::default_runtime().map_err(|e| connect_error(&target, e))?;
    let attempt =
        Connection::connect_uri_with_config(config.uri().clone(), properties, tls, runtime);
    match tokio::time::timeout(config.connect_timeout(), attempt).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(connect_error(&target, error)),
        Err(_) => Err(Error::ConnectTimeout {
            target,
            timeout: config.connect_timeout(),
        }),
    }
}

/// Opens a connection and a channel on it, and declares the topology, all within one connect timeout.
pub(crate) async fn open_channel(config: &AmqpConfig, role: &str) -> Result<(Connection, Channel)> {
    let setup = async {
        let connection = open(config, role).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| channel_error("opening a channel", e))?;
        topology::declare(&connection, &channel, config).await?;
        Ok((connection, channel))
    };
    match tokio::time::timeout(config.connect_timeout(), setup).await {
        Ok(result) => result,
        Err(_) => Err(Error::ConnectTimeout {
            target: config.target(),
            timeout: config.connect_timeout(),
        }),
    }
}

/// How long [`close_quietly`] waits for RabbitMQ to answer a close (the connection may already be gone).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Closes a connection politely, waiting at most [`CLOSE_TIMEOUT`].
pub(crate) async fn close_quietly(connection: &Connection) {
    if connection.status().connected() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "OK".into())).await;
    }
}

/// Opens a session with up to the configured number of attempts ([`Policy::START_UP`], with the configured
/// pauses), waiting between them; errors that retrying cannot fix (credentials, topology, configuration) end it
/// at once.
pub(crate) async fn open_channel_with_retries(
    config: &AmqpConfig,
    role: &str,
) -> Result<(Connection, Channel)> {
    let attempts = config.connection_attempts().get();
    let (min, max) = config.retry_delays();
    let mut delays = Policy::START_UP
        .with_delays(min, max)
        .with_attempts(usize::try_from(attempts).unwrap_or(usize::MAX))
        .delays();
    let mut attempt = 1;
    loop {
        match open_channel(config, role).await {
            Ok(session) => return Ok(session),
            Err(error) if error.is_transient() && attempt < attempts => {
                tracing::warn!(
                    target = %config.target(), attempt, attempts, error = %error.chain(),
                    "Cannot connect to RabbitMQ yet; retrying."
                );
                tokio::time::sleep(delays.next_or_longest()).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The reconnect pauses: [`Policy::RECONNECT`] with the configured first and longest pause, without end.
pub(crate) fn backoff(config: &AmqpConfig) -> Delays {
    let (min, max) = config.retry_delays();
    Policy::RECONNECT.with_delays(min, max).delays()
}

#[cfg(feature = "tls")]
fn tls_config(config: &AmqpConfig) -> Result<lapin::tcp::OwnedTLSConfig> {
    use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
    let files = config.tls_files();
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })
    };
    let cert_chain = files
        .ca_file
        .as_deref()
        .map(|path| read(path).map(|pem| String::from_utf8_lossy(&pem).into_owned()))
        .transpose()?;
    let identity = match (&files.client_certificate, &files.client_key) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

#[cfg(not(feature = "tls"))]
fn tls_config(_config: &AmqpConfig) -> Result<lapin::tcp::OwnedTLSConfig> {
    // `AmqpConfig` refuses amqps:// without the feature, so plain TCP is all that is left.
    Ok(lapin::tcp::OwnedTLSConfig::default())
}
