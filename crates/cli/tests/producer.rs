//! The producer side of the `colloquy` binary — `import`, `export`, `demo` — against the real RabbitMQ and
//! PostgreSQL: what reaches the broker and the database, the properties and headers, the error messages and
//! exit codes, and resuming an export after RabbitMQ failed in the middle.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use colloquy_broker::{AmqpConfig, AmqpSubscription, Subscription};
use colloquy_events::{Envelope, Tracker};
use colloquy_testkit::{
    TestDatabase, data_of, delete_topology, interleave, rabbitmqctl, rasa_conversation,
    unique_name, wait_until,
};
use colloquy_tracker_store::{SqlConfig, SqlStore, TrackerStore};
use sqlx::{Connection, PgConnection};

const BINARY: &str = env!("CARGO_BIN_EXE_colloquy");
const TIMEOUT: Duration = Duration::from_secs(60);
const SAMPLE: &str = include_str!("../data/sample_conversations.jsonl");

/// A queue and an exchange of one test, and a scratch directory.
struct Topology {
    amqp_url: String,
    /// The broker's own URL (guest): cleans up even when a test connects as a user it took rights from.
    admin_url: String,
    exchange: String,
    queue: String,
}

impl Topology {
    async fn new() -> Self {
        let amqp_url = colloquy_testkit::amqp_url().await;
        Self {
            admin_url: amqp_url.clone(),
            amqp_url,
            exchange: unique_name("cli-producer-exchange"),
            queue: unique_name("cli-producer-queue"),
        }
    }

    fn broker_args(&self) -> Vec<String> {
        vec![
            "--amqp-url".into(),
            self.amqp_url.clone(),
            "--exchange".into(),
            self.exchange.clone(),
            "--queue".into(),
            self.queue.clone(),
        ]
    }

    /// A subscription to this test's queue (declares and binds it).
    async fn subscribe(&self) -> AmqpSubscription {
        let config = AmqpConfig::from_url(&self.amqp_url)
            .unwrap()
            .with_exchange(&self.exchange)
            .unwrap()
            .with_queues([self.queue.as_str()])
            .unwrap();
        AmqpSubscription::connect(config)
            .await
            .expect("subscribing")
    }

    async fn cleanup(&self) {
        delete_topology(&self.admin_url, &self.exchange, &self.queue).await;
    }
}

/// One message as read back: body and headers.
#[derive(Debug, Clone)]
struct Received {
    body: Vec<u8>,
    message_id: Option<String>,
    headers: BTreeMap<String, serde_json::Value>,
}

/// Reads `count` messages (acking them), failing after the timeout.
async fn receive(subscription: &mut AmqpSubscription, count: usize) -> Vec<Received> {
    let mut received = Vec::with_capacity(count);
    let deadline = Instant::now() + TIMEOUT;
    while received.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let delivery = tokio::time::timeout(left, subscription.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", received.len()))
            .expect("delivery")
            .expect("subscription open");
        delivery.acker.ack().await.expect("ack");
        received.push(Received {
            body: delivery.body,
            message_id: delivery.properties.message_id.clone(),
            headers: delivery.properties.headers.clone(),
        });
    }
    received
}

/// Reads messages until none arrives for a second.
async fn drain(subscription: &mut AmqpSubscription) -> Vec<Received> {
    let mut received = Vec::new();
    while let Ok(delivery) = tokio::time::timeout(Duration::from_secs(1), subscription.next()).await
    {
        let delivery = delivery.expect("delivery").expect("subscription open");
        delivery.acker.ack().await.expect("ack");
        received.push(Received {
            body: delivery.body,
            message_id: delivery.properties.message_id.clone(),
            headers: delivery.properties.headers.clone(),
        });
    }
    received
}

fn colloquy(args: &[String], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .env_remove("AMQP_URL")
        .env_remove("DATABASE_URL")
        .env_remove("COLLOQUY_TRACKER_STORE")
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running colloquy");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input)
            .expect("writing stdin");
    }
    child.wait_with_output().expect("waiting for colloquy")
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "colloquy failed with {}:\n{}",
        output.status,
        stderr(output)
    );
}

