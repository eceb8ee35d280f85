//! The SQL store on PostgreSQL, what only PostgreSQL shows: Rasa's own SQL reading our rows, a save refused
//! inside the server, the outbox under a killed process, and start-up errors. The conformance cases run on
//! every dialect in `sql.rs`.

use colloquy_testkit::tracker_store as common;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use colloquy_broker::EventBroker;
use colloquy_events::{Event, Tracker};
use colloquy_testkit::{TestDatabase, fresh_database, wait_until};
use colloquy_tracker_store::{SqlConfig, SqlStore, TrackerStore};
use common::{
    NeverConfirmingBroker, Recorder, amqp_broker, event, in_process_broker, session_start, turn,
};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

async fn connect(db: &TestDatabase, broker: Option<Arc<dyn EventBroker>>) -> Result<SqlStore> {
    Ok(SqlStore::connect(&SqlConfig::from_url(&db.url)?, broker).await?)
}

/// Runs `body` with a fresh database and a store streaming to the real in-process broker (and what its
/// subscription received); drops the database even when the body fails.
async fn with_store<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce(Arc<SqlStore>, Arc<Recorder>, TestDatabase) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let db = fresh_database().await;
    let (broker, received) = in_process_broker();
    let result = match connect(&db, Some(broker)).await {
        Ok(store) => {
            let store = Arc::new(store);
            let result = body(store.clone(), received, db.clone()).await;
            store.close().await?;
            result
        }
        Err(error) => Err(error),
    };
    db.drop_database().await;
    result
}

