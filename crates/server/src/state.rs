//! [`AppState`]: what every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::AmqpConfig;
use colloquy_storage::Database;
use colloquy_tracker_store::TrackerStore;

use crate::auth::Auth;
use crate::index::Index;

/// The state shared by every handler (cheap to clone: handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The database, read only.
    pub(crate) database: Database,
    /// A one-connection writable handle to the same database, only when writes are allowed (deleting a
    /// requeued dead letter).
    pub(crate) writer: Option<Database>,
    /// The tracker store Rasa's write endpoints save through; `None`: they answer 503.
    pub(crate) tracker_store: Option<Arc<dyn TrackerStore>>,
    /// Rasa's domain, from `--domain`.
    #[allow(dead_code)]
    pub(crate) domain: Option<Arc<crate::rasa::Domain>>,
    /// The auth settings.
    pub(crate) auth: Arc<Auth>,
    /// The conversation index.
    pub(crate) index: Arc<Index>,
    /// The broker dead letters are requeued through; `None`: requeue answers 503.
    pub(crate) broker_config: Option<AmqpConfig>,
    /// The consumer's `/metrics`, scraped for `/api/consumer`.
    pub(crate) consumer: Arc<crate::consumer::Scraper>,
    /// How often the index polls for new events.
    pub(crate) poll_interval: Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("database", &self.database.target())
            .field("writes", &self.auth.writes_allowed())
            .finish_non_exhaustive()
    }
}

/// What [`AppState::new`] takes.
pub(crate) struct Parts {
    pub(crate) database: Database,
    pub(crate) writer: Option<Database>,
    pub(crate) tracker_store: Option<Arc<dyn TrackerStore>>,
    pub(crate) domain: Option<Arc<crate::rasa::Domain>>,
    pub(crate) auth: Auth,
    pub(crate) index: Arc<Index>,
    pub(crate) broker_config: Option<AmqpConfig>,
    pub(crate) consumer_metrics: Option<String>,
    pub(crate) poll_interval: Duration,
}

impl AppState {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            database: parts.database,
            writer: parts.writer,
            tracker_store: parts.tracker_store,
            domain: parts.domain,
            auth: Arc::new(parts.auth),
            index: parts.index,
            broker_config: parts.broker_config,
            consumer: Arc::new(crate::consumer::Scraper::new(parts.consumer_metrics)),
            poll_interval: parts.poll_interval,
        }
    }
}
