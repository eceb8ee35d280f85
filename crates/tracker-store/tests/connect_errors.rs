//! What a user reads when a store's server is not there: a refused connection fails within seconds (the
//! start-up attempts, not a connect timeout each) and `chain()` says "connection refused".

use std::time::{Duration, Instant};

use colloquy_tracker_store::{SqlConfig, SqlStore};

fn assert_refused_quickly(started: Instant, error: &colloquy_tracker_store::Error) {
    let chain = error.chain();
    assert!(started.elapsed() < Duration::from_secs(15), "{chain}");
    assert!(
        chain.to_lowercase().contains("connection refused"),
        "{chain}"
    );
    assert!(error.is_transient(), "{chain}");
}

#[tokio::test]
async fn an_sql_store_on_a_closed_port_fails_quickly_saying_connection_refused() {
    // A port nobody listens on: bound to learn a free one, then released.
    let port = colloquy_testkit::free_port();
    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/rasa"),
        format!("mysql://root@127.0.0.1:{port}/rasa"),
    ] {
        let mut config = SqlConfig::from_url(&url).unwrap();
        config.connect_timeout = Duration::from_secs(30);
        let started = Instant::now();
        let error = SqlStore::connect(&config, None)
            .await
            .expect_err("nothing listens there");
        assert_refused_quickly(started, &error);
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_store_on_a_closed_port_fails_quickly_saying_connection_refused() {
    use colloquy_tracker_store::{RedisConfig, RedisStore};
    let port = colloquy_testkit::free_port();
    let mut config = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}/0")).unwrap();
    config.connect_timeout = Duration::from_secs(30);
    let started = Instant::now();
    let error = RedisStore::connect(&config, None)
        .await
        .expect_err("nothing listens there");
    assert_refused_quickly(started, &error);
}

#[tokio::test]
async fn an_sql_store_on_a_missing_database_names_it() {
    let server = colloquy_testkit::database_url().await;
    let name = colloquy_testkit::unique_name("colloquy_missing").replace('-', "_");
    let server = server.split('?').next().unwrap_or(&server);
    let (server, _database) = server.rsplit_once('/').expect("a database URL");
    let url = format!("{server}/{name}");
    let error = SqlStore::connect(&SqlConfig::from_url(&url).unwrap(), None)
        .await
        .expect_err("no such database");
    let chain = error.chain();
    assert!(
        chain.contains(&format!("database `{name}` does not exist")),
        "{chain}"
    );
    assert!(error.is_config(), "{chain}");
}