/// Rasa's columns by Rasa's rules, for one event.
fn rasa_columns(event: &Event) -> (String, Option<f64>, Option<String>, Option<String>, String) {
    let value = event.to_value();
    let type_name = value["event"].as_str().unwrap().to_owned();
    // Rasa: `intent_name` = parse_data.intent.name for user events; `action_name` = the `name` key if any.
    let intent_name = (type_name == "user")
        .then(|| {
            value
                .pointer("/parse_data/intent/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten();
    let action_name = value.get("name").and_then(Value::as_str).map(str::to_owned);
    let data = event.to_rasa_json();
    (
        type_name,
        value["timestamp"].as_f64(),
        intent_name,
        action_name,
        data,
    )
}

/// What Rasa 3.6's `SQLTrackerStore` sends (SQLAlchemy's SQL for `_event_query`, `keys`), literally.
const RASA_RETRIEVE: &str = r#"SELECT events.id AS events_id, events.sender_id AS events_sender_id, events.type_name AS events_type_name, events.timestamp AS events_timestamp, events.intent_name AS events_intent_name, events.action_name AS events_action_name, events.data AS events_data
FROM events, (SELECT max(events.timestamp) AS session_start
FROM events
WHERE events.sender_id = $1 AND events.type_name = $2) AS anon_1
WHERE events.sender_id = $3 AND (events.timestamp >= anon_1.session_start OR anon_1.session_start IS NULL) ORDER BY events.id"#;
const RASA_RETRIEVE_FULL: &str = r#"SELECT events.id AS events_id, events.sender_id AS events_sender_id, events.type_name AS events_type_name, events.timestamp AS events_timestamp, events.intent_name AS events_intent_name, events.action_name AS events_action_name, events.data AS events_data
FROM events
WHERE events.sender_id = $1 ORDER BY events.id"#;
const RASA_KEYS: &str = "SELECT DISTINCT events.sender_id AS events_sender_id \nFROM events";

/// Our rows read by Rasa's own queries: same columns by Rasa's rules, `data` without `sender_id`, the latest
/// session as Rasa selects it.
#[tokio::test]
async fn rasa_reads_our_rows() -> Result<()> {
    with_store(|store, _broker, db| async move {
        let id = "ours";
        let mut tracker = Tracker::new(id);
        let mut all = Vec::new();
        for step in [
            session_start(100.0),
            turn(101.0, 1),
            session_start(200.0),
            turn(201.0, 2),
        ] {
            tracker.apply_all(step.clone());
            store.save(&mut tracker).await?;
            all.extend(step);
        }
        let mut conn = PgConnection::connect(&db.url).await?;
        let check = |rows: &[sqlx::postgres::PgRow], expected: &[Event]| -> Result<()> {
            ensure!(
                rows.len() == expected.len(),
                "{} rows, expected {}",
                rows.len(),
                expected.len()
            );
            for (row, event) in rows.iter().zip(expected) {
                let (type_name, timestamp, intent_name, action_name, data) = rasa_columns(event);
                ensure!(row.get::<String, _>("events_sender_id") == id);
                ensure!(row.get::<String, _>("events_type_name") == type_name);
                ensure!(row.get::<Option<f64>, _>("events_timestamp") == timestamp);
                ensure!(row.get::<Option<String>, _>("events_intent_name") == intent_name);
                ensure!(row.get::<Option<String>, _>("events_action_name") == action_name);
                let stored: String = row.get("events_data");
                ensure!(stored == data, "data as Rasa writes it");
                let parsed: Value = serde_json::from_str(&stored)?;
                ensure!(parsed.get("sender_id").is_none() && parsed == event.to_value());
            }
            Ok(())
        };
        let full = sqlx::query(RASA_RETRIEVE_FULL)
            .bind(id)
            .fetch_all(&mut conn)
            .await?;
        check(&full, &all)?;
        let latest = sqlx::query(RASA_RETRIEVE)
            .bind(id)
            .bind("session_started")
            .bind(id)
            .fetch_all(&mut conn)
            .await?;
        let session: Vec<Event> = session_start(200.0)
            .into_iter()
            .chain(turn(201.0, 2))
            .collect();
        check(&latest, &session)?;
        // The same session as our `retrieve`.
        ensure!(store.retrieve(id).await?.context("stored")?.events() == session.as_slice());
        let keys: Vec<String> = sqlx::query_scalar(RASA_KEYS).fetch_all(&mut conn).await?;
        ensure!(keys == [id]);
        conn.close().await?;
        Ok(())
    })
    .await
}

/// An event whose transaction rolls back is never published; the next save goes through.
#[tokio::test]
async fn an_event_never_committed_is_never_published() -> Result<()> {
    with_store(|store, broker, db| async move {
        let mut conn = PgConnection::connect(&db.url).await?;
        // Fault injection in the real server: the insert of a `poison` event fails inside the save's transaction.
        sqlx::raw_sql(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.type_name = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
        )
        .execute(&mut conn)
        .await?;
        let id = "poisoned";
        let mut tracker = Tracker::new(id);
        tracker.apply_all(session_start(1.0));
        tracker.apply(event(json!({"event": "poison", "timestamp": 2.0})));
        let error = store.save(&mut tracker).await.unwrap_err();
        ensure!(!error.is_conflict() && !error.is_transient(), "{error}");
        ensure!(tracker.saved_len() == 0);
        ensure!(!store.exists(id).await? && store.outbox_len().await? == 0);

        let mut good = Tracker::new(id);
        good.apply_all(session_start(1.0));
        store.save(&mut good).await?;
        wait_until("the good events to be published", Duration::from_secs(20), || async { broker.count() >= 3 }).await;
        wait_until("the outbox to drain", Duration::from_secs(20), || async { store.outbox_len().await.unwrap() == 0 }).await;
        ensure!(broker.published().iter().all(|e| e.envelope.event.type_name() != "poison"));
        ensure!(broker.positions_of(id) == [0, 1, 2] && broker.count() == 3);
        conn.close().await?;
        Ok(())
    })
    .await
}

const CHILD_DB_ENV: &str = "COLLOQUY_TRACKER_STORE_CRASH_CHILD_DB";
const CHILD_EVENTS: usize = 3 + 10 * 4;

/// The crash test. The parent runs this test binary again as a child process that saves a conversation with a
/// broker that never confirms, prints `COMMITTED`, and is then killed with SIGKILL. A new store with a broker
/// publishes everything the child committed, in order, once confirmed.
#[tokio::test]
async fn outbox_survives_a_killed_process() -> Result<()> {
    if let Ok(url) = std::env::var(CHILD_DB_ENV) {
        return crash_child(&url).await;
    }
    let db = fresh_database().await;
    let result = crash_parent(&db).await;
    db.drop_database().await;
    result
}

async fn crash_child(url: &str) -> Result<()> {
    let store = SqlStore::connect(
        &SqlConfig::from_url(url)?,
        Some(Arc::new(NeverConfirmingBroker)),
    )
    .await?;
    let mut tracker = Tracker::new("crash");
    tracker.apply_all(session_start(1.0));
    store.save(&mut tracker).await?;
    for n in 0..10 {
        tracker.apply_all(turn(2.0 + n as f64, n));
        store.save(&mut tracker).await?;
    }
    println!("COMMITTED {}", tracker.events().len());
    // Wait to be killed. The parent holds our stdin open; should it die instead, stdin ends and so do we.
    tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await??;
    anyhow::bail!("the parent did not kill the child")
}

async fn crash_parent(db: &TestDatabase) -> Result<()> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "outbox_survives_a_killed_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &db.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let committed = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            // libtest prints `test name ... ` before the child's own output, on the same line.
            if let Some((_, count)) = line.split_once("COMMITTED ") {
                return anyhow::Ok(count.trim().parse::<usize>()?);
            }
        }
        anyhow::bail!("the child ended without committing")
    })
    .await
    .context("the child did not commit in time")??;
    ensure!(committed == CHILD_EVENTS);
    child.start_kill()?; // SIGKILL
    child.wait().await?;

    // Everything committed is still in the outbox: nothing was confirmed.
    let inspector = connect(db, None).await?;
    ensure!(inspector.outbox_len().await? == CHILD_EVENTS as u64);
    inspector.close().await?;

    // A new process (here: a new store) with the real RabbitMQ broker publishes the leftovers.
    let (amqp, broker, queue) = amqp_broker().await;
    let store = connect(db, Some(amqp.clone())).await?;
    wait_until(
        "the leftovers to be published and confirmed",
        Duration::from_secs(30),
        || async { store.outbox_len().await.unwrap() == 0 },
    )
    .await;
    wait_until(
        "the leftovers to arrive",
        Duration::from_secs(30),
        || async { broker.count() >= CHILD_EVENTS },
    )
    .await;
    ensure!(broker.positions_of("crash") == (0..CHILD_EVENTS as u64).collect::<Vec<_>>());
    // RabbitMQ delivery is at-least-once: a copy must carry the same id (checked by `positions_of`, which
    // drops same-id copies). Every distinct message is the stored event at its position.
    let stored = store.retrieve_full("crash").await?.context("stored")?;
    let ids: Vec<_> = stored.stamp_all().into_iter().map(|e| e.id).collect();
    for message in broker.published() {
        let seq = message.seq.context("a position")? as usize;
        ensure!(message.id == ids[seq] && message.envelope.event == stored.events()[seq]);
    }
    store.close().await?;
    amqp.close().await?;
    drop(queue);
    Ok(())
}

