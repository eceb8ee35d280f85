//! `cargo xtask bench serve` (or `cargo bench -p colloquy-server --bench serve`): `colloquy serve` over a table of
//! `BENCH_EVENTS` (default 1,000,000) events in `BENCH_CONVERSATIONS` (default 20,000) conversations, one of
//! which holds `BENCH_LONG` (default 5,000) events, on PostgreSQL and SQLite (`BENCH_DIALECTS`, default
//! `postgres,sqlite`; `mysql` too when asked).
//!
//! The rows are generated inside the database (PostgreSQL: `INSERT ... SELECT FROM generate_series`; SQLite:
//! a recursive CTE), Rasa-shaped: user (intent, confidence, channel, text), action, bot and slot in rotation.
//! The server runs in process, its index built at start (timed), and is measured over HTTP (`BENCH_REQUESTS`
//! requests per case, default 200, after 10 warm-up ones): p50 and p95 of the inbox's first page, of filtered
//! pages, and of the first page of the long conversation. Databases made by the bench are dropped at the end.

use std::time::Instant;

use anyhow::{Context, Result};
use colloquy_server::{Server, ServerConfig};
use colloquy_storage::{ConnectOptions, Database, Schema};
use colloquy_testkit::{TestDatabase, TestDialect};

fn main() -> Result<()> {
    let number = |name: &str, default: i64| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let events = number("BENCH_EVENTS", 1_000_000);
    let conversations = number("BENCH_CONVERSATIONS", 20_000);
    let long = number("BENCH_LONG", 5_000);
    let requests = number("BENCH_REQUESTS", 200) as usize;
    let dialects: Vec<TestDialect> = std::env::var("BENCH_DIALECTS")
        .unwrap_or_else(|_| "postgres,sqlite".to_owned())
        .split(',')
        .map(|name| match name.trim() {
            "postgres" => Ok(TestDialect::Postgres),
            "mysql" | "mariadb" => Ok(TestDialect::MySql),
            "sqlite" => Ok(TestDialect::Sqlite),
            other => Err(anyhow::anyhow!("unknown dialect {other:?}")),
        })
        .collect::<Result<_>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "colloquy serve: {events} events in {conversations} conversations (one of {long} events), \
             {requests} requests per case"
        );
        for dialect in dialects {
            let database = dialect.fresh_database().await;
            let outcome = measure(&database, dialect, events, conversations, long, requests).await;
            database.drop_database().await;
            outcome?;
        }
        Ok(())
    })
}

async fn measure(
    database: &TestDatabase,
    dialect: TestDialect,
    events: i64,
    conversations: i64,
    long: i64,
    requests: usize,
) -> Result<()> {
    println!("\n{dialect:?}");
    let started = Instant::now();
    prefill(database, dialect, events, conversations, long).await?;
    println!("  prefilled in {:.0} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let server = Server::bind(ServerConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::new(database.url.clone())
    })
    .await?;
    println!(
        "  server started (index built) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let cases = [
        (
            "inbox, first page (50)",
            "/api/conversations?limit=50".to_owned(),
        ),
        (
            "filtered: intent + channel + min_events",
            "/api/conversations?limit=50&intent=request_restaurant&channel=rest&min_events=60"
                .to_owned(),
        ),
        (
            "filtered: confidence_below + since",
            "/api/conversations?limit=50&confidence_below=0.5&since=1690005000".to_owned(),
        ),
        (
            "filtered: text contains",
            "/api/conversations?limit=50&text=restaurant%20123".to_owned(),
        ),
        (
            "conversation of 5,000 events, first page (200)",
            "/api/conversations/bench-long/events?limit=200".to_owned(),
        ),
    ];
    println!(
        "  {:<48} {:>9} {:>9} {:>9}",
        "case", "p50 ms", "p95 ms", "matches"
    );
    for (name, path) in cases {
        let url = format!("http://{addr}{path}");
        let (timings, body) = tokio::task::spawn_blocking(move || time_requests(&url, requests))
            .await
            .context("request thread")??;
        let matches = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value.get("matches").or(value.get("total")).cloned())
            .map(|value| value.to_string())
            .unwrap_or_default();
        println!(
            "  {name:<48} {:>9.1} {:>9.1} {matches:>9}",
            percentile(&timings, 0.50),
            percentile(&timings, 0.95)
        );
    }
    let _ = stop.send(());
    task.await??;
    Ok(())
}

