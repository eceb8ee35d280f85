//! MySQL/MariaDB refuses, never truncates, even on a server whose default `sql_mode` is not strict: a private
//! MariaDB started with `--sql-mode=` (never the shared server, whose settings other tests rely on).

use colloquy_storage::{ConnectOptions, Database, Schema};
use colloquy_testkit::PrivateMariaDb;
use sqlx::Connection;

use crate::fixture::row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_what_does_not_fit_even_where_the_server_is_not_strict() {
    let what = "MariaDB with sql_mode=''";
    // `start` waits until the server answers and creates its database `test`.
    let server = tokio::task::block_in_place(|| {
        let mut server = PrivateMariaDb::init().with_server_args(&["--sql-mode="]);
        server.start();
        server
    });
    let url = server.url();
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
