//! `colloquy consume --analytics` and `colloquy analytics rebuild` as an operator runs them, against the real
//! RabbitMQ and PostgreSQL: the consumer (switched on by `COLLOQUY_ANALYTICS`) keeps the tables in small
//! batches, with the markers `colloquy markers upload` stored, hit once per event; a rebuild from scratch
//! gives exactly the same tables; a second rebuild derives nothing; a rebuild
//! of a database that never had analytics creates and fills them.

use std::process::{Command, Stdio};
use std::time::Duration;

use colloquy_storage::{ConnectOptions, Database};
use colloquy_testkit::{
    delete_topology, interleave, publish_like_rasa, rasa_conversation, unique_name, wait_until,
};

const BINARY: &str = env!("CARGO_BIN_EXE_colloquy");
const TIMEOUT: Duration = Duration::from_secs(60);

fn rebuild(database_url: &str, extra: &[&str]) -> String {
    let output = Command::new(BINARY)
        .args(["analytics", "rebuild", "--progress", "none"])
        .args(extra)
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .output()
        .expect("running colloquy analytics rebuild");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "rebuild failed: {stderr}");
    stderr
}

#[tokio::test]
async fn consume_with_analytics_equals_rebuild_on_postgresql() {
    let amqp_url = colloquy_testkit::amqp_url().await;
    let exchange = unique_name("cli-analytics-exchange");
    let queue = unique_name("cli-analytics-queue");
    let guard = colloquy_testkit::fresh_database().await.guard();
    let url = guard.url.clone();
    // Markers uploaded before the consumer starts are evaluated as events arrive.
    let config = std::env::temp_dir().join(format!("{queue}.yml"));
    std::fs::write(
        &config,
        "asked:\n  description: a restaurant request\n  intent: request_restaurant\n",
    )
    .unwrap();
    let upload = Command::new(BINARY)
        .args(["markers", "upload", "--config"])
        .arg(&config)
        .args(["--database-url", &url])
        .output()
        .unwrap();
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    std::fs::remove_file(&config).unwrap();
    let mut child = Command::new(BINARY)
        .args(["consume", "--amqp-url", &amqp_url, "--exchange", &exchange])
        .args([
            "--queue",
            &queue,
            "--database-url",
            &url,
            "--batch-size",
            "9",
        ])
        .env("COLLOQUY_ANALYTICS", "true")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting colloquy consume");
    let database = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    let bodies = interleave(
        (0..6)
            .map(|n| rasa_conversation(&format!("analytics-{n}"), 2 + n))
            .collect(),
    );
    // The consumer creates the analytics tables (and binds its queue) before it takes deliveries.
    wait_until("the analytics tables", TIMEOUT, || {
        let database = database.clone();
        async move { database.analytics_dump().await.is_ok() }
    })
    .await;
    wait_until("the consumer's queue", TIMEOUT, || {
        let (url, queue) = (amqp_url.clone(), queue.clone());
        async move {
            let Ok(connection) =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
            else {
                return false;
            };
            let Ok(channel) = connection.create_channel().await else {
                return false;
            };
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let exists = channel
                .queue_declare(queue.as_str().into(), passive, Default::default())
                .await
                .is_ok();
            let _ = connection.close(200, "".into()).await;
            exists
        }
    })
    .await;
    publish_like_rasa(&amqp_url, &exchange, &bodies).await;
    wait_until("every event derived", TIMEOUT, || {
        let database = database.clone();
        let expected = bodies.len();
        async move {
            database.analytics_dump().await.is_ok_and(|rows| {
                rows.iter().filter(|r| r.starts_with("rasa_event:")).count() == expected
            })
        }
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        colloquy_testkit::wait_for_exit(&mut child, TIMEOUT)
            .await
            .success()
    );
    let kept = database.analytics_dump().await.unwrap();
    assert_eq!(
        kept.iter()
            .filter(|r| r.starts_with("rasa_marker:"))
            .count(),
        (2..8).sum::<usize>(),
        "one marker per user message"
    );

    let summary = rebuild(&url, &["--from-scratch"]);
    assert!(
        summary.contains(&format!(
            "6 conversations, {} events newly derived",
            bodies.len()
        )),
        "{summary}"
    );
    assert_eq!(
        database.analytics_dump().await.unwrap(),
        kept,
        "rebuild = consumer"
    );
    let summary = rebuild(&url, &[]);
    assert!(
        summary.contains("0 events newly derived"),
        "idempotent: {summary}"
    );
    assert_eq!(database.analytics_dump().await.unwrap(), kept);

    database.close().await;
    delete_topology(&amqp_url, &exchange, &queue).await;
    drop(guard);
}

/// A database whose events were stored without analytics (here by Colloquy's `migrate` and a consumer's
/// insert; Rasa-written databases are covered in the storage tests): rebuild creates the tables.
#[tokio::test]
async fn rebuild_creates_and_fills_the_tables_of_a_plain_database() {
    let guard = colloquy_testkit::TestDialect::Sqlite
        .fresh_database()
        .await
        .guard();
    let url = guard.url.clone();
    let database = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    database
        .migrate(colloquy_storage::Schema::Events)
        .await
        .unwrap();
    let rows: Vec<colloquy_storage::EventRow> = rasa_conversation("plain", 2)
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let envelope = colloquy_events::Envelope::from_json(body).unwrap();
            colloquy_storage::EventRow::new(
                &envelope.sender_id,
                &envelope.event,
                &colloquy_events::EventId::from(format!("plain-{i}")),
            )
            .unwrap()
        })
        .collect();
    database.store_batch(&rows, &[]).await.unwrap();
    assert!(
        database.analytics_dump().await.is_err(),
        "no analytics tables yet"
    );
    let summary = rebuild(&url, &[]);
    assert!(
        summary.contains("1 conversations, 13 events newly derived"),
        "{summary}"
    );
    let dump = database.analytics_dump().await.unwrap();
    assert_eq!(
        dump.iter().filter(|r| r.starts_with("rasa_turn:")).count(),
        2
    );
    database.close().await;
    drop(guard);
}

