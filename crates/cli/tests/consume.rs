//! The `colloquy` binary as an operator runs it: flags, environment, endpoints.yml, signals, health and
//! metrics, exit codes — against the real RabbitMQ and PostgreSQL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use colloquy_testkit::{
    PrivatePostgres, TestDatabase, delete_topology, interleave, publish_like_rasa,
    rasa_conversation, unique_name, wait_until,
};
use sqlx::{Connection, PgConnection};

const BINARY: &str = env!("CARGO_BIN_EXE_colloquy");
const TIMEOUT: Duration = Duration::from_secs(60);

/// A queue, an exchange and a fresh database for one test.
struct Setup {
    amqp_url: String,
    exchange: String,
    queue: String,
    database: TestDatabase,
}

impl Setup {
    async fn new() -> Self {
        Self {
            amqp_url: colloquy_testkit::amqp_url().await,
            exchange: unique_name("cli-test-exchange"),
            queue: unique_name("cli-test-queue"),
            database: colloquy_testkit::fresh_database().await,
        }
    }

    /// `colloquy consume` for this setup, with extra arguments.
    fn consume(&self, extra: &[&str]) -> Child {
        self.consume_into(&self.database.url, extra)
    }

    /// `colloquy consume` for this setup's queue, into the database at `database_url`.
    fn consume_into(&self, database_url: &str, extra: &[&str]) -> Child {
        let log = std::fs::File::create(std::env::temp_dir().join(format!("{}.log", self.queue)))
            .expect("log file");
        Command::new(BINARY)
            .args([
                "consume",
                "--amqp-url",
                &self.amqp_url,
                "--exchange",
                &self.exchange,
                "--queue",
                &self.queue,
            ])
            .args(["--database-url", database_url])
            .args(extra)
            .env_remove("DATABASE_URL")
            .env_remove("AMQP_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting colloquy consume")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(std::env::temp_dir().join(format!("{}.log", self.queue)))
            .unwrap_or_default()
    }

    async fn count(&self) -> i64 {
        let Ok(mut connection) = PgConnection::connect(&self.database.url).await else {
            return -1;
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut connection)
            .await
            .unwrap_or(-1)
    }

    /// `(sender_id, data)` of every row, in id order.
    async fn rows(&self) -> Vec<(String, String)> {
        let mut connection = PgConnection::connect(&self.database.url)
            .await
            .expect("connecting");
        sqlx::query_as("SELECT sender_id, data FROM events ORDER BY id")
            .fetch_all(&mut connection)
            .await
            .expect("rows")
    }

    async fn wait_for_count(&self, expected: i64) {
        wait_until(&format!("{expected} rows"), TIMEOUT, || async move {
            self.count().await == expected
        })
        .await;
    }

    async fn wait_for_queue(&self) {
        // The consumer declares and binds its queue at start-up; publishing before that would go nowhere.
        let url = self.amqp_url.clone();
        let queue = self.queue.clone();
        wait_until("the consumer's queue", TIMEOUT, || {
            let (url, queue) = (url.clone(), queue.clone());
            async move { queue_exists(&url, &queue).await }
        })
        .await;
    }

    async fn cleanup(self) {
        delete_topology(&self.amqp_url, &self.exchange, &self.queue).await;
        self.database.drop_database().await;
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{}.log", self.queue)));
    }
}

/// Whether `queue` exists on the broker at `url` (a passive declare: it creates nothing).
async fn queue_exists(url: &str, queue: &str) -> bool {
    use lapin::options::QueueDeclareOptions;
    let Ok(connection) =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await
    else {
        return false;
    };
    let exists = match connection.create_channel().await {
        Ok(channel) => channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .is_ok(),
        Err(_) => false,
    };
    let _ = connection.close(0, "".into()).await;
    exists
}

/// A child process that is killed when dropped, so that a failing test leaves no consumer running.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

async fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    colloquy_testkit::wait_for_exit(child, TIMEOUT).await
}

