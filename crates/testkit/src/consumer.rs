//! The consumer's test harness (feature `consumer`): a consumer running in this process against the real
//! RabbitMQ and a fresh database of any dialect, with its own exchange and queue, and a Rasa-like publisher.

use std::sync::Arc;
use std::time::Duration;

use crate::{TestDatabase, TestDialect, unique_name, wait_until};
use colloquy_broker::{AmqpConfig, AmqpSubscription};
use colloquy_consumer::{Consumer, ConsumerOptions, Metrics, RunSummary};
use colloquy_storage::{ConnectOptions, Database, Schema};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the consumer to store what it expects.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(60);

/// Every stored event, with all of Rasa's columns and Colloquy's.
pub type StoredRow = colloquy_storage::StoredEvent;

/// The database a test consumer writes to.
pub enum TestStore {
    /// A fresh database of its own on the shared server of a dialect (or an SQLite file).
    Fresh(TestDatabase),
    /// The `postgres` database of a private cluster (for tests that break the server).
    Private(crate::PrivatePostgres),
    /// The `test` database of a private MariaDB server (for tests that break the server).
    PrivateMariaDb(crate::PrivateMariaDb),
}

impl TestStore {
    /// A fresh database of `dialect`.
    pub async fn of(dialect: TestDialect) -> Self {
        Self::Fresh(dialect.fresh_database().await)
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        Self::of(TestDialect::Postgres).await
    }

    /// A fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::of(TestDialect::Sqlite).await
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        match self {
            Self::Fresh(database) => database.url.clone(),
            Self::Private(cluster) => cluster.url("postgres"),
            Self::PrivateMariaDb(server) => server.url(),
        }
    }

    /// Drops the database (or stops the private server).
    pub async fn cleanup(self) {
        match self {
            Self::Fresh(database) => database.drop_database().await,
            Self::Private(cluster) => drop(cluster),
            Self::PrivateMariaDb(server) => drop(server),
        }
    }
}

/// Defines, for each named `async fn NAME(dialect: TestDialect)`, a module `NAME` with one test per dialect
/// (`NAME::postgres`, `NAME::mysql`, `NAME::sqlite`).
#[macro_export]
macro_rules! on_every_dialect {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::TestDialect;

                #[tokio::test]
                async fn postgres() {
                    super::$name(TestDialect::Postgres).await
                }

                #[tokio::test]
                async fn mysql() {
                    super::$name(TestDialect::MySql).await
                }

                #[tokio::test]
                async fn sqlite() {
                    super::$name(TestDialect::Sqlite).await
                }
            }
        )*
    };
}

/// One running consumer and its surroundings.
pub struct Harness {
    /// The broker's URL.
    pub amqp_url: String,
    /// The test's exchange.
    pub exchange: String,
    /// The test's queue.
    pub queue: String,
    /// The database the consumer writes to.
    pub store: TestStore,
    /// A handle on that database, for the test's checks.
    pub database: Database,
    /// The consumer's options (change them before `start`).
    pub options: ConsumerOptions,
    /// The subscription's prefetch (change it before `start`).
    pub prefetch: u16,
    /// The subscription's count of bodies received and not yet acknowledged, once started.
    pub unacked: Option<colloquy_broker::UnackedBytes>,
    /// Run the consumer with `--analytics` (an `AnalyticsSink`).
    pub analytics: bool,
    running: Option<(
        oneshot::Sender<()>,
        JoinHandle<colloquy_consumer::Result<RunSummary>>,
        Metrics,
    )>,
}

impl Harness {
    /// A harness with its own exchange, queue and database; the consumer is not started yet.
    pub async fn new(store: TestStore) -> Self {
        let harness = Self::unmigrated(store).await;
        harness
            .database
            .migrate(Schema::Events)
            .await
            .expect("migrating the test database");
        harness
    }

    /// A harness like [`Harness::new`] on the broker at `amqp_url` instead of the shared one: a
    /// [`PrivateRabbitMq`](crate::PrivateRabbitMq) that the test may stop and start.
    pub async fn on_broker(store: TestStore, amqp_url: &str) -> Self {
        let mut harness = Self::new(store).await;
        harness.amqp_url = amqp_url.to_owned();
        harness
    }

    /// A harness whose database is left as it is (the consumer prepares it when it starts).
    pub async fn unmigrated(store: TestStore) -> Self {
        let database =
            Database::connect_lazy(&store.url(), &ConnectOptions::default()).expect("database URL");
        Self {
            amqp_url: crate::amqp_url().await,
            exchange: unique_name("colloquy-test-exchange"),
            queue: unique_name("colloquy-test-queue"),
            store,
            database,
            options: ConsumerOptions {
                batch_size: 200,
                ..ConsumerOptions::default()
            },
            prefetch: 400,
            unacked: None,
            analytics: false,
            running: None,
        }
    }

    /// The name the subscription gives its connection (unique to this harness), for closing only its
    /// connections with [`close_connections_named`](crate::broker::close_connections_named).
    pub fn connection_name(&self) -> String {
        format!("colloquy-consumer-test-{}", self.queue)
    }

