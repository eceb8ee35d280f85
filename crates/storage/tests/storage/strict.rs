//! MySQL/MariaDB refuses, never truncates, even on a server whose default `sql_mode` is not strict: a private
//! MariaDB started with `--sql-mode=` (never the shared server, whose settings other tests rely on).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use colloquy_storage::{ConnectOptions, Database, Schema};
use colloquy_testkit::unique_name;
use sqlx::Connection;

use crate::fixture::row;
use crate::full_disk::run;

/// A private MariaDB server in a temporary directory on a free port, killed and removed when dropped.
struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    server: Child,
}

impl PrivateMariaDb {
    /// `mariadb-install-db`, then `mariadbd` with `server_args`.
    fn start(server_args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(unique_name("colloquy-mariadb"));
        std::fs::create_dir(&dir).expect("creating the server's directory");
        let dir_text = dir.to_str().expect("a UTF-8 temp dir").to_owned();
        run("chown", &["mysql:mysql", &dir_text]);
        let data = format!("--datadir={dir_text}/data");
        run(
            "mariadb-install-db",
            &[
                "--no-defaults",
                &data,
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = Command::new("/usr/sbin/mariadbd")
            .args([
                "--no-defaults",
                &data,
                &format!("--port={port}"),
                &format!("--socket={dir_text}/sock"),
            ])
            .args([
                "--bind-address=127.0.0.1",
                "--user=mysql",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
            ])
            .args(server_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mariadbd");
        Self { dir, port, server }
    }

    fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_what_does_not_fit_even_where_the_server_is_not_strict() {
    let what = "MariaDB with sql_mode=''";
    let server = PrivateMariaDb::start(&["--sql-mode="]);
    let admin = server.url("mysql");
    colloquy_testkit::wait_until(
        &format!("{what} to answer"),
        Duration::from_secs(60),
        || {
            let admin = admin.clone();
            async move { sqlx::MySqlConnection::connect(&admin).await.is_ok() }
        },
    )
    .await;
    let mut raw = sqlx::MySqlConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql("CREATE DATABASE colloquy CHARACTER SET utf8mb4")
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    let url = server.url("colloquy");
    let db = Database::connect(&url, &ConnectOptions::default(), 5)
        .await
        .unwrap();
    db.migrate(Schema::Events).await.unwrap();

    let mut big = row("s", "big", "bot", None);
    big.data = format!(r#"{{"event": "bot", "text": "{}"}}"#, "x".repeat(70_000));
    let mut long_name = row("s", "long", "bot", None);
    long_name.type_name = "t".repeat(300);
    for (case, rows) in [
        (
            "data longer than TEXT",
            vec![row("s", "ok", "bot", None), big.clone()],
        ),
        ("a name longer than VARCHAR(255)", vec![long_name]),
    ] {
        let error = db
            .store_batch(&rows, &[])
            .await
            .expect_err("refused, not truncated");
        assert!(
            error.is_refused(),
            "{what}: {case}: refused, not {:?}: {error:?}",
            error.kind()
        );
    }
    assert_eq!(
        db.count_events("s").await.unwrap(),
        0,
        "{what}: nothing stored, nothing truncated"
    );
    db.close().await;

    // The server on its own would have truncated: the refusal is the storage layer's session mode.
    let mut raw = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO events (sender_id, type_name, data) VALUES ('raw', 'bot', ?)")
        .bind(&big.data)
        .execute(&mut raw)
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT CAST(LENGTH(data) AS SIGNED) FROM events WHERE sender_id = 'raw'",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(
        stored, 65_535,
        "{what}: a session without strict mode truncates silently"
    );
    raw.close().await.unwrap();
}
