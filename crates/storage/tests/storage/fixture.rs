//! A fresh database of one dialect per test, dropped at the end even when the test fails, and raw SQL for
//! the checks the public API does not offer (the tests may look under the hood; the crates may not).

use colloquy_storage::{ConnectOptions, Database, EventRow};
use colloquy_testkit::{DatabaseGuard, TestDialect};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection};

/// One test's database: the storage layer's handle on it, and its URL for raw checks.
pub struct Fixture {
    /// The database under test (declared first: its pool is dropped before the database is).
    pub db: Database,
    /// The dialect, named in every assertion message.
    pub dialect: TestDialect,
    /// The database's URL.
    pub url: String,
    guard: DatabaseGuard,
}

impl Fixture {
    /// A fresh, empty database of `dialect`, not migrated.
    pub async fn new(dialect: TestDialect) -> Self {
        let guard = dialect.fresh_database().await.guard();
        let db = Database::connect_lazy(&guard.url, &ConnectOptions::default())
            .unwrap_or_else(|error| panic!("{dialect:?}: a pool for the test database: {error}"));
        Self {
            db,
            dialect,
            url: guard.url.clone(),
            guard,
        }
    }

    /// The test database's name (the SQLite file's stem).
    pub fn name(&self) -> &str {
        &self.guard.name
    }

    /// Runs `sql` (one or more statements) on a connection of its own.
    pub async fn exec(&self, sql: &str) {
        let text = sql;
        let sql = || AssertSqlSafe(text.to_owned());
        let outcome = match self.dialect {
            TestDialect::Postgres => match sqlx::PgConnection::connect(&self.url).await {
                Ok(mut conn) => sqlx::raw_sql(sql()).execute(&mut conn).await.map(drop),
                Err(error) => Err(error),
            },
            TestDialect::MySql => match sqlx::MySqlConnection::connect(&self.url).await {
                Ok(mut conn) => sqlx::raw_sql(sql()).execute(&mut conn).await.map(drop),
                Err(error) => Err(error),
            },
            TestDialect::Sqlite => match sqlite_connect(&self.url).await {
                Ok(mut conn) => sqlx::raw_sql(sql()).execute(&mut conn).await.map(drop),
                Err(error) => Err(error),
            },
        };
        if let Err(error) = outcome {
            panic!("{:?}: running {text:?}: {error}", self.dialect);
        }
    }

    /// The integers (or NULLs) the one-column query `sql` returns.
    pub async fn ints(&self, sql: &str) -> Vec<Option<i64>> {
        let text = sql;
        let sql = || AssertSqlSafe(text.to_owned());
        let outcome = match self.dialect {
            TestDialect::Postgres => match sqlx::PgConnection::connect(&self.url).await {
                Ok(mut conn) => sqlx::query_scalar(sql()).fetch_all(&mut conn).await,
                Err(error) => Err(error),
            },
            TestDialect::MySql => match sqlx::MySqlConnection::connect(&self.url).await {
                Ok(mut conn) => sqlx::query_scalar(sql()).fetch_all(&mut conn).await,
                Err(error) => Err(error),
            },
            TestDialect::Sqlite => match sqlite_connect(&self.url).await {
                Ok(mut conn) => sqlx::query_scalar(sql()).fetch_all(&mut conn).await,
                Err(error) => Err(error),
            },
        };
        outcome.unwrap_or_else(|error| panic!("{:?}: running {text:?}: {error}", self.dialect))
    }

    /// The one integer `sql` returns.
    pub async fn int(&self, sql: &str) -> i64 {
        let values = self.ints(sql).await;
        assert_eq!(values.len(), 1, "{:?}: {sql} returns one row", self.dialect);
        values[0].unwrap_or_else(|| panic!("{:?}: {sql} returned NULL", self.dialect))
    }

    /// Whether table `table` has column `column`.
    pub async fn has_column(&self, table: &str, column: &str) -> bool {
        let sql = match self.dialect {
            TestDialect::Postgres => format!(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' AND column_name = '{column}'"
            ),
            TestDialect::MySql => format!(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' AND column_name = '{column}'"
            ),
            TestDialect::Sqlite => {
                format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
            }
        };
        self.int(&sql).await > 0
    }

    /// Whether table `table` exists.
    pub async fn has_table(&self, table: &str) -> bool {
        let sql = match self.dialect {
            TestDialect::Postgres => format!(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
            TestDialect::MySql => format!(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
            TestDialect::Sqlite => {
                format!(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
                )
            }
        };
        self.int(&sql).await > 0
    }

    /// `SQL` for dropping index `index` of `events` in this dialect.
    pub fn drop_index_sql(&self, index: &str) -> String {
        match self.dialect {
            TestDialect::MySql => format!("DROP INDEX {index} ON events"),
            TestDialect::Postgres | TestDialect::Sqlite => format!("DROP INDEX {index}"),
        }
    }
}

/// `Result::unwrap` whose panic names the dialect.
pub trait OnDialect<T> {
    /// The value, or a panic naming `dialect` and the error.
    fn on(self, dialect: TestDialect) -> T;
}

impl<T, E: std::fmt::Debug> OnDialect<T> for Result<T, E> {
    #[track_caller]
    fn on(self, dialect: TestDialect) -> T {
        self.unwrap_or_else(|error| panic!("{dialect:?}: {error:?}"))
    }
}

/// A raw connection to the SQLite file at `url`, creating it (as Rasa does) when it does not exist.
async fn sqlite_connect(url: &str) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
    options.create_if_missing(true).connect().await
}

/// An event row of conversation `sender_id` with dedupe key `event_id`, its id also in the JSON so that rows
/// can be told apart when read back.
pub fn row(sender_id: &str, event_id: &str, type_name: &str, timestamp: Option<f64>) -> EventRow {
    let ts = timestamp.map_or("null".to_owned(), |t| format!("{t:?}"));
    EventRow {
        sender_id: sender_id.to_owned(),
        type_name: type_name.to_owned(),
        timestamp,
        intent_name: (type_name == "user").then(|| "greet".to_owned()),
        action_name: (type_name == "action").then(|| "action_listen".to_owned()),
        data: format!(r#"{{"event": "{type_name}", "timestamp": {ts}, "test_id": "{event_id}"}}"#),
        event_id: Some(event_id.to_owned()),
    }
}

/// Runs `case` on a fresh database of `dialect`.
pub async fn run<F>(dialect: TestDialect, case: F)
where
    F: AsyncFnOnce(&Fixture),
{
    let fixture = Fixture::new(dialect).await;
    case(&fixture).await;
}

/// One `#[tokio::test]` per case and dialect: `dialect_tests!(case_a, case_b)` makes `postgres::case_a`,
/// `mysql::case_a`, `sqlite::case_a`, ... each running `super::case_a` on a fresh database of that dialect.
#[macro_export]
macro_rules! dialect_tests {
    ($($case:ident),* $(,)?) => {
        $crate::dialect_tests!(@dialect postgres, Postgres, $($case),*);
        $crate::dialect_tests!(@dialect mysql, MySql, $($case),*);
        $crate::dialect_tests!(@dialect sqlite, Sqlite, $($case),*);
    };
    (@dialect $module:ident, $dialect:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::fixture::run(colloquy_testkit::TestDialect::$dialect, super::$case).await;
                }
            )*
        }
    };
}
