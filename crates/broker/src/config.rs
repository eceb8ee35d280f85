//! AMQP settings, validated once at the edge: from a URL and the `with_*` methods. The library never reads
//! the process environment or configuration files itself; Rasa's `endpoints.yml` is read by
//! `colloquy-tracker-store`'s `Endpoints`, which builds an [`AmqpConfig`] from its `event_broker` section.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use lapin::types::ShortString;
use lapin::uri::{AMQPScheme, AMQPUri};

use crate::error::{Error, Result};

/// The URL used when none is given: the local RabbitMQ with the default account and vhost.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Rasa's default exchange name.
pub const DEFAULT_EXCHANGE: &str = "rasa-exchange";
/// Rasa's default queue name.
pub const DEFAULT_QUEUE: &str = "rasa_core_events";

const MAX_AMQP_NAME_BYTES: usize = 255;

/// An AMQP name (exchange, queue, `app_id`): at most 255 bytes, which is checked once when it is made.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmqpName(String);

impl AmqpName {
    /// Checks that `name` fits an AMQP short string (at most 255 bytes).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        // `ShortString::try_new` is the check the protocol layer uses; `From` would panic instead.
        ShortString::try_new(name.clone()).map_err(|_| {
            Error::Config(format!(
                "AMQP name of {} bytes is too long (at most {MAX_AMQP_NAME_BYTES}): `{}...`",
                name.len(),
                name.chars().take(40).collect::<String>()
            ))
        })?;
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn short(&self) -> ShortString {
        // Length checked in `new`.
        ShortString::from(self.0.as_str())
    }
}

impl fmt::Display for AmqpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AmqpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The type of the queues Colloquy declares when they do not exist yet. A queue that exists is used as it is,
/// whatever its type and arguments (the operator's declaration wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueueType {
    /// A classic durable queue without arguments, as Rasa declares it.
    #[default]
    Classic,
    /// A quorum queue (`x-queue-type: quorum`): replicated across a RabbitMQ cluster, durable by nature.
    Quorum,
}

impl QueueType {
    /// The name RabbitMQ uses in `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            other => Err(Error::Config(format!(
                "unknown queue type `{other}` (expected `classic` or `quorum`)"
            ))),
        }
    }
}

/// Paths of TLS material (read at each connect; used with `amqps://` only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file with the CA certificate(s) that signed the server's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (Rasa: `RABBITMQ_SSL_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<PathBuf>,
    /// PEM PKCS#8 client key (Rasa: `RABBITMQ_SSL_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

/// Settings of the AMQP broker and subscription. Build with [`AmqpConfig::from_url`] (or from the
/// `event_broker` section of Rasa's `endpoints.yml`, through `colloquy-tracker-store`'s `Endpoints`), then
/// adjust with the `with_*` methods (each validates its input).
/// `Debug` never prints the password.
#[derive(Clone)]
pub struct AmqpConfig {
    uri: AMQPUri,
    exchange: AmqpName,
    queues: Vec<AmqpName>,
    queue_type: QueueType,
    app_id: Option<AmqpName>,
    connection_name: Option<String>,
    buffer_capacity: NonZeroUsize,
    confirm_window: NonZeroUsize,
    fail_when_full: bool,
    connect_timeout: Duration,
    min_retry_delay: Duration,
    max_retry_delay: Duration,
    connection_attempts: NonZeroU32,
    prefetch: NonZeroU16,
    tls: TlsFiles,
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("target", &self.target())
            .field("exchange", &self.exchange)
            .field("queues", &self.queues)
            .field("queue_type", &self.queue_type)
            .field("app_id", &self.app_id)
            .field("connection_name", &self.connection_name)
            .field("buffer_capacity", &self.buffer_capacity)
            .field("confirm_window", &self.confirm_window)
            .field("fail_when_full", &self.fail_when_full)
            .field("connect_timeout", &self.connect_timeout)
            .field("min_retry_delay", &self.min_retry_delay)
            .field("max_retry_delay", &self.max_retry_delay)
            .field("connection_attempts", &self.connection_attempts)
            .field("prefetch", &self.prefetch)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The default number of connection attempts at start-up.
const DEFAULT_CONNECTION_ATTEMPTS: NonZeroU32 = NonZeroU32::MIN.saturating_add(19);
/// The default prefetch.
const DEFAULT_PREFETCH: NonZeroU16 = NonZeroU16::MIN.saturating_add(999);

impl Default for AmqpConfig {
    fn default() -> Self {
        // tidy: allow(unwrap) DEFAULT_URL is a constant that `config::tests` parses.
        Self::from_url(DEFAULT_URL).expect("the default URL is valid")
    }
}

/// A non-zero constant, for `const { .. }` blocks: a zero fails the build.
const fn nz_usize(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => panic!("a non-zero constant"),
    }
}

