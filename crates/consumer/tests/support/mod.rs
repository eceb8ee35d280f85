//! The consumer's test harness: a consumer running in this process against the real RabbitMQ and a fresh
//! PostgreSQL database (or an SQLite file), with its own exchange and queue, and a Rasa-like publisher.

#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::{AmqpConfig, AmqpSubscription};
use colloquy_consumer::{Consumer, ConsumerOptions, Database, Metrics, RunSummary};
use colloquy_testkit::{TestDatabase, unique_name, wait_until};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use sqlx::Row;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the consumer to store what it expects.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(60);

/// The database a test consumer writes to.
pub enum TestStore {
    Postgres(TestDatabase),
    Sqlite(std::path::PathBuf),
}

impl TestStore {
    pub async fn postgres() -> Self {
        Self::Postgres(colloquy_testkit::fresh_database().await)
    }

    pub fn sqlite() -> Self {
        Self::Sqlite(
            std::env::temp_dir().join(format!("{}.db", unique_name("colloquy-consumer-test"))),
        )
    }

    pub fn url(&self) -> String {
        match self {
            Self::Postgres(database) => database.url.clone(),
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }

    pub async fn cleanup(self) {
        match self {
            Self::Postgres(database) => database.drop_database().await,
            Self::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

/// A stored row of `events`, in `id` order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub sender_id: String,
    pub type_name: String,
    pub timestamp: Option<f64>,
    pub intent_name: Option<String>,
    pub action_name: Option<String>,
    pub data: String,
    pub event_id: Option<String>,
}

/// One running consumer and its surroundings.
pub struct Harness {
    pub amqp_url: String,
    pub exchange: String,
    pub queue: String,
    pub store: TestStore,
    pub database: Database,
    pub options: ConsumerOptions,
    pub prefetch: u16,
    running: Option<(
        oneshot::Sender<()>,
        JoinHandle<colloquy_consumer::Result<RunSummary>>,
        Metrics,
    )>,
}

impl Harness {
    /// A harness with its own exchange, queue and database; the consumer is not started yet.
    pub async fn new(store: TestStore) -> Self {
        let database = Database::connect_lazy(&store.url()).expect("database URL");
        database
            .migrate()
            .await
            .expect("migrating the test database");
        Self {
            amqp_url: colloquy_testkit::amqp_url().await,
            exchange: unique_name("colloquy-test-exchange"),
            queue: unique_name("colloquy-test-queue"),
            store,
            database,
            options: ConsumerOptions {
                batch_size: 200,
                ..ConsumerOptions::default()
            },
            prefetch: 400,
            running: None,
        }
    }

    pub fn amqp_config(&self) -> AmqpConfig {
        AmqpConfig::from_url(&self.amqp_url)
            .expect("AMQP URL")
            .with_exchange(&self.exchange)
            .expect("exchange name")
            .with_queues([self.queue.as_str()])
            .expect("queue name")
            .with_connection_name(format!("colloquy-consumer-test-{}", self.queue))
            .with_prefetch(std::num::NonZeroU16::new(self.prefetch).expect("prefetch above 0"))
    }

    /// Starts the consumer (it declares the exchange and queue).
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "the consumer runs already");
        let subscription = AmqpSubscription::connect(self.amqp_config())
            .await
            .expect("subscribing");
        let consumer = Consumer::new(Arc::new(self.database.clone()), self.options.clone());
        let metrics = consumer.metrics();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(consumer.run(Box::new(subscription), async move {
            let _ = stopped.await;
        }));
        self.running = Some((stop, handle, metrics));
    }

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

    /// Whether the consumer task has ended (it should not, on bad input).
    pub fn consumer_finished(&self) -> bool {
        self.running
            .as_ref()
            .is_none_or(|(_, handle, _)| handle.is_finished())
    }

    /// Publishes bodies exactly as Rasa's `PikaEventBroker` does: to the fanout exchange, routing key "",
    /// delivery mode 2, empty headers, a random message id per publish, no content type; with confirms.
    pub async fn publish_like_rasa(&self, bodies: &[Vec<u8>]) {
        let connection = Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .expect("connecting the Rasa-like publisher");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: false,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declaring the exchange as Rasa does");
        let mut confirms = Vec::with_capacity(bodies.len());
        for body in bodies {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(FieldTable::default())
                .with_message_id(uuid::Uuid::new_v4().simple().to_string().into());
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await
                .expect("publishing");
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = confirm.await.expect("confirm");
            assert!(confirmation.is_ack(), "the broker refused a message");
        }
        let _ = connection.close(200, "done".into()).await;
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
        const QUERY: &str = r#"SELECT sender_id, type_name, "timestamp", intent_name, action_name, data, event_id
                               FROM events ORDER BY id"#;
        match &self.database {
            Database::Postgres(pool) => sqlx::query(QUERY)
                .fetch_all(pool)
                .await
                .expect("reading events")
                .iter()
                .map(|row| StoredRow {
                    sender_id: row.get(0),
                    type_name: row.get(1),
                    timestamp: row.get(2),
                    intent_name: row.get(3),
                    action_name: row.get(4),
                    data: row.get(5),
                    event_id: row.get(6),
                })
                .collect(),
            Database::Sqlite(pool) => sqlx::query(QUERY)
                .fetch_all(pool)
                .await
                .expect("reading events")
                .iter()
                .map(|row| StoredRow {
                    sender_id: row.get(0),
                    type_name: row.get(1),
                    timestamp: row.get(2),
                    intent_name: row.get(3),
                    action_name: row.get(4),
                    data: row.get(5),
                    event_id: row.get(6),
                })
                .collect(),
        }
    }

    /// Deletes the test's exchange and queue and its database.
    pub async fn cleanup(mut self) {
        if self.running.is_some() {
            self.stop().await;
        }
        if let Ok(connection) =
            Connection::connect(&self.amqp_url, ConnectionProperties::default()).await
        {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = channel
                    .exchange_delete(self.exchange.as_str().into(), Default::default())
                    .await;
            }
            let _ = connection.close(200, "done".into()).await;
        }
        self.database.close().await;
        self.store.cleanup().await;
    }
}