/// `requests` GETs of `url` after 10 warm-up ones: each one's time in milliseconds, and the last body.
fn time_requests(url: &str, requests: usize) -> Result<(Vec<f64>, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut timings = Vec::with_capacity(requests);
    let mut body = String::new();
    for i in 0..requests + 10 {
        let started = Instant::now();
        let mut response = agent.get(url).call()?;
        anyhow::ensure!(response.status() == 200, "{url}: {}", response.status());
        body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        if i >= 10 {
            timings.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((timings, body))
}

fn percentile(timings: &[f64], p: f64) -> f64 {
    let mut sorted = timings.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// Rasa-shaped events generated inside the database: `events - long` spread over `conversations - 1`
/// conversations, then `long` events of `bench-long`.
async fn prefill(
    database: &TestDatabase,
    dialect: TestDialect,
    events: i64,
    conversations: i64,
    long: i64,
) -> Result<()> {
    let storage = Database::connect_lazy(&database.url, &ConnectOptions::default())?;
    storage.migrate(Schema::Events).await?;
    storage.close().await;
    let spread = events - long;
    let others = conversations - 1;
    match dialect {
        TestDialect::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&database.url)
                .await?;
            for (from, to, sender) in [
                (0, spread, format!("'bench-' || (g % {others})")),
                (spread, events, "'bench-long'".to_owned()),
            ] {
                let statement = format!(
                    r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data)
                       SELECT sender, (ARRAY['user', 'action', 'bot', 'slot'])[g % 4 + 1], ts,
                              CASE WHEN g % 4 = 0 THEN (ARRAY['request_restaurant', 'greet', 'nlu_fallback'])[g % 3 + 1] END,
                              CASE g % 4 WHEN 1 THEN 'utter_greet' WHEN 3 THEN 'cuisine' END,
                              CASE g % 4
                              WHEN 0 THEN format('{{"event": "user", "timestamp": %s, "text": "I would like to book a table for two at an indian restaurant %s", "parse_data": {{"intent": {{"name": "%s", "confidence": %s}}, "entities": []}}, "input_channel": "%s", "message_id": "m%s"}}', ts, g, (ARRAY['request_restaurant', 'greet', 'nlu_fallback'])[g % 3 + 1], (g % 100) / 100.0, (ARRAY['rest', 'socketio'])[g % 2 + 1], g)
                              WHEN 1 THEN format('{{"event": "action", "timestamp": %s, "name": "utter_greet", "policy": "RulePolicy", "confidence": 1.0}}', ts)
                              WHEN 2 THEN format('{{"event": "bot", "timestamp": %s, "text": "Sure, which day and time would suit you? (%s)", "data": {{}}, "metadata": {{}}}}', ts, g)
                              ELSE format('{{"event": "slot", "timestamp": %s, "name": "cuisine", "value": "indian"}}', ts)
                              END
                       FROM (SELECT g, {sender} AS sender, 1690000000 + g * 0.01 AS ts
                             FROM generate_series($1::int8, $2::int8 - 1) g) generated
                       ORDER BY g"#
                );
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(from)
                    .bind(to)
                    .execute(&pool)
                    .await?;
            }
            sqlx::query("VACUUM (ANALYZE) events")
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        TestDialect::Sqlite | TestDialect::MySql => {
            let url = &database.url;
            let concat_sqlite = |sender: &str| {
                format!(
                    r#"WITH RECURSIVE seq(g) AS (SELECT ?1 UNION ALL SELECT g + 1 FROM seq WHERE g + 1 < ?2)
                       INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data)
                       SELECT {sender},
                              CASE g % 4 WHEN 0 THEN 'user' WHEN 1 THEN 'action' WHEN 2 THEN 'bot' ELSE 'slot' END,
                              1690000000 + g * 0.01,
                              CASE WHEN g % 4 = 0 THEN CASE g % 3 WHEN 0 THEN 'request_restaurant' WHEN 1 THEN 'greet' ELSE 'nlu_fallback' END END,
                              CASE g % 4 WHEN 1 THEN 'utter_greet' WHEN 3 THEN 'cuisine' END,
                              CASE g % 4
                              WHEN 0 THEN printf('{{"event": "user", "timestamp": %s, "text": "I would like to book a table for two at an indian restaurant %d", "parse_data": {{"intent": {{"name": "%s", "confidence": %s}}, "entities": []}}, "input_channel": "%s", "message_id": "m%d"}}', 1690000000 + g * 0.01, g, CASE g % 3 WHEN 0 THEN 'request_restaurant' WHEN 1 THEN 'greet' ELSE 'nlu_fallback' END, (g % 100) / 100.0, CASE g % 2 WHEN 0 THEN 'rest' ELSE 'socketio' END, g)
                              WHEN 1 THEN printf('{{"event": "action", "timestamp": %s, "name": "utter_greet", "policy": "RulePolicy", "confidence": 1.0}}', 1690000000 + g * 0.01)
                              WHEN 2 THEN printf('{{"event": "bot", "timestamp": %s, "text": "Sure, which day and time would suit you? (%d)", "data": {{}}, "metadata": {{}}}}', 1690000000 + g * 0.01, g)
                              ELSE printf('{{"event": "slot", "timestamp": %s, "name": "cuisine", "value": "indian"}}', 1690000000 + g * 0.01)
                              END
                       FROM seq"#
                )
            };
            anyhow::ensure!(
                dialect == TestDialect::Sqlite,
                "the MySQL prefill is not written yet"
            );
            use sqlx::Connection as _;
            let path = url.trim_start_matches("sqlite://");
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
            let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
            for (from, to, sender) in [
                (0, spread, format!("'bench-' || (g % {others})")),
                (spread, events, "'bench-long'".to_owned()),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(concat_sqlite(&sender)))
                    .bind(from)
                    .bind(to)
                    .execute(&mut connection)
                    .await?;
            }
            sqlx::query("ANALYZE").execute(&mut connection).await?;
            connection.close().await?;
        }
    }
    Ok(())
}