/// Checks that every conversation's rows are exactly its events, in order.
async fn assert_exactly_once_in_order(setup: &Setup, bodies: &[Vec<u8>]) {
    let rows = setup.rows().await;
    assert_eq!(rows.len(), bodies.len(), "one row per event");
    let mut expected: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for body in bodies {
        let envelope = colloquy_events::Envelope::from_json(body).unwrap();
        expected
            .entry(envelope.sender_id)
            .or_default()
            .push(colloquy_testkit::data_of(body));
    }
    let mut stored: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (sender_id, data) in rows {
        stored.entry(sender_id).or_default().push(data);
    }
    assert_eq!(stored, expected);
}

fn workload() -> Vec<Vec<u8>> {
    interleave(
        (0..100)
            .map(|n| rasa_conversation(&format!("cli-{n}"), 25))
            .collect(),
    )
}

#[test]
fn help_explains_every_flag() {
    let output = Command::new(BINARY)
        .args(["consume", "--help"])
        .output()
        .expect("running --help");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--amqp-url",
        "--queue",
        "--exchange",
        "--database-url",
        "--endpoints",
        "--batch-size",
        "--batch-timeout-ms",
        "--prefetch",
        "--http",
        "AMQP_URL",
        "DATABASE_URL",
        "COLLOQUY_QUEUE",
        "COLLOQUY_EXCHANGE",
        "COLLOQUY_BATCH_SIZE",
        "COLLOQUY_BATCH_TIMEOUT_MS",
        "COLLOQUY_PREFETCH",
        "COLLOQUY_HTTP",
        "--max-inflight-bytes",
        "COLLOQUY_MAX_INFLIGHT_BYTES",
        "--max-body-bytes",
        "COLLOQUY_MAX_BODY_BYTES",
        "--analytics",
        "COLLOQUY_ANALYTICS",
    ] {
        assert!(
            help.contains(flag),
            "`colloquy consume --help` should mention {flag}:\n{help}"
        );
    }
    let top = Command::new(BINARY)
        .arg("--help")
        .output()
        .expect("running --help");
    let top = String::from_utf8(top.stdout).unwrap();
    for command in ["consume", "migrate", "dead-letters", "analytics"] {
        assert!(
            top.contains(command),
            "`colloquy --help` should list {command}"
        );
    }
}