pub async fn count_rows(database: &Database, table: &str) -> i64 {
    let query = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
    match database {
        Database::Postgres(pool) => sqlx::query_scalar(query)
            .fetch_one(pool)
            .await
            .unwrap_or(-1),
        Database::Sqlite(pool) => sqlx::query_scalar(query)
            .fetch_one(pool)
            .await
            .unwrap_or(-1),
    }
}

/// A Rasa conversation as Rasa 3.6 publishes it: session start, user turns with NLU data, bot replies, slots.
/// Timestamps repeat within a turn, as Rasa's do. Bodies are byte-for-byte Rasa's `json.dumps` output.
pub fn rasa_conversation(sender_id: &str, turns: usize) -> Vec<Vec<u8>> {
    let sender = serde_json::to_string(sender_id).expect("sender id");
    let mut bodies = vec![
        format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": 1700000000.0, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}}"#
        ),
        format!(
            r#"{{"sender_id": {sender}, "event": "session_started", "timestamp": 1700000000.0, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}}}"#
        ),
        format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": 1700000000.0, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}}"#
        ),
    ];
    for turn in 0..turns {
        let t = 1700000001.25 + turn as f64;
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "user", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "text": "I want indian food \u00e9 \ud83c\udf5b {turn}", "parse_data": {{"intent": {{"name": "request_restaurant", "confidence": 0.9412345678901234}}, "entities": [{{"entity": "cuisine", "start": 7, "end": 13, "confidence_entity": 0.99, "value": "indian", "extractor": "DIETClassifier"}}], "text": "I want indian food \u00e9 \ud83c\udf5b {turn}", "message_id": "6f1b{turn}", "metadata": {{}}, "intent_ranking": [{{"name": "request_restaurant", "confidence": 0.9412345678901234}}, {{"name": "greet", "confidence": 0.05}}]}}, "input_channel": "rest", "message_id": "6f1b{turn}"}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "slot", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "cuisine", "value": "indian"}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "utter_ack", "policy": "TEDPolicy", "confidence": 0.98, "action_text": null, "hide_rule_turn": false}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "bot", "timestamp": {t:?}, "metadata": {{"utter_action": "utter_ack", "model_id": "m1", "assistant_id": "a1"}}, "text": "Sure, turn {turn}!", "data": {{"elements": null, "quick_replies": null, "buttons": null, "attachment": null, "image": null, "custom": null}}}}"#
        ));
        bodies.push(format!(
            r#"{{"sender_id": {sender}, "event": "action", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "name": "action_listen", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": true}}"#
        ));
    }
    bodies.into_iter().map(String::into_bytes).collect()
}

/// Interleaves conversations the way concurrent conversations reach a queue: one event of each in turn.
pub fn interleave(conversations: Vec<Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    let longest = conversations.iter().map(Vec::len).max().unwrap_or(0);
    let mut bodies = Vec::new();
    for index in 0..longest {
        for conversation in &conversations {
            if let Some(body) = conversation.get(index) {
                bodies.push(body.clone());
            }
        }
    }
    bodies
}

/// The `data` column Rasa writes for a body: the body without its leading `"sender_id": ..., `.
pub fn data_of(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("UTF-8 body");
    let after_sender = text.find(r#", "event""#).expect("sender_id first");
    format!("{{{}", &text[after_sender + 2..])
}
