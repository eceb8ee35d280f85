//! `colloquy serve`: the conversation inbox, the dashboard, Colloquy's JSON API and Rasa's tracker endpoints,
//! over any database the consumer fills or Rasa's `SQLTrackerStore` wrote (PostgreSQL, MySQL/MariaDB, SQLite).
//!
//! The server reads through `colloquy-storage` with a read-only handle (no migration, nothing created) and
//! keeps an in-memory index of the conversations ([`index`]): built at start by walking `events` in `id` order,
//! kept current by polling the new ids (a trailing window of ids committed out of order is read again), so
//! that listing and filtering 20k conversations never runs a `GROUP BY` over the events. A conversation's events
//! are read a page at a time by its `(sender_id, id)` index.
//!
//! Auth ([`auth`]): with a token every request needs it (`?token=`, `Authorization: Bearer`, or the
//! `colloquy_token` cookie set by a request that carried `?token=`); writes take only the query token or the
//! bearer header. Without a token the server listens on loopback only and refuses writes.
//!
//! # Invariants
//! - No SQL text and no lapin type here: the database is reached through `colloquy-storage`, the broker
//!   through `colloquy-broker`.
//! - Every response of `/api/*` is JSON; errors are `{"error": "<one line>"}`.
//!
//! # Example
//! ```
//! use colloquy_server::{Server, ServerConfig};
//! use colloquy_storage::{ConnectOptions, Database, Schema};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("colloquy-serve-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let url = format!("sqlite://{}", dir.join("events.db").display());
//! // A database the consumer fills (here: only its schema).
//! Database::connect_lazy(&url, &ConnectOptions::default())?.migrate(Schema::Events).await?;
//!
//! let mut config = ServerConfig::new(url);
//! config.listen = "127.0.0.1:0".parse()?; // loopback: no token needed, writes refused
//! let server = Server::bind(config).await?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server.run(async {
//!     let _ = stopped.await;
//! }));
//!
//! let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! stream.write_all(b"GET /api/conversations HTTP/1.0\r\n\r\n").await?;
//! let mut answer = String::new();
//! stream.read_to_string(&mut answer).await?;
//! assert!(answer.ends_with(r#"{"conversations":[],"matches":0,"next_cursor":null}"#));
//! let _ = stop.send(());
//! running.await??;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

mod api;
pub mod auth;
mod consumer;
pub mod dead_letters;
mod error;
pub mod index;
mod openapi;
pub mod pages;
pub(crate) mod rasa;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use colloquy_broker::{AmqpBroker, AmqpConfig, EventBroker};
use colloquy_storage::{ConnectOptions, Database};
use colloquy_tracker_store::{RedisConfig, RedisStore, SqlConfig, SqlStore, TrackerStore};
use tokio::net::TcpListener;

pub use error::{Error, Result};
pub use state::AppState;

/// The address `colloquy serve` listens on by default (Rasa's port plus one).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5006";

