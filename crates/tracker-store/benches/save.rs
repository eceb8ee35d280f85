//! Saves per second and events per second of the stores: many conversations of ~40 events saved turn by turn
//! in parallel, against a plain multi-row INSERT of the same rows into the same database (each SQL dialect:
//! PostgreSQL, SQLite, MariaDB/MySQL) and a plain `SET` of the same serialised trackers (Redis baseline) in the
//! same run.
//!
//! `cargo bench -p colloquy-tracker-store --bench save` (PostgreSQL from `DATABASE_URL`, MariaDB from
//! `MYSQL_URL`, else the local defaults; SQLite in a temporary file; a fresh database per dialect is created
//! and dropped; Redis from `REDIS_URL` or the local default, under a key prefix of its own that is deleted
//! afterwards). `BENCH_DIALECTS` (default `postgres,sqlite,mysql,redis`) picks the stores.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use colloquy_broker::{EventBroker, Subscription};
use colloquy_events::{Event, Tracker};
use colloquy_storage::EventRow;
use colloquy_testkit::{TestDatabase, TestDialect};
use colloquy_tracker_store::{
    InMemoryStore, RedisConfig, RedisStore, SqlConfig, SqlStore, TrackerStore,
};
use serde_json::json;
use sqlx::{MySql, Postgres, QueryBuilder, Sqlite};

const CONVERSATIONS: usize = 400;
const TURNS: usize = 9;
/// Concurrent conversations (tasks); PostgreSQL pools get as many connections.
const PARALLEL: usize = 8;

fn event(value: serde_json::Value) -> Event {
    Event::from_value(value).expect("a valid event")
}