    /// The subscription's settings: this harness's exchange, queue, connection name and prefetch.
    pub fn amqp_config(&self) -> AmqpConfig {
        AmqpConfig::from_url(&self.amqp_url)
            .expect("AMQP URL")
            .with_exchange(&self.exchange)
            .expect("exchange name")
            .with_queues([self.queue.as_str()])
            .expect("queue name")
            .with_connection_name(self.connection_name())
            .with_prefetch(std::num::NonZeroU16::new(self.prefetch).expect("prefetch above 0"))
    }

    /// Starts the consumer (it declares the exchange and queue).
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "the consumer runs already");
        // Bounded in bytes as `colloquy consume` subscribes.
        let subscription = AmqpSubscription::connect_bounded(
            self.amqp_config(),
            std::num::NonZeroUsize::new(self.options.max_inflight_bytes).expect("a bound above 0"),
        )
        .await
        .expect("subscribing");
        self.unacked = Some(subscription.unacked_bytes());
        let sink: Arc<dyn colloquy_consumer::EventSink> = if self.analytics {
            Arc::new(colloquy_consumer::AnalyticsSink::new(
                self.database.clone(),
                colloquy_storage::AnalyticsSettings::default(),
            ))
        } else {
            Arc::new(self.database.clone())
        };
        let consumer = Consumer::new(sink, self.options.clone());
        let metrics = consumer.metrics();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(consumer.run(Box::new(subscription), async move {
            let _ = stopped.await;
        }));
        self.running = Some((stop, handle, metrics));
    }

    /// The running consumer's metrics.
    pub fn metrics(&self) -> Metrics {
        self.running.as_ref().expect("the consumer runs").2.clone()
    }

    /// Stops the consumer gracefully and returns what it did.
    pub async fn stop(&mut self) -> RunSummary {
        let (stop, handle, _) = self.running.take().expect("the consumer runs");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("the consumer stops within 60 s")
            .expect("the consumer task did not panic")
            .expect("the consumer stopped cleanly")
    }

    /// Stops the consumer and returns the error it ended with.
    pub async fn stop_with_error(&mut self) -> colloquy_consumer::Error {
        let (stop, handle, _) = self.running.take().expect("the consumer runs");
        let _ = stop.send(());
        tokio::time::timeout(STORE_TIMEOUT, handle)
            .await
            .expect("the consumer stops within the timeout")
            .expect("the consumer task did not panic")
            .expect_err("the consumer ends with an error")
    }

    /// Waits (bounded) for the consumer to end on its own, and returns how it ended.
    pub async fn ended(&mut self) -> colloquy_consumer::Result<RunSummary> {
        let (_stop, handle, _) = self.running.take().expect("the consumer runs");
        tokio::time::timeout(STORE_TIMEOUT, handle)
            .await
            .expect("the consumer ends on its own")
            .expect("the consumer task did not panic")
    }

    /// Whether the consumer task has ended (it should not, on bad input).
    pub fn consumer_finished(&self) -> bool {
        self.running
            .as_ref()
            .is_none_or(|(_, handle, _)| handle.is_finished())
    }

    /// Publishes bodies exactly as Rasa's `PikaEventBroker` does (see [`crate::publish_like_rasa`]).
    pub async fn publish_like_rasa(&self, bodies: &[Vec<u8>]) {
        crate::publish_like_rasa(&self.amqp_url, &self.exchange, bodies).await;
    }

    /// Waits until the `events` table holds `count` rows.
    pub async fn wait_for_events(&self, count: i64) {
        let database = self.database.clone();
        wait_until(&format!("{count} stored events"), STORE_TIMEOUT, || {
            let database = database.clone();
            async move { count_rows(&database, "events").await == count }
        })
        .await;
    }

    /// Waits until the `dead_letters` table holds `count` rows.
    pub async fn wait_for_dead_letters(&self, count: i64) {
        let database = self.database.clone();
        wait_until(&format!("{count} dead letters"), STORE_TIMEOUT, || {
            let database = database.clone();
            async move { count_rows(&database, "dead_letters").await == count }
        })
        .await;
    }

    /// Every stored event, in `id` order.
    pub async fn rows(&self) -> Vec<StoredRow> {
        self.database
            .events_after(0, i64::MAX)
            .await
            .expect("reading events")
    }

    /// Deletes the test's exchange and queue and its database.
    pub async fn cleanup(mut self) {
        if self.running.is_some() {
            self.stop().await;
        }
        crate::delete_topology(&self.amqp_url, &self.exchange, &self.queue).await;
        self.database.close().await;
        self.store.cleanup().await;
    }
}

/// How many rows `table` (`events` or `dead_letters`) holds; -1 while the database does not answer.
pub async fn count_rows(database: &Database, table: &str) -> i64 {
    let counted = match table {
        // Only that table: a test may have dropped the other.
        "dead_letters" => database
            .dead_letters(0, i64::MAX, Some(0))
            .await
            .map(|letters| letters.len() as u64),
        _ => database.table_counts().await.map(|(events, _)| events),
    };
    counted.map_or(-1, |count| count as i64)
}