/// Everything the server needs, typed (the CLI turns flags, environment and endpoints.yml into this).
#[derive(Clone)]
pub struct ServerConfig {
    /// The database to read (`postgres://`, `mysql://`, `sqlite://`); opened read only.
    pub database_url: String,
    /// Where to listen. Without [`ServerConfig::auth_token`] only a loopback address is accepted.
    pub listen: SocketAddr,
    /// The token every request must carry; `None`: unauthenticated, loopback only, no writes.
    pub auth_token: Option<String>,
    /// Rasa's domain file (the slots a tracker has).
    pub domain: Option<PathBuf>,
    /// The tracker store Rasa's write endpoints save through: a database URL (Colloquy's SQL tracker store) or a
    /// Redis URL. `None`: the write endpoints answer 503.
    pub tracker_store: Option<String>,
    /// The broker: the tracker store streams saved events to it, and dead letters are requeued through it.
    /// `None`: saves are not streamed and requeue answers 503.
    pub broker: Option<AmqpConfig>,
    /// The consumer's Prometheus `/metrics` URL, scraped for the dashboard's live rate.
    pub consumer_metrics: Option<String>,
    /// How often the index looks for new events.
    pub poll_interval: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("database", &colloquy_storage::redact(&self.database_url))
            .field("listen", &self.listen)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .field("domain", &self.domain)
            .field(
                "tracker_store",
                &self.tracker_store.as_deref().map(colloquy_storage::redact),
            )
            .field("broker", &self.broker.as_ref().map(AmqpConfig::target))
            .field("consumer_metrics", &self.consumer_metrics)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl ServerConfig {
    /// Settings to serve `database_url` on [`DEFAULT_LISTEN`], unauthenticated, read only.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 5006)),
            auth_token: None,
            domain: None,
            tracker_store: None,
            broker: None,
            consumer_metrics: None,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// A bound server: its listener is open, its index built; [`Server::run`] serves until shutdown.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    broker: Option<Arc<AmqpBroker>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// How many times start-up tries to reach the database.
const CONNECT_ATTEMPTS: usize = 5;

impl Server {
    /// Checks the settings (a non-loopback address needs a token), reads the domain, opens the broker and the
    /// tracker store if configured, connects to the database read only, builds the conversation index, and
    /// binds.
    pub async fn bind(config: ServerConfig) -> Result<Self> {
        if config.auth_token.is_none() && !config.listen.ip().is_loopback() {
            return Err(Error::Unauthenticated {
                addr: config.listen,
            });
        }
        if config.auth_token.as_deref() == Some("") {
            return Err(Error::Config("the auth token must not be empty".into()));
        }
        // The tracker store first: it may migrate its tables (in the same database), and the read-only handle
        // must not prepare statements against a table whose columns then change.
        let domain = match &config.domain {
            Some(path) => Some(Arc::new(rasa::Domain::load(path)?)),
            None => None,
        };
        let broker = match &config.broker {
            Some(broker) => Some(Arc::new(AmqpBroker::connect(broker.clone()).await?)),
            None => None,
        };
        let tracker_store = match &config.tracker_store {
            Some(url) => Some(open_tracker_store(url, broker.clone()).await?),
            None => None,
        };
        let database = Database::connect(
            &config.database_url,
            &ConnectOptions {
                application_name: "colloquy-serve",
                ..ConnectOptions::read_only()
            },
            CONNECT_ATTEMPTS,
        )
        .await?;
        database.require_events_table().await?;
        // Writes (deleting a requeued dead letter) go through their own small pool, only when writes are allowed.
        let writer = match &config.auth_token {
            Some(_) => Some(Database::connect_lazy(
                &config.database_url,
                &ConnectOptions {
                    max_connections: 1,
                    application_name: "colloquy-serve",
                    ..ConnectOptions::default()
                },
            )?),
            None => None,
        };
        let index = Arc::new(index::Index::default());
        let started = std::time::Instant::now();
        index.refresh(&database).await?;
        tracing::info!(
            conversations = index.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "Indexed the conversations."
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let state = AppState::new(state::Parts {
            database,
            writer,
            tracker_store,
            domain,
            auth: auth::Auth::new(config.auth_token.clone()),
            index,
            broker_config: config.broker.clone(),
            consumer_metrics: config.consumer_metrics.clone(),
            poll_interval: config.poll_interval,
        });
        let server = Self {
            listener,
            state,
            broker,
        };
        match &config.auth_token {
            Some(_) => {
                tracing::info!(addr = %server.local_addr(), "Serving; every request needs the token.")
            }
            None => tracing::warn!(
                addr = %server.local_addr(),
                "Serving WITHOUT authentication, on loopback only; writes (append, requeue) are refused. Give --auth-token to serve other hosts."
            ),
        }
        Ok(server)
    }

    /// The address the server listens on (the port the OS chose when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The router of every page and endpoint with the auth middleware, for embedding (tests, other servers).
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, keeping the index current meanwhile; then closes the tracker store,
    /// the broker and the database.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let app = router(self.state.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let poller = tokio::spawn(index::poll(self.state.clone(), stopped));
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop.send(true);
        let _ = poller.await;
        if let Some(store) = &self.state.tracker_store
            && let Err(error) = store.close().await
        {
            tracing::warn!(%error, "Closing the tracker store failed.");
        }
        if let Some(broker) = &self.broker
            && let Err(error) = broker.close().await
        {
            tracing::warn!(%error, "Closing the broker connection failed.");
        }
        self.state.database.close().await;
        served.map_err(Error::Serve)
    }
}

/// The whole application: pages, `/api`, Rasa's endpoints, behind the auth middleware.
fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(rasa::routes())
        .merge(pages::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        .with_state(state)
}

/// Opens the tracker store named by `url`: Redis for `redis://`/`rediss://`, else Colloquy's SQL store.
async fn open_tracker_store(
    url: &str,
    broker: Option<Arc<AmqpBroker>>,
) -> Result<Arc<dyn TrackerStore>> {
    let broker = broker.map(|broker| broker as Arc<dyn EventBroker>);
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let config = RedisConfig::from_url(url)?;
        Ok(Arc::new(RedisStore::connect(&config, broker).await?))
    } else {
        let config = SqlConfig::from_url(url)?;
        Ok(Arc::new(SqlStore::connect(&config, broker).await?))
    }
}