#[test]
fn bad_configuration_exits_2_with_a_clear_message() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["consume", "--database-url", "mongodb://localhost/db"],
            "is not a database URL Colloquy can use",
        ),
        (
            &[
                "consume",
                "--amqp-url",
                "ftp://localhost",
                "--database-url",
                "sqlite::memory:",
            ],
            "--amqp-url",
        ),
        (&["consume", "--batch-size", "0"], "batch-size"),
        (
            &["consume", "--endpoints", "/nonexistent/endpoints.yml"],
            "endpoints file",
        ),
    ];
    for (args, message) in cases {
        let output = Command::new(BINARY)
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("AMQP_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} should exit 2; stderr: {stderr}"
        );
        assert!(
            stderr.contains(message),
            "{args:?} should say {message:?}; stderr: {stderr}"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_loses_nothing() {
    let setup = Setup::new().await;
    let mut consumer = setup.consume(&["--batch-size", "50", "--prefetch", "100"]);
    setup.wait_for_queue().await;
    let bodies = workload();
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;
    wait_until("some rows", TIMEOUT, || async {
        setup.count().await >= 200
    })
    .await;
    signal(&consumer, "TERM");
    let status = wait_for_exit(&mut consumer).await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0; log:\n{}",
        setup.log()
    );
    let stored_at_stop = setup.count().await;
    assert!(
        stored_at_stop < bodies.len() as i64,
        "the stop should land mid-stream"
    );
    // What was not stored stayed in the queue: a new consumer stores the rest, nothing twice.
    let mut consumer = setup.consume(&[]);
    setup.wait_for_count(bodies.len() as i64).await;
    signal(&consumer, "INT");
    assert_eq!(wait_for_exit(&mut consumer).await.code(), Some(0));
    assert_exactly_once_in_order(&setup, &bodies).await;
    setup.cleanup().await;
}

#[tokio::test]
async fn sigkill_mid_batch_then_restart_stores_everything_once() {
    let setup = Setup::new().await;
    let mut consumer = setup.consume(&["--batch-size", "50", "--prefetch", "100"]);
    setup.wait_for_queue().await;
    let bodies = workload();
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;
    wait_until("some rows", TIMEOUT, || async {
        setup.count().await >= 200
    })
    .await;
    consumer.kill().expect("SIGKILL");
    consumer.wait().expect("reaping");
    assert!(
        setup.count().await < bodies.len() as i64,
        "the kill should land mid-stream"
    );
    let mut consumer = setup.consume(&[]);
    setup.wait_for_count(bodies.len() as i64).await;
    signal(&consumer, "TERM");
    assert_eq!(wait_for_exit(&mut consumer).await.code(), Some(0));
    assert_exactly_once_in_order(&setup, &bodies).await;
    setup.cleanup().await;
}

#[tokio::test]
async fn endpoints_yml_configures_broker_and_database() {
    let setup = Setup::new().await;
    let database_name = setup.database.name.clone();
    let endpoints = std::env::temp_dir().join(format!("{}-endpoints.yml", setup.queue));
    std::fs::write(
        &endpoints,
        format!(
            "tracker_store:\n  type: sql\n  dialect: postgresql\n  url: 127.0.0.1\n  port: 5432\n  db: {database_name}\n  username: ${{COLLOQUY_TEST_PG_USER}}\n\
             event_broker:\n  type: pika\n  url: localhost\n  username: guest\n  password: ${{COLLOQUY_TEST_AMQP_PASSWORD}}\n  queues:\n    - {}\n  exchange_name: {}\n",
            setup.queue, setup.exchange
        ),
    )
    .unwrap();
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("{}.log", setup.queue))).unwrap();
    let mut consumer = Command::new(BINARY)
        .args(["consume", "--endpoints"])
        .arg(&endpoints)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env("COLLOQUY_TEST_PG_USER", "postgres")
        .env("COLLOQUY_TEST_AMQP_PASSWORD", "guest")
        .stderr(log)
        .spawn()
        .unwrap();
    setup.wait_for_queue().await;
    let bodies = rasa_conversation("endpoints", 3);
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;
    setup.wait_for_count(bodies.len() as i64).await;
    signal(&consumer, "TERM");
    assert_eq!(
        wait_for_exit(&mut consumer).await.code(),
        Some(0),
        "log:\n{}",
        setup.log()
    );
    let _ = std::fs::remove_file(endpoints);
    setup.cleanup().await;
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).expect("connecting to the HTTP endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[tokio::test]
async fn health_and_metrics_over_http() {
    let setup = Setup::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut consumer = setup.consume(&["--http", &address]);
    setup.wait_for_queue().await;
    wait_until("/health ready", TIMEOUT, || async move {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && http_get(port, "/health").0 == 200
    })
    .await;
    let bodies = rasa_conversation("metrics", 2);
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;
    setup.wait_for_count(bodies.len() as i64).await;
    // The rows are visible at COMMIT; the counters move just after it: wait for them too (bounded).
    let stored = format!("colloquy_events_stored_total {}", bodies.len());
    wait_until("/metrics counts every stored event", TIMEOUT, || {
        let stored = stored.clone();
        async move { http_get(port, "/metrics").1.contains(&stored) }
    })
    .await;
    let (status, metrics) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "colloquy_events_stored_total",
        "colloquy_duplicates_skipped_total",
        "colloquy_dead_letters_total",
        "colloquy_batch_commit_seconds",
        "colloquy_lag_seconds",
    ] {
        assert!(
            metrics.contains(name),
            "/metrics should have {name}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains(&format!("colloquy_events_stored_total {}", bodies.len())),
        "{metrics}"
    );
    signal(&consumer, "TERM");
    assert_eq!(wait_for_exit(&mut consumer).await.code(), Some(0));
    setup.cleanup().await;
}

#[tokio::test]
async fn migrate_then_dead_letters_list_and_requeue() {
    let setup = Setup::new().await;
    let migrate = Command::new(BINARY)
        .args(["migrate", "--database-url", &setup.database.url])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert_eq!(setup.count().await, 0, "migrate creates the events table");

    let mut consumer = setup.consume(&[]);
    setup.wait_for_queue().await;
    let bad = b"{not json".to_vec();
    publish_like_rasa(&setup.amqp_url, &setup.exchange, std::slice::from_ref(&bad)).await;
    let letters = || async {
        let mut connection = PgConnection::connect(&setup.database.url)
            .await
            .expect("connecting");
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    };
    wait_until("one dead letter", TIMEOUT, || async {
        letters().await == 1
    })
    .await;

    let list = Command::new(BINARY)
        .args([
            "dead-letters",
            "list",
            "--json",
            "--database-url",
            &setup.database.url,
        ])
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(list.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["source"], setup.queue.as_str());
    assert_eq!(line["body"]["text"], "{not json");
    assert!(line["error"].as_str().unwrap().contains("JSON"), "{line}");
    let first_id = line["id"].as_i64().unwrap();

    // Requeue it: it comes back through the queue and is dead-lettered again, once.
    let requeue = Command::new(BINARY)
        .args([
            "dead-letters",
            "requeue",
            "--database-url",
            &setup.database.url,
            "--amqp-url",
            &setup.amqp_url,
        ])
        .args(["--exchange", &setup.exchange, "--queue", &setup.queue])
        .output()
        .unwrap();
    assert!(
        requeue.status.success(),
        "{}",
        String::from_utf8_lossy(&requeue.stderr)
    );
    assert!(String::from_utf8_lossy(&requeue.stdout).contains("requeued 1"));
    let newer = || async {
        let mut connection = PgConnection::connect(&setup.database.url)
            .await
            .expect("connecting");
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM dead_letters WHERE id > $1")
            .bind(first_id)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    };
    wait_until(
        "the requeued message dead-lettered again",
        TIMEOUT,
        || async { newer().await == 1 },
    )
    .await;
    assert_eq!(letters().await, 1, "the requeued dead letter was deleted");
    let mut connection = PgConnection::connect(&setup.database.url).await.unwrap();
    let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM dead_letters")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(body, bad);
    signal(&consumer, "TERM");
    assert_eq!(wait_for_exit(&mut consumer).await.code(), Some(0));
    setup.cleanup().await;
}

#[test]
fn values_that_cannot_be_meant_exit_2_from_flags_and_environment() {
    /// Flags, environment, and the flag the message must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 4] = [
        (&["--max-body-bytes", "0"], &[], "--max-body-bytes"),
        (&[], &[("COLLOQUY_MAX_BODY_BYTES", "0")], "--max-body-bytes"),
        (
            &[],
            &[("COLLOQUY_MAX_INFLIGHT_BYTES", "0")],
            "--max-inflight-bytes",
        ),
        (
            &["--shutdown-grace-secs", "0"],
            &[],
            "--shutdown-grace-secs",
        ),
    ];
    for (args, env, flag) in cases {
        let output = Command::new(BINARY)
            .arg("consume")
            .args(args)
            .envs(env.iter().copied())
            .env_remove("DATABASE_URL")
            .env_remove("AMQP_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("at least 1"),
            "{args:?} {env:?} should name {flag} and what it must be: {stderr}"
        );
    }
}

