//! Test support for Colloquy's integration tests (dev-only, not published).
//!
//! Every integration test talks to real services. [`amqp_url`] and [`database_url`] find them: the URL in
//! `AMQP_URL` / `DATABASE_URL` when set, else the service on its default local port, else a container started
//! with testcontainers where a Docker engine answers, else a panic that says what to do. A missing service is a
//! failing test, never a skipped one.
//!
//! Each test names its own queues, exchanges and databases with [`unique_name`] and waits for conditions with
//! [`wait_until`], a bounded poll: no fixed sleeps.
//!
//! Destructive faults run on private instances, never on the shared servers other tests use at the same time:
//! a test that stops, restarts or breaks a server starts its own [`PrivatePostgres`] cluster,
//! [`PrivateMariaDb`] server or [`PrivateRabbitMq`] node (and the tracker stores' tests a private
//! `redis-server`). On the shared broker a test closes only its own connections, found by their unique
//! connection name (`broker::close_connections_named`).
//!
//! ```no_run
//! # async fn demo() {
//! let url = colloquy_testkit::amqp_url().await;
//! let queue = colloquy_testkit::unique_name("queue");
//! assert!(url.starts_with("amqp"));
//! # let _ = queue;
//! # }
//! ```

#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "consumer")]
pub mod consumer;
mod private_mariadb;
mod private_postgres;
mod rabbitmq_node;
mod rasa;
#[cfg(feature = "tracker-store")]
pub mod tracker_store;

pub use private_mariadb::PrivateMariaDb;
pub use private_postgres::PrivatePostgres;
pub use rabbitmq_node::PrivateRabbitMq;
pub use rasa::{data_of, delete_topology, interleave, publish_like_rasa, rasa_conversation};

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::sync::OnceCell;

/// The local RabbitMQ that CI and the development machines run.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The local PostgreSQL that CI and the development machines run.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The local Redis that CI and the development machines run.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

static RABBITMQ: OnceCell<(
    String,
    Option<ContainerAsync<testcontainers_modules::rabbitmq::RabbitMq>>,
)> = OnceCell::const_new();
static POSTGRES: OnceCell<(
    String,
    Option<ContainerAsync<testcontainers_modules::postgres::Postgres>>,
)> = OnceCell::const_new();

/// The RabbitMQ to test against (see the crate doc for the order of choices).
pub async fn amqp_url() -> String {
    RABBITMQ
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("AMQP_URL") {
                return (url, None);
            }
            if port_answers(5672) {
                return (DEFAULT_AMQP_URL.to_owned(), None);
            }
            if docker_answers() {
                let container = testcontainers_modules::rabbitmq::RabbitMq::default()
                    .with_tag("3.10-management")
                    .start()
                    .await
                    .expect("starting a RabbitMQ container");
                let port = container.get_host_port_ipv4(5672).await.expect("RabbitMQ container port");
                return (format!("amqp://guest:guest@127.0.0.1:{port}/%2f"), Some(container));
            }
            panic!(
                "no RabbitMQ for the integration tests: set AMQP_URL, or start one on 127.0.0.1:5672 \
                 (`rabbitmq-server -detached`), or run a Docker engine for testcontainers"
            )
        })
        .await
        .0
        .clone()
}

/// The PostgreSQL server to test against (see the crate doc for the order of choices).
pub async fn database_url() -> String {
    POSTGRES
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                return (url, None);
            }
            if port_answers(5432) {
                return (DEFAULT_DATABASE_URL.to_owned(), None);
            }
            if docker_answers() {
                let container = testcontainers_modules::postgres::Postgres::default()
                    .start()
                    .await
                    .expect("starting a PostgreSQL container");
                let port = container.get_host_port_ipv4(5432).await.expect("PostgreSQL container port");
                return (format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"), Some(container));
            }
            panic!(
                "no PostgreSQL for the integration tests: set DATABASE_URL, or start one on 127.0.0.1:5432 \
                 (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`), \
                 or run a Docker engine for testcontainers"
            )
        })
        .await
        .0
        .clone()
}

/// A fresh, empty PostgreSQL database of its own for one test; [`TestDatabase::drop_database`] removes it.
pub async fn fresh_database() -> TestDatabase {
    let server_url = database_url().await;
    let name = unique_name("colloquy_test").replace('-', "_");
    let mut admin = PgConnection::connect(&server_url)
        .await
        .expect("connecting to PostgreSQL");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .expect("creating a test database");
    TestDatabase {
        url: with_database(&server_url, &name),
        server_url,
        name,
        dialect: TestDialect::Postgres,
    }
}

/// The local MariaDB/MySQL that CI and the development machines run.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The SQL dialects the storage layer speaks, as test parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDialect {
    /// PostgreSQL: `DATABASE_URL`, else 127.0.0.1:5432.
    Postgres,
    /// MySQL or MariaDB: `MYSQL_URL`, else 127.0.0.1:3306.
    MySql,
    /// SQLite: a file in a temporary directory.
    Sqlite,
}