impl AmqpConfig {
    /// Settings for the broker at `url` (`amqp://` or `amqps://`, user, password, host, port, vhost), with Rasa's
    /// topology names and Colloquy's defaults. A `cacertfile`, `certfile` and `keyfile` query parameter
    /// (RabbitMQ's URI spec) set the TLS files.
    pub fn from_url(url: &str) -> Result<Self> {
        let uri = parse_url(url)?;
        let tls = TlsFiles {
            ca_file: query_param(url, "cacertfile").map(PathBuf::from),
            client_certificate: query_param(url, "certfile").map(PathBuf::from),
            client_key: query_param(url, "keyfile").map(PathBuf::from),
        };
        let config = Self {
            uri,
            exchange: AmqpName::new(DEFAULT_EXCHANGE)?,
            queues: vec![AmqpName::new(DEFAULT_QUEUE)?],
            queue_type: QueueType::Classic,
            app_id: None,
            connection_name: None,
            buffer_capacity: const { nz_usize(10_000) },
            confirm_window: const { nz_usize(1_000) },
            fail_when_full: false,
            connect_timeout: Duration::from_secs(10),
            min_retry_delay: colloquy_retry::Policy::RECONNECT.delay_range().0,
            max_retry_delay: colloquy_retry::Policy::RECONNECT.delay_range().1,
            connection_attempts: DEFAULT_CONNECTION_ATTEMPTS,
            prefetch: DEFAULT_PREFETCH,
            tls,
        };
        config.check_tls_support()?;
        Ok(config)
    }

    /// Uses `name` for the fanout exchange (default `rasa-exchange`).
    pub fn with_exchange(mut self, name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::Config(
                "the exchange name is empty (the default exchange cannot be declared)".into(),
            ));
        }
        self.exchange = AmqpName::new(name)?;
        Ok(self)
    }

    /// Uses these queues (at least one; default `rasa_core_events`).
    pub fn with_queues<I, S>(mut self, queues: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let queues = queues
            .into_iter()
            .map(|q| {
                let q = q.as_ref();
                if q.is_empty() {
                    Err(Error::Config("a queue name is empty".into()))
                } else {
                    AmqpName::new(q)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if queues.is_empty() {
            return Err(Error::Config("no queue configured".into()));
        }
        self.queues = queues;
        Ok(self)
    }

    /// The type of the queues declared when they do not exist (default [`QueueType::Classic`], as Rasa). Queues
    /// that exist are consumed and bound as they are, whatever their type and arguments.
    pub fn with_queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = queue_type;
        self
    }

    /// Sets the `app_id` property of published messages (the CLI passes `RASA_ENVIRONMENT`).
    pub fn with_app_id(mut self, app_id: Option<&str>) -> Result<Self> {
        self.app_id = app_id.map(AmqpName::new).transpose()?;
        Ok(self)
    }

    /// Names the connections (client property `connection_name`, shown by `rabbitmqctl list_connections`).
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// How many events the publisher buffers beyond its confirm window (back-pressure when full).
    pub fn with_buffer_capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.buffer_capacity = capacity;
        self
    }

    /// How many published events may wait for their confirm at once.
    pub fn with_confirm_window(mut self, window: NonZeroUsize) -> Self {
        self.confirm_window = window;
        self
    }

    /// When true, publishing into a full buffer fails at once ([`Error::BufferFull`]) instead of waiting (Rasa's
    /// `raise_on_failure`).
    pub fn with_fail_when_full(mut self, fail: bool) -> Self {
        self.fail_when_full = fail;
        self
    }

    /// The timeout of each connection attempt (TCP, TLS and AMQP handshake, topology).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout.is_zero() {
            return Err(Error::Config(
                "the connect timeout must be greater than zero".into(),
            ));
        }
        self.connect_timeout = timeout;
        Ok(self)
    }

    /// The reconnect backoff: exponential from `min` to at most `max`, with jitter.
    pub fn with_retry_delays(mut self, min: Duration, max: Duration) -> Result<Self> {
        if min.is_zero() || max < min {
            return Err(Error::Config(format!(
                "retry delays must satisfy 0 < min <= max (got min {min:?}, max {max:?})"
            )));
        }
        self.min_retry_delay = min;
        self.max_retry_delay = max;
        Ok(self)
    }

    /// Consecutive failed connection attempts after which `connect` gives up and `flush` reports the events it
    /// could not deliver (they are kept and retried).
    pub fn with_connection_attempts(mut self, attempts: NonZeroU32) -> Self {
        self.connection_attempts = attempts;
        self
    }

    /// The subscription's prefetch (`basic.qos`).
    pub fn with_prefetch(mut self, prefetch: NonZeroU16) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// The TLS files (for `amqps://`).
    pub fn with_tls_files(mut self, tls: TlsFiles) -> Result<Self> {
        self.tls = tls;
        self.check_tls_support()?;
        Ok(self)
    }

    /// The broker's address without the password, e.g. `amqp://guest@127.0.0.1:5672/%2f`.
    pub fn target(&self) -> String {
        format!(
            "{}://{}@{}:{}/{}",
            self.uri.scheme,
            self.uri.authority.userinfo.username,
            self.uri.authority.host,
            self.uri.authority.port,
            percent_encode(&self.uri.vhost)
        )
    }

    /// The virtual host.
    pub fn vhost(&self) -> &str {
        &self.uri.vhost
    }

    /// The exchange name.
    pub fn exchange(&self) -> &AmqpName {
        &self.exchange
    }

    /// The queue names.
    pub fn queues(&self) -> &[AmqpName] {
        &self.queues
    }

    /// The type of the queues declared when they do not exist.
    pub fn queue_type(&self) -> QueueType {
        self.queue_type
    }

    /// The `app_id` property.
    pub fn app_id(&self) -> Option<&AmqpName> {
        self.app_id.as_ref()
    }

    /// The connection name, when set.
    pub fn connection_name(&self) -> Option<&str> {
        self.connection_name.as_deref()
    }

    /// The buffer capacity.
    pub fn buffer_capacity(&self) -> NonZeroUsize {
        self.buffer_capacity
    }

    /// The confirm window.
    pub fn confirm_window(&self) -> NonZeroUsize {
        self.confirm_window
    }

    /// Whether publishing into a full buffer fails at once.
    pub fn fail_when_full(&self) -> bool {
        self.fail_when_full
    }

    /// The timeout of each connection attempt.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The reconnect backoff bounds `(min, max)`.
    pub fn retry_delays(&self) -> (Duration, Duration) {
        (self.min_retry_delay, self.max_retry_delay)
    }

    /// The number of connection attempts.
    pub fn connection_attempts(&self) -> NonZeroU32 {
        self.connection_attempts
    }

    /// The subscription's prefetch.
    pub fn prefetch(&self) -> NonZeroU16 {
        self.prefetch
    }

    /// The TLS files.
    pub fn tls_files(&self) -> &TlsFiles {
        &self.tls
    }

    pub(crate) fn uri(&self) -> &AMQPUri {
        &self.uri
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.uri.scheme == AMQPScheme::AMQPS
    }

    fn check_tls_support(&self) -> Result<()> {
        if self.is_tls() && !cfg!(feature = "tls") {
            return Err(Error::Config(
                "amqps:// needs colloquy-broker built with the `tls` feature".into(),
            ));
        }
        if self.tls.client_certificate.is_some() != self.tls.client_key.is_some() {
            return Err(Error::Config(
                "a TLS client certificate needs its key, and a key its certificate".into(),
            ));
        }
        Ok(())
    }
}