#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("cli-plain-logs")));
    let output = Command::new(BINARY)
        .args(["migrate", "--database-url"])
        .arg(format!("sqlite://{}", path.display()))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("COLLOQUY_LOG_FORMAT")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Schema is up to date"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes in a pipe: {stderr:?}"
    );
}

#[tokio::test]
async fn a_database_that_cannot_be_used_exits_2_saying_why() {
    let setup = Setup::new().await;
    let server = colloquy_testkit::database_url().await;
    let (base, _) = server
        .rsplit_once('/')
        .expect("a database URL with a database");
    let scheme_end = base.find("://").unwrap() + 3;
    let host = &base[scheme_end..];
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let missing_database = format!("{base}/{}", unique_name("missing").replace('-', "_"));
    let missing_role = format!(
        "postgres://{}@{host}/test",
        unique_name("nobody").replace('-', "_")
    );
    for (url, says) in [
        (missing_database, "does not exist"),
        (missing_role, "does not exist"),
    ] {
        let mut consumer = KillOnDrop(setup.consume_into(&url, &[]));
        let status = wait_for_exit(&mut consumer.0).await;
        let log = setup.log();
        assert_eq!(status.code(), Some(2), "{url}: {log}");
        assert!(
            log.contains(says) && !log.contains("did not answer"),
            "{url}: the message says what the database said: {log}"
        );
    }
    setup.cleanup().await;
}

