//! The crate's one error type, with classification methods so that callers never match on variants to decide
//! whether to retry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A boxed source error (keeps transport types such as lapin's out of the public API).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid (bad URL, scheme, port, name, duration, YAML...). Not transient.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// A file named in the configuration (TLS certificate, key) could not be read. Not transient.
    #[error("cannot read `{}`", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file broker could not open or write its event log.
    #[error("cannot write the event log `{}`", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// One connection attempt did not finish within the connect timeout. Transient.
    #[error("connecting to RabbitMQ at {target} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The broker address (without the password).
        target: String,
        /// The timeout.
        timeout: Duration,
    },
    /// RabbitMQ refused the login or the virtual host. Not transient.
    #[error(
        "RabbitMQ at {target} refused the connection: wrong username or password, or no access to the virtual host"
    )]
    AccessRefused {
        /// The broker address (without the password).
        target: String,
        /// What RabbitMQ said.
        #[source]
        source: BoxError,
    },
    /// The connection could not be established or was lost (network, broker down). Transient.
    #[error("cannot connect to RabbitMQ at {target}")]
    Connect {
        /// The broker address (without the password).
        target: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// RabbitMQ refused to declare the exchange the way Rasa does, usually because it already exists with
    /// another type or other properties (e.g. a durable exchange), or a missing queue (someone declared it
    /// otherwise meanwhile). A queue that exists is used as it is, never refused. Not transient.
    #[error(
        "RabbitMQ refused to declare {object} as {expected} (the way Rasa declares it); it probably exists with \
         other properties"
    )]
    Topology {
        /// The exchange or queue, e.g. ``exchange `rasa-exchange` ``.
        object: String,
        /// How we declare it.
        expected: &'static str,
        /// What RabbitMQ said.
        #[source]
        source: BoxError,
    },
    /// An AMQP channel operation failed (the channel or connection closed meanwhile). Transient.
    #[error("the AMQP channel failed while {action}")]
    Channel {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The buffer is full and the broker is configured to fail rather than wait (Rasa's `raise_on_failure`).
    /// Transient; the events of the call were not handed over.
    #[error(
        "the broker's buffer of {capacity} events is full and it is configured to fail rather than wait; \
         none of the {rejected} events of this call was handed over"
    )]
    BufferFull {
        /// The buffer capacity.
        capacity: usize,
        /// How many events the call tried to hand over.
        rejected: usize,
    },
    /// Events handed over are not confirmed: the broker has been unreachable for the configured number of
    /// connection attempts. They are kept and still retried; a later flush can succeed.
    #[error("{pending} events handed over are not confirmed by RabbitMQ (it stays unreachable)")]
    Unconfirmed {
        /// How many events are not confirmed.
        pending: u64,
        /// The last connection error.
        #[source]
        source: Arc<Error>,
    },
    /// RabbitMQ keeps rejecting (Nack) a message: it was re-sent with backoff and rejected `nacks` times in a row
    /// over `during`. Usually a queue policy (`x-overflow: reject-publish` with `x-max-length`) or a queue
    /// that cannot take messages. The events are kept and still re-sent; a later flush can succeed once the
    /// queue has room.
    #[error(
        "RabbitMQ rejected (Nack) a publish {nacks} times in {during:?}; {pending} events handed over are not \
         confirmed (the oldest: {}): a queue bound to the exchange refuses publishes (x-overflow reject-publish \
         with x-max-length) or cannot take messages",
        .event_ids.join(", ")
    )]
    Rejected {
        /// How many events are not confirmed.
        pending: u64,
        /// The ids (`message_id`) of the first unconfirmed events, oldest first (the first is the one
        /// rejected); at most [`Error::REJECTED_IDS_SHOWN`].
        event_ids: Vec<String>,
        /// How many times in a row the first one was rejected.
        nacks: u32,
        /// How long since its first rejection.
        during: Duration,
    },
    /// The broker or subscription was closed (or its task stopped).
    #[error("the broker is closed")]
    Closed,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// How many unconfirmed event ids [`Error::Rejected`] names at most.
    pub const REJECTED_IDS_SHOWN: usize = 10;

    /// Whether trying again later can succeed (network trouble, a full buffer, unconfirmed or rejected events).
    /// Bad configuration, refused credentials, incompatible topology and a closed broker are not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::ConnectTimeout { .. }
                | Self::Connect { .. }
                | Self::Channel { .. }
                | Self::BufferFull { .. }
                | Self::Unconfirmed { .. }
                | Self::Rejected { .. }
        )
    }

    /// Whether the error is a configuration problem the operator must fix (an invalid setting, refused
    /// credentials, an exchange that exists with another type or other properties): retrying cannot help, and
    /// a command line tool exits with its usage/configuration code.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::ReadFile { .. }
                | Self::AccessRefused { .. }
                | Self::Topology { .. }
        )
    }

    /// Whether the call failed because the buffer is full (only when configured to fail rather than wait).
    pub fn is_buffer_full(&self) -> bool {
        matches!(self, Self::BufferFull { .. })
    }

    /// Whether the broker or subscription is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }

    /// The error and all its sources in one line, `: `-separated (for logs and messages).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// Classifies a lapin error raised while connecting.
pub(crate) fn connect_error(target: &str, error: lapin::Error) -> Error {
    let refused = match error.kind() {
        // 403 ACCESS_REFUSED (login refused), 530 NOT_ALLOWED (no such vhost or no access to it).
        lapin::ErrorKind::ProtocolError(amqp) => matches!(amqp.get_id(), 403 | 530),
        lapin::ErrorKind::AuthProviderError(_) => true,
        _ => false,
    };
    if refused {
        Error::AccessRefused {
            target: target.to_owned(),
            source: Box::new(error),
        }
    } else {
        Error::Connect {
            target: target.to_owned(),
            source: Box::new(error),
        }
    }
}

/// Wraps a lapin error raised by a channel operation.
pub(crate) fn channel_error(action: &'static str, error: lapin::Error) -> Error {
    Error::Channel {
        action,
        source: Box::new(error),
    }
}