impl TestDialect {
    /// Every dialect; suites that must hold on each run once per entry.
    pub const ALL: [TestDialect; 3] = [Self::Postgres, Self::MySql, Self::Sqlite];

    /// A fresh, empty database of this dialect for one test.
    pub async fn fresh_database(self) -> TestDatabase {
        match self {
            Self::Postgres => fresh_database().await,
            Self::MySql => fresh_mysql_database().await,
            Self::Sqlite => {
                let name = unique_name("colloquy_test").replace('-', "_");
                let path = std::env::temp_dir().join(format!("{name}.db"));
                TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    name,
                    server_url: String::new(),
                    dialect: self,
                }
            }
        }
    }
}

/// The MySQL/MariaDB server to test against: `MYSQL_URL`, else the local one on 3306, else a panic that says
/// what to do.
pub fn mysql_url() -> String {
    if let Ok(url) = std::env::var("MYSQL_URL") {
        return url;
    }
    if port_answers(3306) {
        return DEFAULT_MYSQL_URL.to_owned();
    }
    panic!(
        "no MySQL/MariaDB for the integration tests: set MYSQL_URL, or start one on 127.0.0.1:3306 \
         (`service mariadb start`)"
    )
}

async fn fresh_mysql_database() -> TestDatabase {
    let server_url = mysql_url();
    let name = unique_name("colloquy_test").replace('-', "_");
    let mut admin = sqlx::MySqlConnection::connect(&server_url)
        .await
        .expect("connecting to MySQL");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .await
        .expect("creating a test database");
    TestDatabase {
        url: with_database(&server_url, &name),
        server_url,
        name,
        dialect: TestDialect::MySql,
    }
}

/// A database created for one test. Call [`TestDatabase::drop_database`] at the end of the test to remove it.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    /// Its name.
    pub name: String,
    server_url: String,
    /// Its dialect.
    pub dialect: TestDialect,
}

impl TestDatabase {
    /// Drops the database (terminating any connection still open to it).
    pub async fn drop_database(self) {
        match self.dialect {
            TestDialect::Postgres => {}
            TestDialect::MySql => {
                let mut admin = sqlx::MySqlConnection::connect(&self.server_url)
                    .await
                    .expect("connecting to MySQL");
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{}`",
                        self.name
                    )))
                    .await
                    .expect("dropping a test database");
                return;
            }
            TestDialect::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://").to_owned();
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
                return;
            }
        }
        let mut admin = PgConnection::connect(&self.server_url)
            .await
            .expect("connecting to PostgreSQL");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .await
            .expect("dropping a test database");
    }
}

/// A [`TestDatabase`] that drops itself when the guard goes out of scope, also when the test fails (a panic
/// unwinds through the guard). Dereferences to the database.
#[derive(Debug)]
pub struct DatabaseGuard(Option<TestDatabase>);

impl TestDatabase {
    /// Hands the database to a guard that drops it at the end of the scope, whatever happens in between.
    pub fn guard(self) -> DatabaseGuard {
        DatabaseGuard(Some(self))
    }
}

impl std::ops::Deref for DatabaseGuard {
    type Target = TestDatabase;

    fn deref(&self) -> &TestDatabase {
        self.0
            .as_ref()
            .expect("the guard holds its database until dropped")
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        let Some(database) = self.0.take() else {
            return;
        };
        // `Drop` cannot await, and the test's runtime may be shutting down: drop the database from a thread
        // with a runtime of its own. A failure to drop is reported, never a second panic during unwinding.
        let name = database.name.clone();
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database")
                .block_on(database.drop_database());
        })
        .join();
        if outcome.is_err() {
            eprintln!("could not drop the test database {name}");
        }
    }
}

fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// The Redis to test against: `REDIS_URL` when set, else the local one on its default port, else a panic that
/// says what to do (tests that break Redis start a private `redis-server` instead).
pub fn redis_url() -> String {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return url;
    }
    assert!(
        port_answers(6379),
        "no Redis for the integration tests: set REDIS_URL, or start one on 127.0.0.1:6379 \
         (`cargo xtask services`, or `redis-server --daemonize yes`)"
    );
    DEFAULT_REDIS_URL.to_owned()
}

/// A free TCP port on 127.0.0.1 (for a private server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A name no other test uses: `prefix` plus a random suffix.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// How often [`wait_until`] and [`wait_for_exit`] look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `condition` until it returns true, at most until `timeout` has passed; panics naming `what` then.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits (bounded by `timeout`, polling like [`wait_until`]) for a child process to exit; returns its status.
pub async fn wait_for_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::process::ExitStatus {
    let mut status = None;
    wait_until("the child process to exit", timeout, || {
        if status.is_none() {
            status = child.try_wait().expect("waiting for the child process");
        }
        let exited = status.is_some();
        async move { exited }
    })
    .await;
    status.expect("the child exited")
}

/// Runs `rabbitmqctl` with `args` on the shared node (only ever on the test's own users, queues and
/// connections: anything that stops the node belongs on a [`PrivateRabbitMq`]); panics with its output when it
/// fails.
pub fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("running rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn port_answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|output| output.status.success())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
