//! The broker's answers as every command reports them: refused credentials and an exchange that exists with
//! other properties exit 2 with the same one-line message in `import`, `consume` and `dead-letters requeue`;
//! an import into a queue that rejects publishes ends with exit 1 naming the unconfirmed events.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use colloquy_testkit::{delete_topology, unique_name};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

const BINARY: &str = env!("CARGO_BIN_EXE_colloquy");

/// A test's exchange, queue and files, removed when dropped (also when the test failed).
struct Fixture {
    amqp_url: String,
    exchange: String,
    queue: String,
    dir: std::path::PathBuf,
}

impl Fixture {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(unique_name("cli-broker-errors"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            amqp_url: colloquy_testkit::amqp_url().await,
            exchange: unique_name("cli-errors-exchange"),
            queue: unique_name("cli-errors-queue"),
            dir,
        }
    }

    fn broker_args(&self, url: &str) -> Vec<String> {
        [
            "--amqp-url",
            url,
            "--exchange",
            &self.exchange,
            "--queue",
            &self.queue,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Runs `import`, `consume` and `dead-letters requeue` against `url`, each to its end.
    fn every_command(&self, url: &str) -> Vec<(&'static str, Output)> {
        let events = self.dir.join("events.jsonl");
        std::fs::write(
            &events,
            br#"{"sender_id": "a", "event": "restart", "timestamp": 1.0}"#,
        )
        .unwrap();
        let database = format!("sqlite://{}", self.dir.join("colloquy.db").display());
        let migrated = Command::new(BINARY)
            .args(["migrate", "--database-url", &database])
            .output()
            .unwrap();
        assert!(migrated.status.success(), "{migrated:?}");
        let broker = self.broker_args(url);
        let runs: [(&'static str, Vec<String>); 3] = [
            (
                "import",
                [
                    "import",
                    "--file",
                    events.to_str().unwrap(),
                    "--connection-attempts",
                    "1",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            (
                "consume",
                ["consume", "--database-url", &database]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            (
                "dead-letters requeue",
                ["dead-letters", "requeue", "--database-url", &database]
                    .map(str::to_owned)
                    .to_vec(),
            ),
        ];
        runs.into_iter()
            .map(|(name, args)| {
                let output = Command::new(BINARY)
                    .args(&args)
                    .args(&broker)
                    .env_remove("AMQP_URL")
                    .env_remove("DATABASE_URL")
                    .env_remove("RUST_LOG")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                (name, output)
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let (url, exchange, queue) = (
            self.amqp_url.clone(),
            self.exchange.clone(),
            self.queue.clone(),
        );
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(delete_topology(&url, &exchange, &queue));
        })
        .join();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts that every command exited `code` with the same single `error:` line containing `needle`, and no
/// transport dump.
fn assert_same_answer(runs: &[(&str, Output)], code: i32, needle: &str) {
    let mut messages = Vec::new();
    for (name, output) in runs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{name}:\n{stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{name}: one error line:\n{stderr}");
        assert!(errors[0].contains(needle), "{name}:\n{stderr}");
        for dump in [
            "lapin",
            "protocol error",
            "AMQP soft error",
            "ProtocolError",
        ] {
            assert!(!stderr.contains(dump), "{name} prints `{dump}`:\n{stderr}");
        }
        messages.push(errors[0].to_owned());
    }
    assert!(
        messages.windows(2).all(|pair| pair[0] == pair[1]),
        "the same message in every command: {messages:#?}"
    );
}

#[tokio::test]
async fn refused_credentials_exit_2_in_every_command() {
    let fixture = Fixture::new().await;
    let url = fixture
        .amqp_url
        .replacen("guest:guest", "guest:wrong-password", 1);
    assert_ne!(
        url, fixture.amqp_url,
        "the test expects guest:guest in AMQP_URL"
    );
    let runs = fixture.every_command(&url);
    assert_same_answer(
        &runs,
        2,
        "refused the connection: wrong username or password",
    );
    for (name, output) in &runs {
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("wrong-password"),
            "{name} prints the password"
        );
    }
}

#[tokio::test]
async fn an_exchange_with_other_properties_exits_2_in_every_command() {
    let fixture = Fixture::new().await;
    let connection = Connection::connect(&fixture.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            fixture.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
    let runs = fixture.every_command(&fixture.amqp_url);
    assert_same_answer(
        &runs,
        2,
        &format!(
            "RabbitMQ refused to declare exchange `{}` as a fanout exchange",
            fixture.exchange
        ),
    );
}

#[tokio::test]
async fn import_into_a_queue_that_rejects_publishes_exits_1_naming_the_events() {
    let fixture = Fixture::new().await;
    let connection = Connection::connect(&fixture.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(5));
    channel
        .queue_declare(
            fixture.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
    let lines: Vec<String> = (0..50)
        .map(|n| {
            format!(
                r#"{{"sender_id": "reject-{}", "event": "restart", "timestamp": {n}.0}}"#,
                n % 5
            )
        })
        .collect();
    let path = fixture.dir.join("events.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let mut import = Command::new(BINARY)
        .args([
            "import",
            "--file",
            path.to_str().unwrap(),
            "--progress",
            "none",
        ])
        .args(fixture.broker_args(&fixture.amqp_url))
        .env_remove("AMQP_URL")
        .env("RUST_LOG", "error")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Today's code re-sent without end; bounded: 5 Nacks with backoff, well within a minute.
    let status = colloquy_testkit::wait_for_exit(&mut import, Duration::from_secs(60)).await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(import.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    for needle in [
        "RabbitMQ did not confirm 45 event(s) (input lines ",
        "rejected (Nack)",
        "x-overflow reject-publish",
        "run the same import again",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}`:\n{stderr}");
    }
}