/// `colloquy markers evaluate` reads the conversations through the storage layer (byte order of their ids,
/// events in stored order) and writes what the marker library writes for them (the library's output is
/// compared with Rasa 3.6.21's own in the compat suite, `compat/rasa/tests/test_markers.py`).
#[tokio::test]
async fn markers_evaluate_writes_rasas_files_from_a_database() {
    use colloquy_analytics::markers::{
        Evaluator, MarkerConfig, TagNegation, write_markers_csv, write_overall_statistics,
        write_per_session_statistics,
    };
    let guard = colloquy_testkit::TestDialect::Sqlite
        .fresh_database()
        .await
        .guard();
    let url = guard.url.clone();
    let database = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    database
        .migrate(colloquy_storage::Schema::Events)
        .await
        .unwrap();
    let bodies = interleave(
        ["zoe", "adam", "mia, \"quoted\""]
            .iter()
            .enumerate()
            .map(|(n, sender)| rasa_conversation(sender, 1 + n))
            .collect(),
    );
    let envelopes: Vec<colloquy_events::Envelope> = bodies
        .iter()
        .map(|body| colloquy_events::Envelope::from_json(body).unwrap())
        .collect();
    let rows: Vec<colloquy_storage::EventRow> = envelopes
        .iter()
        .enumerate()
        .map(|(i, envelope)| {
            colloquy_storage::EventRow::new(
                &envelope.sender_id,
                &envelope.event,
                &colloquy_events::EventId::from(format!("m-{i}")),
            )
            .unwrap()
        })
        .collect();
    database.store_batch(&rows, &[]).await.unwrap();
    database.close().await;

    let dir = std::env::temp_dir().join(unique_name("markers-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = "asked:\n  intent: request_restaurant\nacked_after_ask:\n  seq:\n    - intent: request_restaurant\n    - action: utter_ack\ncuisine:\n  slot_was_set: cuisine\n";
    std::fs::write(dir.join("markers.yml"), yaml).unwrap();
    let output = Command::new(BINARY)
        .args(["markers", "evaluate", "--config"])
        .arg(dir.join("markers.yml"))
        .args(["--database-url", &url, "--output-file"])
        .arg(dir.join("out.csv"))
        .arg("--stats-file-prefix")
        .arg(dir.join("stats"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let config = MarkerConfig::from_yaml(yaml, TagNegation::AsRasa3_6).unwrap();
    let mut evaluator = Evaluator::new(&config);
    let mut senders: Vec<&str> = envelopes.iter().map(|e| e.sender_id.as_str()).collect();
    senders.sort_unstable();
    senders.dedup();
    let results: Vec<_> = senders
        .iter()
        .map(|sender| {
            let events: Vec<&colloquy_events::Event> = envelopes
                .iter()
                .filter(|e| e.sender_id == *sender)
                .map(|e| &e.event)
                .collect();
            evaluator.evaluate(sender, events)
        })
        .collect();
    let (mut csv, mut overall, mut per_session) = (Vec::new(), Vec::new(), Vec::new());
    write_markers_csv(&mut csv, &results).unwrap();
    write_overall_statistics(&mut overall, &results).unwrap();
    write_per_session_statistics(&mut per_session, &results).unwrap();
    assert_eq!(std::fs::read(dir.join("out.csv")).unwrap(), csv);
    assert_eq!(
        std::fs::read(dir.join("stats-overall.csv")).unwrap(),
        overall
    );
    assert_eq!(
        std::fs::read(dir.join("stats-per-session.csv")).unwrap(),
        per_session
    );
    let text = String::from_utf8(csv).unwrap();
    assert!(
        text.lines().nth(1).unwrap().starts_with("adam,0,"),
        "byte order: {text}"
    );
    assert!(text.lines().count() > 6, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
    drop(guard);
}