fn assert_fails(output: &Output, code: i32, needles: &[&str]) {
    let text = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr:\n{text}"
    );
    for needle in needles {
        assert!(
            text.contains(needle),
            "stderr should contain {needle:?}:\n{text}"
        );
    }
}

fn write_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, bytes).expect("writing a test file");
    path
}

/// The workload: the bundled sample plus generated conversations, interleaved as a queue sees them.
fn bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = SAMPLE
        .lines()
        .map(|line| line.as_bytes().to_vec())
        .collect();
    bodies.extend(interleave(
        (0..30)
            .map(|n| rasa_conversation(&format!("producer-{n}"), 8))
            .collect(),
    ));
    bodies
}

/// Each conversation's `data` column values, in order, as Rasa would store the bodies.
fn by_conversation(bodies: &[Vec<u8>]) -> BTreeMap<String, Vec<String>> {
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for body in bodies {
        let envelope = Envelope::from_json(body).unwrap();
        expected
            .entry(envelope.sender_id)
            .or_default()
            .push(data_of(body));
    }
    expected
}

/// Rasa tracker dumps (`sender_id`, `slots`, `events` without `sender_id`) of the bodies.
fn tracker_dumps(bodies: &[Vec<u8>]) -> Vec<serde_json::Value> {
    let mut dumps: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for body in bodies {
        let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
        let sender_id = value
            .as_object_mut()
            .unwrap()
            .shift_remove("sender_id")
            .unwrap();
        dumps
            .entry(sender_id.as_str().unwrap().to_owned())
            .or_default()
            .push(value);
    }
    dumps
        .into_iter()
        .map(|(sender_id, events)| {
            serde_json::json!({ "sender_id": sender_id, "slots": {}, "latest_message": {}, "events": events })
        })
        .collect()
}

/// Runs `colloquy consume` for `topology` into `database` until `expected` rows are stored, then stops it
/// and returns the rows by conversation.
async fn consume_into(
    topology: &Topology,
    database: &TestDatabase,
    expected: usize,
) -> BTreeMap<String, Vec<String>> {
    let mut consumer = Command::new(BINARY)
        .arg("consume")
        .args(topology.broker_args())
        .args(["--database-url", &database.url])
        .env_remove("AMQP_URL")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting colloquy consume");
    let url = database.url.clone();
    wait_until(&format!("{expected} rows"), TIMEOUT, || {
        let url = url.clone();
        async move { count_rows(&url).await == expected as i64 }
    })
    .await;
    stop(&mut consumer).await;
    let mut connection = PgConnection::connect(&database.url).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT sender_id, data FROM events ORDER BY id")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (sender_id, data) in rows {
        stored.entry(sender_id).or_default().push(data);
    }
    stored
}

async fn count_rows(url: &str) -> i64 {
    let Ok(mut connection) = PgConnection::connect(url).await else {
        return -1;
    };
    sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&mut connection)
        .await
        .unwrap_or(-1)
}

