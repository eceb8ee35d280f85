//! `colloquy serve` as a person starts it: flags and environment, what it says at start, exit codes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use colloquy_testkit::{TestDialect, free_port, wait_for_exit};

const BINARY: &str = env!("CARGO_BIN_EXE_colloquy");

/// A database with one stored event, through `colloquy import`-free means: the consumer's schema and a row.
async fn database_with_one_event() -> colloquy_testkit::DatabaseGuard {
    let database = TestDialect::Sqlite.fresh_database().await.guard();
    let storage = colloquy_storage::Database::connect_lazy(
        &database.url,
        &colloquy_storage::ConnectOptions::default(),
    )
    .expect("database");
    storage
        .migrate(colloquy_storage::Schema::Events)
        .await
        .expect("migrate");
    let body =
        br#"{"sender_id": "alice", "event": "bot", "timestamp": 1700000000.0, "text": "hi"}"#;
    let envelope = colloquy_events::Envelope::from_json(body).expect("body");
    let row = colloquy_storage::EventRow::new(
        &envelope.sender_id,
        &envelope.event,
        &colloquy_events::EventId::from("serve-cli-1".to_owned()),
    )
    .expect("row");
    storage.store_batch(&[row], &[]).await.expect("store");
    storage.close().await;
    database
}

#[tokio::test]
async fn serve_without_a_token_refuses_other_hosts_with_exit_2() {
    let database = database_with_one_event().await;
    let output = Command::new(BINARY)
        .args([
            "serve",
            "--database-url",
            &database.url,
            "--http",
            "0.0.0.0:0",
        ])
        .env_remove("COLLOQUY_AUTH_TOKEN")
        .output()
        .expect("colloquy runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--auth-token"), "{stderr}");
}

#[tokio::test]
async fn serve_answers_and_stops_on_sigterm() {
    let database = database_with_one_event().await;
    let port = free_port();
    let mut child = Command::new(BINARY)
        .args(["serve", "--database-url", &database.url])
        .env("COLLOQUY_SERVE_HTTP", format!("127.0.0.1:{port}"))
        .env("COLLOQUY_AUTH_TOKEN", "cli-token")
        .stderr(Stdio::piped())
        .spawn()
        .expect("colloquy runs");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut said = String::new();
    // Bounded: the server prints its URL once it listens, or exits.
    for _ in 0..200 {
        match lines.next() {
            Some(Ok(line)) => {
                said.push_str(&line);
                said.push('\n');
                if line.contains("colloquy serve: http://") {
                    break;
                }
            }
            _ => break,
        }
    }
    assert!(
        said.contains(&format!("http://127.0.0.1:{port}/")),
        "{said}"
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET /api/conversations HTTP/1.0\r\nAuthorization: Bearer cli-token\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.contains("\"alice\""), "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_for_exit(&mut child, Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0));
}