#[tokio::test]
async fn a_database_down_at_start_is_waited_for_with_health_saying_so() {
    let setup = Setup::new().await;
    let cluster = PrivatePostgres::init();
    let url = cluster.url("postgres");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut consumer = KillOnDrop(setup.consume_into(&url, &["--http", &address]));
    setup.wait_for_queue().await;
    let bodies = rasa_conversation("down-at-start", 5);
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;

    // Down for 20 s (two connection timeouts): the consumer waits, and /health says why.
    let down_until = std::time::Instant::now() + Duration::from_secs(20);
    let mut saw_unhealthy = false;
    wait_until("20 s of the database down", TIMEOUT, || {
        assert!(
            consumer.0.try_wait().unwrap().is_none(),
            "the consumer exited while the database was down at start: {}",
            setup.log()
        );
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (status, response) = http_get(port, "/health");
            saw_unhealthy |= status == 503 && response.contains("database_error");
        }
        let done = saw_unhealthy && std::time::Instant::now() >= down_until;
        async move { done }
    })
    .await;

    cluster.start();
    let count = || async {
        let Ok(mut connection) = PgConnection::connect(&url).await else {
            return -1;
        };
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(&mut connection)
            .await
            .unwrap_or(-1)
    };
    wait_until("every event stored", TIMEOUT, || async {
        count().await == bodies.len() as i64
    })
    .await;
    wait_until("/health 200", TIMEOUT, || async move {
        http_get(port, "/health").0 == 200
    })
    .await;
    signal(&consumer.0, "TERM");
    assert_eq!(
        wait_for_exit(&mut consumer.0).await.code(),
        Some(0),
        "{}",
        setup.log()
    );
    drop(cluster);
    setup.cleanup().await;
}