async fn stop(child: &mut Child) {
    signal(child, "TERM");
    wait_for_exit(child).await;
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

// ---------------------------------------------------------------------------------------------------------
// import

#[tokio::test]
async fn import_body_lines_through_rabbitmq_into_the_database() {
    let topology = Topology::new().await;
    let database = colloquy_testkit::fresh_database().await;
    let bodies = bodies();
    let mut file = bodies.join(&b'\n');
    file.push(b'\n');
    let path = write_file(&format!("{}.jsonl", topology.queue), &file);

    let mut command = args(&["import", "--file", path.to_str().unwrap()]);
    command.extend(topology.broker_args());
    let output = colloquy(&command, None);
    assert_success(&output);

    let stored = consume_into(&topology, &database, bodies.len()).await;
    assert_eq!(stored, by_conversation(&bodies));
    topology.cleanup().await;
    database.drop_database().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn import_tracker_dumps_pretty_list_and_lines_from_stdin() {
    let bodies = bodies();
    let dumps = tracker_dumps(&bodies);
    let pretty = serde_json::to_vec_pretty(&dumps).unwrap();
    let lines: Vec<u8> = dumps
        .iter()
        .flat_map(|dump| {
            let mut line = serde_json::to_vec(dump).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    for (name, input) in [("pretty list", pretty), ("one dump per line", lines)] {
        let topology = Topology::new().await;
        let database = colloquy_testkit::fresh_database().await;
        let mut command = args(&["import", "--file", "-"]);
        command.extend(topology.broker_args());
        let output = colloquy(&command, Some(&input));
        assert_success(&output);
        let stored = consume_into(&topology, &database, bodies.len()).await;
        assert_eq!(stored, by_conversation(&bodies), "{name}");
        topology.cleanup().await;
        database.drop_database().await;
    }
}

#[tokio::test]
async fn import_into_a_postgres_tracker_store_streams_through_its_outbox() {
    let topology = Topology::new().await;
    let store = colloquy_testkit::fresh_database().await;
    let database = colloquy_testkit::fresh_database().await;
    let bodies = bodies();
    let path = write_file(&format!("{}.jsonl", topology.queue), &bodies.join(&b'\n'));

    let mut command = args(&[
        "import",
        "--file",
        path.to_str().unwrap(),
        "--tracker-store",
        &store.url,
    ]);
    command.extend(topology.broker_args());
    let output = colloquy(&command, None);
    assert_success(&output);
    // The store holds the conversations (and its outbox is empty: every event was confirmed).
    let mut connection = PgConnection::connect(&store.url).await.unwrap();
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    assert_eq!(count_rows(&store.url).await, bodies.len() as i64);
    // And the consumer's database equals the input.
    let stored = consume_into(&topology, &database, bodies.len()).await;
    assert_eq!(stored, by_conversation(&bodies));
    topology.cleanup().await;
    store.drop_database().await;
    database.drop_database().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn import_into_postgres_survives_its_connections_being_killed() {
    let topology = Topology::new().await;
    let store = colloquy_testkit::fresh_database().await;
    let bodies = interleave(
        (0..200)
            .map(|n| rasa_conversation(&format!("killed-{n:03}"), 10))
            .collect(),
    );
    let path = write_file(&format!("{}.jsonl", topology.queue), &bodies.join(&b'\n'));
    let mut subscription = topology.subscribe().await;
    let mut command = args(&[
        "import",
        "--file",
        path.to_str().unwrap(),
        "--tracker-store",
        &store.url,
        "--progress",
        "none",
    ]);
    command.extend(topology.broker_args());
    let mut import = Command::new(BINARY)
        .args(&command)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once events flow, freeze the import and terminate every connection to its database (what a
    // PostgreSQL restart does to it), then let it go on.
    let first = receive(&mut subscription, 1).await;
    signal(&import, "STOP");
    let mut admin = PgConnection::connect(&colloquy_testkit::database_url().await)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(&store.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the import had connections to kill");
    signal(&import, "CONT");
    let status = wait_for_exit(&mut import).await;
    let mut text = String::new();
    std::io::Read::read_to_string(import.stderr.as_mut().unwrap(), &mut text).unwrap();
    assert!(status.success(), "{text}");
    eprintln!("{text}");
    // Every event once in the store, and every event in the queue.
    assert_eq!(count_rows(&store.url).await, bodies.len() as i64);
    let mut received = first;
    received.extend(receive(&mut subscription, bodies.len() - 1).await);
    received.extend(drain(&mut subscription).await);
    let ids: BTreeSet<String> = received
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    assert_eq!(
        ids.len(),
        bodies.len(),
        "every event published (duplicates share ids)"
    );
    // A live subscription would declare the queue again once it is deleted.
    drop(subscription);
    topology.cleanup().await;
    store.drop_database().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn import_messages_carry_stable_ids_and_positions() {
    let topology = Topology::new().await;
    let mut subscription = topology.subscribe().await;
    let mut command = args(&["import", "--file", "-"]);
    command.extend(topology.broker_args());
    let input: Vec<u8> = SAMPLE.as_bytes().to_vec();
    assert_success(&colloquy(&command, Some(&input)));
    // The same file again: the same ids (a consumer drops the duplicates).
    assert_success(&colloquy(&command, Some(&input)));
    let lines = SAMPLE.lines().count();
    let received = receive(&mut subscription, 2 * lines).await;
    let (first, second) = received.split_at(lines);
    let ids = |messages: &[Received]| -> Vec<Option<String>> {
        messages.iter().map(|m| m.message_id.clone()).collect()
    };
    assert_eq!(ids(first), ids(second));
    let distinct: BTreeSet<_> = ids(first).into_iter().collect();
    assert_eq!(distinct.len(), lines, "one id per event");
    for message in first {
        assert_eq!(
            message
                .headers
                .get("colloquy-event-id")
                .and_then(|v| v.as_str()),
            message.message_id.as_deref()
        );
        assert!(message.headers.contains_key("colloquy-seq"));
    }
    // Bodies are Rasa's bytes, conversation order kept.
    let sample: Vec<Vec<u8>> = SAMPLE
        .lines()
        .map(|line| line.as_bytes().to_vec())
        .collect();
    let bodies: Vec<Vec<u8>> = first.iter().map(|m| m.body.clone()).collect();
    assert_eq!(by_conversation(&bodies), by_conversation(&sample));
    assert_eq!(by_conversation(&bodies).len(), 19);
    // A live subscription would declare the queue again once it is deleted.
    drop(subscription);
    topology.cleanup().await;
}

#[tokio::test]
async fn import_errors_say_what_and_where() {
    let topology = Topology::new().await;
    let good = r#"{"sender_id": "a", "event": "pause", "timestamp": 1.0}"#;
    let cases: &[(&str, String, &[&str])] = &[
        (
            "missing sender_id",
            format!("{good}\n{good}\n{{\"event\": \"pause\"}}\n"),
            &["line 3: missing key `sender_id` in $", "Fix the line"],
        ),
        (
            "invalid JSON",
            format!("{good}\n{{\"sender_id\": \"a\", \"event\": \n"),
            &["line 2: invalid JSON at column"],
        ),
        (
            "wrong type",
            format!("{good}\n\n\n{{\"sender_id\": \"a\", \"event\": \"slot\", \"name\": 3}}\n"),
            &["line 4: $.name must be a string, found a number"],
        ),
        (
            "bad event in a dump",
            "{\n \"sender_id\": \"a\",\n \"events\": [\n  {\"event\": \"pause\"},\n  {\"event\": \"action\"}\n ]\n}\n"
                .to_owned(),
            &["line 5: $: an `action` event needs `name` or `action_text`"],
        ),
    ];
    let mut subscription = topology.subscribe().await;
    for (name, input, needles) in cases {
        let mut command = args(&["import", "--file", "-"]);
        command.extend(topology.broker_args());
        let output = colloquy(&command, Some(input.as_bytes()));
        assert_fails(&output, 1, needles);
        eprintln!("ok: {name}");
    }
    // The events before each bad record were published and confirmed: 2 + 1 + 1 + 1.
    assert_eq!(drain(&mut subscription).await.len(), 5);

    // Configuration and broker errors.
    let missing = colloquy(
        &args(&["import", "--file", "/nonexistent/events.jsonl"]),
        None,
    );
    assert_fails(&missing, 2, &["cannot read /nonexistent/events.jsonl"]);
    let store = colloquy(
        &args(&["import", "--file", "-", "--tracker-store", "mongodb://x"]),
        Some(b""),
    );
    assert_fails(
        &store,
        2,
        &["--tracker-store must be `memory`, a database URL"],
    );
    let refused = colloquy(
        &args(&[
            "import",
            "--file",
            "-",
            "--amqp-url",
            "amqp://guest:wrong-password@127.0.0.1:5672/%2f",
        ]),
        Some(good.as_bytes()),
    );
    assert_fails(
        &refused,
        2,
        &["refused the connection", "check the user name and password"],
    );
    let nobody = colloquy(
        &args(&[
            "import",
            "--file",
            "-",
            "--amqp-url",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            "--connection-attempts",
            "1",
        ]),
        Some(good.as_bytes()),
    );
    assert_fails(&nobody, 1, &["is RabbitMQ running at"]);

    // An exchange that exists with other flags (durable, unlike Rasa's).
    let durable = unique_name("cli-durable-exchange");
    declare_durable_exchange(&topology.amqp_url, &durable).await;
    let mut command = args(&["import", "--file", "-", "--amqp-url", &topology.amqp_url]);
    command.extend(args(&["--exchange", &durable, "--queue", &topology.queue]));
    let output = colloquy(&command, Some(good.as_bytes()));
    assert_fails(
        &output,
        2,
        &[
            "probably exists with other properties",
            "non-durable fanout exchange",
        ],
    );
    delete_topology(&topology.amqp_url, &durable, &topology.queue).await;
    // A live subscription would declare the queue again once it is deleted.
    drop(subscription);
    topology.cleanup().await;
}

async fn declare_durable_exchange(url: &str, name: &str) {
    use lapin::options::ExchangeDeclareOptions;
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
}

#[test]
fn help_documents_the_producer_commands_and_exit_codes() {
    for (command, needles) in [
        (
            "import",
            &[
                "--file",
                "--tracker-store",
                "--amqp-url",
                "--queue",
                "--exchange",
                "Exit codes",
                "tracker dumps",
            ][..],
        ),
        (
            "export",
            &[
                "--conversation-ids",
                "--minimum-timestamp",
                "--maximum-timestamp",
                "--resume-from",
                "rasa-export-process-id",
                "Exit codes",
            ][..],
        ),
        ("demo", &["--amqp-url", "--database"][..]),
    ] {
        let output = Command::new(BINARY)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        for needle in needles {
            assert!(
                help.contains(needle),
                "`{command} --help` should mention {needle}:\n{help}"
            );
        }
    }
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("Exit codes")
    );
}

/// A RabbitMQ user of one test, whose permissions a test can take away: the broker failure of the import and
/// export tests, deterministic and invisible to other tests.
struct TestUser {
    name: String,
}

impl TestUser {
    fn new() -> Self {
        let name = unique_name("cli-producer-user");
        rabbitmqctl(&["add_user", &name, "secret"]);
        let user = Self { name };
        user.grant();
        user
    }

    fn grant(&self) {
        rabbitmqctl(&["set_permissions", "-p", "/", &self.name, ".*", ".*", ".*"]);
    }

    /// Takes the permissions away and closes the user's connections: reconnecting is refused.
    fn refuse(&self) {
        rabbitmqctl(&["clear_permissions", "-p", "/", &self.name]);
        close_connections_of(&self.name);
    }

    /// `admin_url` with this user's credentials.
    fn url(&self, admin_url: &str) -> String {
        let url = admin_url.replacen("guest:guest", &format!("{}:secret", self.name), 1);
        assert_ne!(url, admin_url, "the test expects guest:guest in AMQP_URL");
        url
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

#[tokio::test]
async fn import_names_the_events_rabbitmq_did_not_confirm() {
    let user = TestUser::new();
    let mut topology = Topology::new().await;
    topology.amqp_url = user.url(&topology.amqp_url);
    let bodies = interleave(
        (0..300)
            .map(|n| rasa_conversation(&format!("unconfirmed-{n:03}"), 20))
            .collect(),
    );
    let path = write_file(&format!("{}.jsonl", topology.queue), &bodies.join(&b'\n'));
    let mut subscription = topology.subscribe().await;
    let mut command = args(&[
        "import",
        "--file",
        path.to_str().unwrap(),
        "--connection-attempts",
        "2",
        "--progress",
        "none",
    ]);
    command.extend(topology.broker_args());
    let mut import = Command::new(BINARY)
        .args(&command)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As soon as the first message arrives, freeze the import, refuse its user and cut its connection.
    receive(&mut subscription, 1).await;
    signal(&import, "STOP");
    user.refuse();
    signal(&import, "CONT");
    let status = wait_for_exit(&mut import).await;
    let mut text = String::new();
    std::io::Read::read_to_string(import.stderr.as_mut().unwrap(), &mut text).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    for needle in [
        "RabbitMQ did not confirm",
        "event(s) (input lines ",
        "refused the connection",
        "run the same import again",
    ] {
        assert!(
            text.contains(needle),
            "stderr should contain {needle:?}:\n{text}"
        );
    }
    // A live subscription would declare the queue again once it is deleted.
    drop(subscription);
    topology.cleanup().await;
    let _ = std::fs::remove_file(path);
}

// ---------------------------------------------------------------------------------------------------------
// export

/// A PostgreSQL tracker store holding `conversations` (saved through our store, without a broker).
async fn tracker_store_with(conversations: &[Vec<Vec<u8>>]) -> TestDatabase {
    let database = colloquy_testkit::fresh_database().await;
    let config = SqlConfig::from_url(&database.url).unwrap();
    let store = SqlStore::connect(&config, None).await.unwrap();
    for bodies in conversations {
        let first = Envelope::from_json(&bodies[0]).unwrap();
        let mut tracker = Tracker::new(first.sender_id);
        for body in bodies {
            tracker.apply(Envelope::from_json(body).unwrap().event);
        }
        store.save(&mut tracker).await.unwrap();
    }
    store.close().await.unwrap();
    database
}

fn export_args(topology: &Topology, store: &TestDatabase, extra: &[&str]) -> Vec<String> {
    let mut command = args(&["export", "--tracker-store", &store.url]);
    command.extend(topology.broker_args());
    command.extend(args(extra));
    command
}

/// The export header of every message, which must be present and the same for all.
fn export_process_ids(messages: &[Received]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|message| {
            message
                .headers
                .get("rasa-export-process-id")
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| {
                    panic!("no rasa-export-process-id header: {:?}", message.headers)
                })
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn export_filters_and_headers() {
    let conversations: Vec<Vec<Vec<u8>>> = ["export-a", "export-b", "export-c"]
        .iter()
        .map(|id| rasa_conversation(id, 4))
        .collect();
    let store = tracker_store_with(&conversations).await;
    // A row Rasa itself wrote (no event_id, no seq) is exported too, with the id our store would give it.
    let mut connection = PgConnection::connect(&store.url).await.unwrap();
    sqlx::query(
        r#"INSERT INTO events (sender_id, type_name, "timestamp", data)
           VALUES ('export-c', 'pause', 1700000100.0, '{"event": "pause", "timestamp": 1700000100.0}')"#,
    )
    .execute(&mut connection)
    .await
    .unwrap();
    let per_conversation = conversations[0].len();

    // All of it.
    let topology = Topology::new().await;
    let mut subscription = topology.subscribe().await;
    assert_success(&colloquy(&export_args(&topology, &store, &[]), None));
    let all = receive(&mut subscription, 3 * per_conversation + 1).await;
    assert_eq!(export_process_ids(&all).len(), 1, "one id per run");
    let hex = export_process_ids(&all).into_iter().next().unwrap();
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hex}"
    );
    let mut expected: Vec<Vec<u8>> = conversations.concat();
    expected.push(
        br#"{"sender_id": "export-c", "event": "pause", "timestamp": 1700000100.0}"#.to_vec(),
    );
    let bodies: Vec<Vec<u8>> = all.iter().map(|m| m.body.clone()).collect();
    assert_eq!(by_conversation(&bodies), by_conversation(&expected));
    for message in &all {
        assert!(message.headers.contains_key("colloquy-event-id"));
        assert!(message.headers.contains_key("colloquy-seq"));
        assert_eq!(
            message.headers["colloquy-event-id"].as_str(),
            message.message_id.as_deref()
        );
    }
    // The stored ids are the ones the store gave the events.
    let stored_ids: BTreeSet<String> =
        sqlx::query_scalar("SELECT event_id FROM events WHERE event_id IS NOT NULL")
            .fetch_all(&mut connection)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let exported_ids: BTreeSet<String> = all.iter().filter_map(|m| m.message_id.clone()).collect();
    assert!(stored_ids.is_subset(&exported_ids));
    assert_eq!(exported_ids.len(), all.len());
    assert_eq!(drain(&mut subscription).await.len(), 0);

    // --conversation-ids.
    assert_success(&colloquy(
        &export_args(
            &topology,
            &store,
            &["--conversation-ids", "export-a,export-c,nobody"],
        ),
        None,
    ));
    let some = receive(&mut subscription, 2 * per_conversation + 1).await;
    let senders: BTreeSet<String> = some
        .iter()
        .map(|m| Envelope::from_json(&m.body).unwrap().sender_id)
        .collect();
    assert_eq!(
        senders,
        BTreeSet::from(["export-a".to_owned(), "export-c".to_owned()])
    );

    // Timestamps: minimum inclusive, maximum exclusive (turn 0 at …1.25 and turn 1 at …2.25, five events each).
    assert_success(&colloquy(
        &export_args(
            &topology,
            &store,
            &[
                "--conversation-ids",
                "export-b",
                "--minimum-timestamp",
                "1700000001.25",
                "--maximum-timestamp",
                "1700000003.25",
            ],
        ),
        None,
    ));
    let window = receive(&mut subscription, 10).await;
    for message in &window {
        let event = Envelope::from_json(&message.body).unwrap().event;
        let t = event.timestamp().unwrap();
        assert!((1700000001.25..1700000003.25).contains(&t), "{t}");
    }
    assert_eq!(drain(&mut subscription).await.len(), 0, "nothing else");

    // Errors.
    assert_fails(
        &colloquy(
            &export_args(
                &topology,
                &store,
                &["--minimum-timestamp", "5", "--maximum-timestamp", "5"],
            ),
            None,
        ),
        2,
        &["must be smaller than --maximum-timestamp"],
    );
    assert_fails(
        &colloquy(
            &export_args(&topology, &store, &["--conversation-ids", "nobody"]),
            None,
        ),
        1,
        &["nothing to export"],
    );
    assert_fails(
        &colloquy(
            &export_args(&topology, &store, &["--resume-from", "alice"]),
            None,
        ),
        2,
        &["--resume-from must be `SEQ:SENDER_ID`"],
    );
    let empty = colloquy_testkit::fresh_database().await;
    assert_fails(
        &colloquy(&export_args(&topology, &empty, &[]), None),
        2,
        &["has no `events` table"],
    );
    empty.drop_database().await;
    assert_fails(
        &colloquy(&args(&["export", "--amqp-url", &topology.amqp_url]), None),
        2,
        &["export needs a tracker store"],
    );
    // A live subscription would declare the queue again once it is deleted.
    drop(subscription);
    topology.cleanup().await;
    store.drop_database().await;
}

#[tokio::test]
async fn export_resumes_after_rabbitmq_refuses_it_in_the_middle() {
    // A RabbitMQ user of this test only: the fault is taking its permissions away mid-export.
    let user = TestUser::new();
    let mut topology = Topology::new().await;
    topology.amqp_url = user.url(&topology.amqp_url);

    let conversations: Vec<Vec<Vec<u8>>> = (0..300)
        .map(|n| rasa_conversation(&format!("resume-{n:03}"), 20))
        .collect();
    let total: usize = conversations.iter().map(Vec::len).sum();
    let store = tracker_store_with(&conversations).await;
    let mut subscription = topology.subscribe().await;

    let mut export = Command::new(BINARY)
        .args(export_args(
            &topology,
            &store,
            &["--connection-attempts", "2", "--progress", "none"],
        ))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As soon as the first message arrives, freeze the export, refuse its user and cut its connection.
    let first = receive(&mut subscription, 1).await;
    signal(&export, "STOP");
    user.refuse();
    signal(&export, "CONT");
    let status = wait_for_exit(&mut export).await;
    let mut text = String::new();
    std::io::Read::read_to_string(export.stderr.as_mut().unwrap(), &mut text).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("To resume once the problem is fixed, run:"),
        "{text}"
    );
    let command = text
        .lines()
        .skip_while(|line| !line.contains("To resume"))
        .nth(1)
        .expect("the resume command")
        .trim()
        .to_owned();
    assert!(command.contains("--resume-from"), "{command}");

    // Give the permissions back and run the printed command.
    user.grant();
    // The printed command hides the password (`***`): give it again, as the message asks.
    assert!(!command.contains(&topology.amqp_url), "{command}");
    let words: Vec<String> = shell_words(&command)
        .into_iter()
        .map(|word| {
            if word.starts_with("amqp") && word.contains(":***@") {
                topology.amqp_url.clone()
            } else {
                word
            }
        })
        .collect();
    assert_eq!(words[0], BINARY);
    let output = colloquy(&words[1..], None);
    assert_success(&output);

    let mut received = first;
    received.extend(drain(&mut subscription).await);
    let ids: BTreeSet<String> = received
        .iter()
        .filter_map(|m| m.message_id.clone())
        .collect();
    assert_eq!(
        ids.len(),
        total,
        "every event reached the queue (duplicates share ids)"
    );
    let runs = export_process_ids(&received);
    assert_eq!(runs.len(), 2, "the first run and the resumed one");
    let resumed = runs
        .iter()
        .map(|run| {
            received
                .iter()
                .filter(|m| m.headers["rasa-export-process-id"].as_str() == Some(run))
                .count()
        })
        .min()
        .unwrap();
    assert!(resumed < total, "the resumed run did not start over");

    // A live subscription would declare the queue again once it is deleted.
    drop(subscription);
    topology.cleanup().await;
    store.drop_database().await;
}

fn close_connections_of(user: &str) {
    let output = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "user"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.split('\t');
        if let (Some(pid), Some(owner)) = (fields.next(), fields.next())
            && owner.trim() == user
        {
            rabbitmqctl(&["close_connection", pid.trim(), "test: broker failure"]);
        }
    }
}

/// Splits a POSIX shell command line (single quotes and `'\''` only: what `colloquy export` prints).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            ' ' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

// ---------------------------------------------------------------------------------------------------------
// demo

#[tokio::test]
async fn demo_runs_end_to_end() {
    let amqp_url = colloquy_testkit::amqp_url().await;
    // The demo declares its own exchange and queue: deleted at the end, also when the test fails.
    let _topology = colloquy_testkit::broker::TopologyGuard {
        exchange: "colloquy-demo".to_owned(),
        queue: "colloquy-demo-events".to_owned(),
    };
    let dir = std::env::temp_dir().join(unique_name("colloquy-demo-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let database = dir.join("demo.db");
    let output = colloquy(
        &args(&[
            "demo",
            "--amqp-url",
            &amqp_url,
            "--database",
            database.to_str().unwrap(),
        ]),
        None,
    );
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events = SAMPLE.lines().count();
    for needle in [
        format!("Stored {events} events of 19 conversations"),
        "Events by type:".to_owned(),
        "user: I'd like to book a table".to_owned(),
        "bot:  What cuisine would you like?".to_owned(),
        "(slot cuisine = \"italian\")".to_owned(),
    ] {
        assert!(
            stdout.contains(&needle),
            "the demo should print {needle:?}:\n{stdout}"
        );
    }
    // Again on the same database: nothing is stored twice.
    let again = colloquy(
        &args(&[
            "demo",
            "--amqp-url",
            &amqp_url,
            "--database",
            database.to_str().unwrap(),
        ]),
        None,
    );
    assert_success(&again);
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("Stored {events} events")));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_without_rabbitmq_says_how_to_get_one() {
    let output = colloquy(
        &args(&["demo", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"]),
        None,
    );
    assert_fails(
        &output,
        1,
        &[
            "No RabbitMQ answers at 127.0.0.1:1",
            "rabbitmq-server",
            "docker run",
            "--amqp-url",
        ],
    );
}