/// The saves of one conversation: the session start (3 events), then 9 turns of 4 events: 39 events, 10 saves.
fn conversation_steps(c: usize) -> Vec<Vec<Event>> {
    let t = 1_700_000_000.0 + c as f64;
    let mut steps = vec![vec![
        event(
            json!({"event": "action", "timestamp": t + 0.001, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}),
        ),
        event(
            json!({"event": "session_started", "timestamp": t, "metadata": {"model_id": "m1", "assistant_id": "a1"}}),
        ),
        event(
            json!({"event": "action", "timestamp": t + 0.002, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}),
        ),
    ]];
    for n in 0..TURNS {
        let t = t + 1.0 + n as f64;
        steps.push(vec![
            event(json!({"event": "user", "timestamp": t, "metadata": {"source": "web"}, "text": format!("I want food number {n}"), "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.94}, "entities": [{"entity": "cuisine", "value": "indian", "start": 7, "end": 13}], "text": format!("I want food number {n}"), "message_id": format!("m{n}"), "metadata": {"source": "web"}}, "input_channel": "rest", "message_id": format!("m{n}")})),
            event(json!({"event": "slot", "timestamp": t + 0.01, "name": "cuisine", "value": "indian"})),
            event(json!({"event": "bot", "timestamp": t + 0.02, "text": "Here are some restaurants.", "data": {"elements": null, "quick_replies": null, "buttons": null, "attachment": null, "image": null, "custom": null}, "metadata": {"utter_action": "utter_restaurants"}})),
            event(json!({"event": "action", "timestamp": t + 0.03, "name": "action_listen", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": false})),
        ]);
    }
    steps
}

struct Figures {
    saves: usize,
    events: usize,
    elapsed: Duration,
}

impl Figures {
    fn saves_per_second(&self) -> f64 {
        self.saves as f64 / self.elapsed.as_secs_f64()
    }
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn print(&self, name: &str) {
        println!(
            "{name:<44} {:>9.0} saves/s {:>9.0} events/s ({} saves, {} events, {:.2} s)",
            self.saves_per_second(),
            self.events_per_second(),
            self.saves,
            self.events,
            self.elapsed.as_secs_f64()
        );
    }
}

/// Saves every conversation turn by turn, `PARALLEL` conversations at a time.
async fn run_store(store: Arc<dyn TrackerStore>, prefix: &str) -> Figures {
    let all: Vec<Vec<Vec<Event>>> = (0..CONVERSATIONS).map(conversation_steps).collect();
    let (saves, events) = count(&all);
    let queue = Arc::new(std::sync::Mutex::new(
        all.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let store = store.clone();
        let queue = queue.clone();
        let prefix = prefix.to_owned();
        tasks.spawn(async move {
            loop {
                let Some((c, steps)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let mut tracker = Tracker::new(format!("{prefix}-{c}"));
                for step in steps {
                    tracker.apply_all(step);
                    store.save(&mut tracker).await.expect("save");
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("a saving task");
    }
    Figures {
        saves,
        events,
        elapsed: started.elapsed(),
    }
}

fn count(all: &[Vec<Vec<Event>>]) -> (usize, usize) {
    let saves = all.iter().map(Vec::len).sum();
    let events = all.iter().flatten().map(Vec::len).sum();
    (saves, events)
}

/// The baseline's pool: the same database as the store's.
#[derive(Clone)]
enum BaselinePool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

impl BaselinePool {
    async fn connect(database: &TestDatabase) -> Self {
        let connections = PARALLEL as u32;
        match database.dialect {
            TestDialect::Postgres => Self::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(connections)
                    .connect(&database.url)
                    .await
                    .expect("a baseline pool"),
            ),
            TestDialect::MySql => Self::MySql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(connections)
                    .connect(&database.url)
                    .await
                    .expect("a baseline pool"),
            ),
            TestDialect::Sqlite => {
                // The store's durability: WAL, a commit synced before it returns.
                let options = database
                    .url
                    .parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .expect("a SQLite URL")
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(30));
                Self::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(connections)
                        .connect_with(options)
                        .await
                        .expect("a baseline pool"),
                )
            }
        }
    }

    async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::MySql(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// One plain multi-row `INSERT ... VALUES` of `rows` (autocommit).
    async fn insert(&self, rows: &[EventRow]) {
        const COLUMNS: &str =
            "sender_id, type_name, timestamp, intent_name, action_name, data, event_id";
        macro_rules! insert {
            ($db:ty, $pool:expr, $columns:expr) => {{
                let mut insert: QueryBuilder<$db> =
                    QueryBuilder::new(format!("INSERT INTO events ({}) ", $columns));
                insert.push_values(rows, |mut values, row| {
                    values
                        .push_bind(&row.sender_id)
                        .push_bind(&row.type_name)
                        .push_bind(row.timestamp)
                        .push_bind(&row.intent_name)
                        .push_bind(&row.action_name)
                        .push_bind(&row.data)
                        .push_bind(&row.event_id);
                });
                insert.build().execute($pool).await.expect("insert");
            }};
        }
        match self {
            Self::Postgres(pool) => insert!(
                Postgres,
                pool,
                COLUMNS.replace("timestamp", "\"timestamp\"")
            ),
            Self::MySql(pool) => insert!(MySql, pool, COLUMNS.replace("timestamp", "`timestamp`")),
            Self::Sqlite(pool) => {
                insert!(Sqlite, pool, COLUMNS.replace("timestamp", "\"timestamp\""))
            }
        }
    }
}

/// The baseline: the same rows, one plain multi-row `INSERT ... VALUES` per turn (autocommit), same
/// parallelism. Rows are built before the clock starts.
async fn run_baseline(pool: BaselinePool, prefix: &str) -> Figures {
    let mut all_rows: Vec<Vec<Vec<EventRow>>> = Vec::new();
    for c in 0..CONVERSATIONS {
        let mut tracker = Tracker::new(format!("{prefix}-{c}"));
        let mut steps = Vec::new();
        for step in conversation_steps(c) {
            tracker.apply_all(step);
            let rows = tracker
                .stamped_since_last_save()
                .iter()
                .map(|s| EventRow::new(tracker.sender_id(), &s.envelope.event, &s.id).unwrap())
                .collect();
            tracker.mark_saved();
            steps.push(rows);
        }
        all_rows.push(steps);
    }
    let saves = all_rows.iter().map(Vec::len).sum();
    let events = all_rows.iter().flatten().map(Vec::len).sum();
    let queue = Arc::new(std::sync::Mutex::new(all_rows));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let pool = pool.clone();
        let queue = queue.clone();
        tasks.spawn(async move {
            loop {
                let Some(steps) = queue.lock().unwrap().pop() else {
                    break;
                };
                for rows in steps {
                    pool.insert(&rows).await;
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("an inserting task");
    }
    Figures {
        saves,
        events,
        elapsed: started.elapsed(),
    }
}

/// An in-process broker whose subscription is drained (and acked) by a task.
fn drained_in_process_broker() -> Arc<dyn EventBroker> {
    let (broker, mut subscription) =
        colloquy_broker::in_process(std::num::NonZeroUsize::new(4096).unwrap());
    tokio::spawn(async move {
        while let Ok(Some(delivery)) = subscription.next().await {
            delivery.acker.ack().await.ok();
        }
    });
    Arc::new(broker)
}

/// The Redis baseline: what Rasa's `RedisTrackerStore.save` writes, one plain `SET` of the whole serialised
/// tracker per turn (values built before the clock starts), same parallelism, one multiplexed connection.
async fn run_redis_baseline(url: &str, prefix: &str) -> Figures {
    let mut all_values: Vec<Vec<(String, String)>> = Vec::new();
    for c in 0..CONVERSATIONS {
        let sender_id = format!("{prefix}-{c}");
        let mut tracker = Tracker::new(&sender_id);
        let mut steps = Vec::new();
        for step in conversation_steps(c) {
            tracker.apply_all(step);
            let events: Vec<String> = tracker.events().iter().map(|e| e.to_rasa_json()).collect();
            let value = format!(
                r#"{{"events": [{}], "name": "{sender_id}"}}"#,
                events.join(", ")
            );
            steps.push((format!("{prefix}:tracker:{sender_id}"), value));
        }
        all_values.push(steps);
    }
    let saves = all_values.iter().map(Vec::len).sum();
    let events = count(
        &(0..CONVERSATIONS)
            .map(conversation_steps)
            .collect::<Vec<_>>(),
    )
    .1;
    let client = redis::Client::open(url).expect("a Redis URL");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis connection");
    let queue = Arc::new(std::sync::Mutex::new(all_values));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let mut conn = conn.clone();
        let queue = queue.clone();
        tasks.spawn(async move {
            loop {
                let Some(steps) = queue.lock().unwrap().pop() else {
                    break;
                };
                for (key, value) in steps {
                    let () = redis::AsyncCommands::set(&mut conn, key, value)
                        .await
                        .expect("SET");
                }
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("a SET task");
    }
    Figures {
        saves,
        events,
        elapsed: started.elapsed(),
    }
}

/// Deletes every key of the bench's Redis prefix (trackers, our metadata, the outbox, the relay lease).
fn delete_redis_keys(url: &str, prefix: &str) {
    let mut conn = redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .expect("a Redis connection");
    for pattern in [
        format!("{prefix}:tracker:*"),
        format!("colloquy:meta:{prefix}:tracker:*"),
        format!("colloquy:*:{prefix}:tracker:"),
    ] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut conn)
            .expect("KEYS");
        for chunk in keys.chunks(1000) {
            let _: u64 = redis::cmd("DEL").arg(chunk).query(&mut conn).expect("DEL");
        }
    }
}

/// The Redis part of the run: baseline, store without and with the outbox, baseline again.
async fn run_redis() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let prefix = format!("bench{}", std::process::id());
    let config = RedisConfig::from_url(&url)
        .expect("a Redis URL")
        .with_key_prefix(Some(&prefix));
    // Warm up (connections, the script cache).
    let warm = RedisStore::connect(&config, None)
        .await
        .expect("connecting to Redis");
    run_store(Arc::new(warm), "warm").await;
    let baseline = run_redis_baseline(&url, &format!("{prefix}b1")).await;
    baseline.print("Redis baseline: plain SET per turn");
    let store = RedisStore::connect(&config, None)
        .await
        .expect("connecting to Redis");
    let plain = run_store(Arc::new(store), "redis").await;
    plain.print("Redis store, no broker");
    let store = Arc::new(
        RedisStore::connect(&config, Some(drained_in_process_broker()))
            .await
            .expect("connecting to Redis"),
    );
    let outboxed = run_store(store.clone(), "redis-outbox").await;
    let drained = Instant::now();
    store
        .close_within(Duration::from_secs(120))
        .await
        .expect("the outbox drained");
    outboxed.print("Redis store + outbox -> in-process");
    println!(
        "Redis outbox drained {:.2} s after the last save",
        drained.elapsed().as_secs_f64()
    );
    let baseline_again = run_redis_baseline(&url, &format!("{prefix}b2")).await;
    baseline_again.print("Redis baseline again (drift check)");
    let base = (baseline.saves_per_second() + baseline_again.saves_per_second()) / 2.0;
    println!(
        "ratio to the Redis baseline (saves/s): store {:.2}, store + outbox {:.2}",
        plain.saves_per_second() / base,
        outboxed.saves_per_second() / base
    );
    for extra in ["b1", "b2"] {
        delete_redis_keys(&url, &format!("{prefix}{extra}"));
    }
    delete_redis_keys(&url, &prefix);
}

/// One SQL dialect: baseline, store without and with the outbox, baseline again; returns the summary line.
async fn run_sql(dialect: TestDialect) -> String {
    let name = match dialect {
        TestDialect::Postgres => "PostgreSQL",
        TestDialect::Sqlite => "SQLite",
        TestDialect::MySql => "MariaDB",
    };
    let db = dialect.fresh_database().await.guard();
    let mut config = SqlConfig::from_url(&db.url).expect("a URL");
    config.max_connections = PARALLEL as u32;
    // The store creates (and migrates) the database; the baseline then inserts into the same table.
    let store = SqlStore::connect(&config, None).await.expect("connecting");
    let pool = BaselinePool::connect(&db).await;
    // Warm both paths up (connections, statement caches).
    run_store(Arc::new(InMemoryStore::new()), "warm").await;
    let baseline = run_baseline(pool.clone(), "baseline").await;
    baseline.print(&format!("{name} baseline: multi-row INSERT per turn"));
    let plain = run_store(Arc::new(store), "sql").await;
    plain.print(&format!("{name} store, no broker"));
    let store = SqlStore::connect(&config, Some(drained_in_process_broker()))
        .await
        .expect("connecting");
    let store = Arc::new(store);
    let outboxed = run_store(store.clone(), "sql-outbox").await;
    let drained = Instant::now();
    colloquy_testkit::wait_until("the outbox to drain", Duration::from_secs(120), || async {
        store.outbox_len().await.expect("outbox") == 0
    })
    .await;
    outboxed.print(&format!("{name} store + outbox -> in-process"));
    println!(
        "{name} outbox drained {:.2} s after the last save",
        drained.elapsed().as_secs_f64()
    );
    let baseline_again = run_baseline(pool.clone(), "baseline-again").await;
    baseline_again.print(&format!("{name} baseline again (drift check)"));
    let base = (baseline.saves_per_second() + baseline_again.saves_per_second()) / 2.0;
    let line = format!(
        "{name}: baseline {:.0} / {:.0} saves/s, store {:.0}, store + outbox {:.0}; ratio to the baseline (saves/s): store {:.2}, store + outbox {:.2}",
        baseline.saves_per_second(),
        baseline_again.saves_per_second(),
        plain.saves_per_second(),
        outboxed.saves_per_second(),
        plain.saves_per_second() / base,
        outboxed.saves_per_second() / base
    );
    println!("{line}");
    store.close().await.expect("closing the store");
    pool.close().await;
    drop(db);
    line
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        println!(
            "{CONVERSATIONS} conversations x {} events in {} saves each, {PARALLEL} in parallel",
            count(&[conversation_steps(0)]).1,
            TURNS + 1
        );
        run_store(Arc::new(InMemoryStore::new()), "memory")
            .await
            .print("memory store, no broker");
        run_store(
            Arc::new(InMemoryStore::with_broker(drained_in_process_broker())),
            "memory-b",
        )
        .await
        .print("memory store -> in-process broker");

        let wanted = std::env::var("BENCH_DIALECTS")
            .unwrap_or_else(|_| "postgres,sqlite,mysql,redis".to_owned());
        let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
        let mut summary = Vec::new();
        for (name, dialect) in [
            ("postgres", TestDialect::Postgres),
            ("sqlite", TestDialect::Sqlite),
            ("mysql", TestDialect::MySql),
        ] {
            if wanted.contains(&name) {
                summary.push(run_sql(dialect).await);
            }
        }
        for line in &summary {
            println!("{line}");
        }
        if !wanted.contains(&"redis") {
            return;
        }
        run_redis().await;
    });
}