/// `colloquy consume` for this setup with its own log file `<queue>.<name>.log` and `/health` on a free port.
fn consume_instance(setup: &Setup, name: &str) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("{}.{name}.log", setup.queue)))
            .expect("log file");
    let child = Command::new(BINARY)
        .args(["consume", "--amqp-url", &setup.amqp_url])
        .args(["--exchange", &setup.exchange, "--queue", &setup.queue])
        .args(["--database-url", &setup.database.url])
        .args(["--batch-size", "50", "--prefetch", "100"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting colloquy consume");
    (child, port)
}

/// The role `/health` reports (`active`, `standby`), or `""` while it does not answer.
fn role(port: u16) -> String {
    if TcpStream::connect(("127.0.0.1", port)).is_err() {
        return String::new();
    }
    let (_, body) = http_get(port, "/health");
    body.split("\"role\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// Two consumers on one queue: waits until one is active and the other a standby; returns (active, standby).
async fn one_active_one_standby(
    first: (Child, u16),
    second: (Child, u16),
) -> ((Child, u16), (Child, u16)) {
    let (a, b) = (first.1, second.1);
    wait_until(
        "one active consumer and one standby",
        TIMEOUT,
        || async move {
            let roles = [role(a), role(b)];
            roles.contains(&"active".to_owned()) && roles.contains(&"standby".to_owned())
        },
    )
    .await;
    if role(a) == "active" {
        (first, second)
    } else {
        (second, first)
    }
}

#[tokio::test]
async fn a_second_consumer_is_a_standby_that_takes_over_after_sigkill() {
    let setup = Setup::new().await;
    let first = consume_instance(&setup, "first");
    setup.wait_for_queue().await;
    let second = consume_instance(&setup, "second");
    let ((mut active, _), (mut standby, standby_port)) =
        one_active_one_standby(first, second).await;
    let (_, health) = http_get(standby_port, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"standby\""), "{health}");
    let (_, metrics) = http_get(standby_port, "/metrics");
    assert!(metrics.contains("colloquy_consumer_active 0"), "{metrics}");

    let bodies = workload();
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;
    wait_until("some rows", TIMEOUT, || async {
        setup.count().await >= 200
    })
    .await;
    active.kill().expect("SIGKILL");
    active.wait().expect("reaping");
    let killed_at = std::time::Instant::now();
    assert!(
        setup.count().await < bodies.len() as i64,
        "the kill should land mid-stream"
    );
    wait_until(
        "the standby to take over",
        Duration::from_secs(10),
        || async move { role(standby_port) == "active" },
    )
    .await;
    eprintln!("took over after {:?}", killed_at.elapsed());
    setup.wait_for_count(bodies.len() as i64).await;
    let (_, metrics) = http_get(standby_port, "/metrics");
    assert!(metrics.contains("colloquy_consumer_active 1"), "{metrics}");
    signal(&standby, "TERM");
    assert_eq!(wait_for_exit(&mut standby).await.code(), Some(0));
    assert_exactly_once_in_order(&setup, &bodies).await;
    for name in ["first", "second"] {
        let _ =
            std::fs::remove_file(std::env::temp_dir().join(format!("{}.{name}.log", setup.queue)));
    }
    setup.cleanup().await;
}

/// Two `colloquy consume` on a new queue, one active and one standby, with the workload published and the first
/// rows stored: a stream for a fault to hit. Returns the setup, `(child, port)` of the active one and of the
/// standby, and the bodies published.
async fn mid_stream_with_a_standby() -> (Setup, (Child, u16), (Child, u16), Vec<Vec<u8>>) {
    let setup = Setup::new().await;
    let first = consume_instance(&setup, "first");
    setup.wait_for_queue().await;
    let second = consume_instance(&setup, "second");
    let (active, standby) = one_active_one_standby(first, second).await;
    let bodies = workload();
    publish_like_rasa(&setup.amqp_url, &setup.exchange, &bodies).await;
    wait_until("some rows", TIMEOUT, || async {
        setup.count().await >= 200
    })
    .await;
    (setup, active, standby, bodies)
}

/// After a fault: within 10 s exactly one of `consumers` is active and the other a standby; then every event of
/// `bodies` is stored once, in order, both exit 0 on SIGTERM, and the test's queue, exchange and logs go.
async fn one_active_again_and_every_event_once(
    setup: Setup,
    consumers: [(Child, u16); 2],
    bodies: &[Vec<u8>],
) {
    let ports = [consumers[0].1, consumers[1].1];
    wait_until(
        "one active consumer again",
        Duration::from_secs(10),
        || async move {
            let roles = ports.map(role);
            roles.iter().filter(|role| *role == "active").count() == 1
                && roles.iter().filter(|role| *role == "standby").count() == 1
        },
    )
    .await;
    setup.wait_for_count(bodies.len() as i64).await;
    for (mut child, _) in consumers {
        signal(&child, "TERM");
        assert_eq!(wait_for_exit(&mut child).await.code(), Some(0));
    }
    assert_exactly_once_in_order(&setup, bodies).await;
    for name in ["first", "second"] {
        let _ =
            std::fs::remove_file(std::env::temp_dir().join(format!("{}.{name}.log", setup.queue)));
    }
    setup.cleanup().await;
}

#[tokio::test]
async fn killing_the_active_consumers_database_sessions_keeps_one_consumer_and_the_order() {
    let (setup, (active, active_port), (standby, standby_port), bodies) =
        mid_stream_with_a_standby().await;
    // What a DBA's pg_terminate_backend or a PostgreSQL failover does to the consumers: every session on the
    // test's database is killed mid-stream (the batch in flight rolls back; its deliveries stay unacked).
    let mut admin = PgConnection::connect(&colloquy_testkit::database_url().await)
        .await
        .expect("connecting as admin");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&setup.database.name)
    .fetch_all(&mut admin)
    .await
    .expect("terminating the sessions");
    assert!(
        !killed.is_empty(),
        "the active consumer had sessions to kill"
    );
    one_active_again_and_every_event_once(
        setup,
        [(active, active_port), (standby, standby_port)],
        &bodies,
    )
    .await;
}

#[tokio::test]
async fn cutting_the_active_consumers_connection_keeps_one_consumer_and_the_order() {
    let (setup, (active, active_port), (standby, standby_port), bodies) =
        mid_stream_with_a_standby().await;
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl");
    let name = format!("colloquy-consume-{}", active.id());
    let listing = String::from_utf8_lossy(&output.stdout);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(&name))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        pids.len(),
        1,
        "the active consumer's connection:\n{listing}"
    );
    colloquy_testkit::rabbitmqctl(&["close_connection", pids[0], "colloquy test: cut"]);
    // One of them consumes again within 10 s (the cut one reconnecting, or the standby taking over).
    one_active_again_and_every_event_once(
        setup,
        [(active, active_port), (standby, standby_port)],
        &bodies,
    )
    .await;
}