/// A database that is down at start-up: bounded retries, then a clear, transient error.
#[tokio::test]
async fn unreachable_database_fails_clearly_after_bounded_retries() -> Result<()> {
    let mut config = SqlConfig::from_url("postgres://colloquy:secret@127.0.0.1:1/nowhere")?;
    config.connect_attempts = 3;
    config.connect_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let error = SqlStore::connect(&config, None).await.unwrap_err();
    ensure!(started.elapsed() < Duration::from_secs(30));
    let message = error.to_string();
    ensure!(error.is_transient(), "{message}");
    ensure!(
        message.contains("127.0.0.1:1/nowhere") && message.contains("3 attempts"),
        "{message}"
    );
    ensure!(!message.contains("secret"));
    Ok(())
}

/// Rasa's `endpoints.yml` with `login_db`: the store creates its database from the login database.
#[tokio::test]
async fn connects_from_endpoints_yaml_creating_the_database() -> Result<()> {
    let server = colloquy_testkit::database_url().await;
    let options = sqlx::postgres::PgConnectOptions::from_str(&server)?;
    let name = colloquy_testkit::unique_name("colloquy_test_login").replace('-', "_");
    let yaml = format!(
        "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: ${{PGHOST_TEST}}\n  port: {}\n  db: {name}\n  username: {}\n  login_db: {}\n",
        options.get_port(),
        options.get_username(),
        options.get_database().unwrap_or("postgres"),
    );
    let host = options.get_host().to_owned();
    let config =
        SqlConfig::from_endpoints_yaml(&yaml, |var| (var == "PGHOST_TEST").then(|| host.clone()))?;
    let result = async {
        let store = SqlStore::connect(&config, None).await?;
        let mut tracker = Tracker::new("yaml");
        tracker.apply_all(session_start(1.0));
        store.save(&mut tracker).await?;
        ensure!(store.keys().await? == ["yaml"]);
        store.close().await?;
        Ok(())
    }
    .await;
    let mut admin = PgConnection::connect(&server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}
