//! What a user reads when the server cannot be reached or the database does not exist, on PostgreSQL and
//! MySQL/MariaDB: a refused connection fails at once saying "connection refused" (not after the connect
//! timeout with the pool's "timed out"), a missing database says "database `x` does not exist".

use std::time::{Duration, Instant};

use colloquy_storage::{ConnectOptions, Database};

/// A connect timeout far longer than the test allows: the failure must not wait for it.
fn patient() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(30),
        ..ConnectOptions::default()
    }
}

fn with_port(url: &str, port: u16) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(port)).unwrap();
    parsed.to_string()
}

fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

async fn a_closed_port_is_refused_at_once(server_url: &str) {
    // A port nobody listens on: bound to learn a free one, then released.
    let url = with_port(server_url, colloquy_testkit::free_port());
    let started = Instant::now();
    let error = Database::connect_lazy(&url, &patient())
        .unwrap()
        .ping()
        .await
        .expect_err("nothing listens there");
    let message = error.to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(
        error.is_transient(),
        "a server that is down can come up: {message}"
    );

    // Connecting with start-up retries gives up after them, quickly, and says why.
    let started = Instant::now();
    let error = Database::connect(&url, &patient(), 3)
        .await
        .expect_err("nothing listens there");
    let message = error.to_string();
    assert!(started.elapsed() < Duration::from_secs(10), "{message}");
    assert!(message.contains("after 3 attempts"), "{message}");
    assert!(message.contains("connection refused"), "{message}");
}

async fn a_missing_database_is_named(server_url: &str) {
    let name = colloquy_testkit::unique_name("colloquy_missing").replace('-', "_");
    let url = with_database(server_url, &name);
    let started = Instant::now();
    let error = Database::connect(&url, &patient(), 3)
        .await
        .expect_err("no such database");
    let message = error.to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "{message}");
    assert!(
        message.contains(&format!("database `{name}` does not exist")),
        "{message}"
    );
    assert!(error.is_config(), "{message}");
}

#[tokio::test]
async fn postgres_closed_port_is_refused_at_once() {
    a_closed_port_is_refused_at_once(&colloquy_testkit::database_url().await).await;
}

#[tokio::test]
async fn mysql_closed_port_is_refused_at_once() {
    a_closed_port_is_refused_at_once(&colloquy_testkit::mysql_url()).await;
}

#[tokio::test]
async fn postgres_missing_database_is_named() {
    a_missing_database_is_named(&colloquy_testkit::database_url().await).await;
}

#[tokio::test]
async fn mysql_missing_database_is_named() {
    a_missing_database_is_named(&colloquy_testkit::mysql_url()).await;
}