fn parse_url(url: &str) -> Result<AMQPUri> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::Config(format!(
            "`{}` is not an AMQP URL (expected amqp://user:password@host:port/vhost)",
            redact(url)
        )));
    };
    if !matches!(scheme, "amqp" | "amqps") {
        return Err(Error::Config(format!(
            "unsupported URL scheme `{scheme}` (expected `amqp` or `amqps`)"
        )));
    }
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|e: String| Error::Config(format!("invalid AMQP URL `{}`: {e}", redact(url))))?;
    // amq-protocol-uri only reads DNS names and falls back to `localhost` for IP addresses: take the host from
    // the URL itself.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(Error::Config(format!(
            "the AMQP URL `{}` has no host",
            redact(url)
        )));
    }
    uri.authority.host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if uri.authority.port == 0 {
        return Err(Error::Config(format!(
            "port 0 in `{}` is not valid",
            redact(url)
        )));
    }
    Ok(uri)
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02x}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_defaults_and_ip_host() {
        let config = AmqpConfig::from_url("amqp://u:secret@10.1.2.3:5673/my%2fvhost").unwrap();
        assert_eq!(config.target(), "amqp://u@10.1.2.3:5673/my%2fvhost");
        assert_eq!(config.vhost(), "my/vhost");
        assert_eq!(config.exchange().as_str(), DEFAULT_EXCHANGE);
        assert_eq!(config.queues()[0].as_str(), DEFAULT_QUEUE);
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("http://h/", "unsupported URL scheme `http`"),
            ("amqp://h:99999/", "invalid AMQP URL"),
            ("amqp://h:0/", "port 0"),
            ("h:5672", "is not an AMQP URL"),
            (
                "amqp://u:pw@h:port/",
                "invalid AMQP URL `amqp://u:***@h:port/`",
            ),
        ];
        for (url, expected) in cases {
            let error = AmqpConfig::from_url(url).unwrap_err().to_string();
            assert!(error.contains(expected), "{url}: {error}");
            assert!(!error.contains("pw"), "{url}: {error}");
        }
    }

    #[test]
    fn names_over_255_bytes_are_refused() {
        let long = "q".repeat(256);
        let error = AmqpConfig::default()
            .with_queues([&long])
            .unwrap_err()
            .to_string();
        assert!(error.contains("256 bytes is too long"), "{error}");
        assert!(
            AmqpConfig::default()
                .with_exchange(&"e".repeat(255))
                .is_ok()
        );
        assert!(AmqpConfig::default().with_exchange("").is_err());
    }
}
