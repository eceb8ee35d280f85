//! `cargo bench -p colloquy-consumer` (or `cargo xtask bench consumer`): the consumer draining a full queue into
//! each SQL dialect — PostgreSQL, MariaDB/MySQL, SQLite — against a minimal raw lapin + sqlx consumer that
//! inserts the same rows with one multi-row statement per batch into the same dialect, measured in the same run
//! (baseline before and after ours, to show drift); on PostgreSQL the drain runs a second time with
//! `--analytics` (ratio to the plain drain of the same run), then `analytics rebuild` is timed on that
//! database — first on the main workload (one user message per conversation per batch, the worst case for
//! analytics), then plain and with analytics on Rasa-shaped turns (each save's events together); then the end-to-end latency (publish to commit, PostgreSQL) at half the measured maximum rate.
//! Each drain runs at `colloquy consume`'s default batch size: 1000, or 5000 with `--analytics`.
//!
//! Environment: `BENCH_EVENTS` (default 200000), `BENCH_DIALECTS` (default `postgres,mysql,sqlite`),
//! `BENCH_LATENCY_SECS` (default 10; 0 skips), `BENCH_LATENCY_RATE` (default: half of the measured PostgreSQL
//! drain rate), `BENCH_DEBUG` (print the consumer's metrics), `AMQP_URL`, `DATABASE_URL`, `MYSQL_URL`.
//!
//! The growth curve (`cargo xtask bench consumer --prefill N[,M...]`, which sets `BENCH_PREFILL`): the drain
//! of `BENCH_EVENTS` (default 100000 here) queued events into a PostgreSQL table that already holds 0, N, M, ...
//! stored events, then into an empty one again, in one run (no baseline, no latency). The stored rows are
//! generated inside PostgreSQL (`INSERT ... SELECT FROM generate_series`: Rasa-shaped events, user, action, bot
//! and slot in rotation, 40 per conversation, 64-hex `event_id`s, `event_key`s by the storage layer's formula),
//! not published; secondary indexes are dropped for the fill and built again, then the table is vacuumed,
//! analysed and checkpointed (the empty points too, so that every point starts alike); the queue is filled
//! last, just before each drain. `BENCH_SCHEMA=legacy` gives the table the indexes of a database that held
//! rows before the compact key (a unique `event_id`, two indexes on `sender_id`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use async_trait::async_trait;
use colloquy_broker::{AmqpConfig, AmqpSubscription};
use colloquy_consumer::{AnalyticsSink, Consumer, ConsumerOptions, EventSink};
use colloquy_storage::{AnalyticsSettings, ConnectOptions, Database, Schema};
use colloquy_storage::{DeadLetterRow, EventRow};
use colloquy_testkit::{TestDatabase, TestDialect, fresh_database, unique_name, wait_until};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sqlx::postgres::PgPoolOptions;
use sqlx::{MySql, QueryBuilder, Sqlite};

/// The conversations the turns workload interleaves.
const CONVERSATIONS: usize = 1000;
const BATCH_WAIT: Duration = Duration::from_millis(50);

fn main() -> Result<()> {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let latency_secs: u64 = std::env::var("BENCH_LATENCY_SECS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let dialects: Vec<TestDialect> = std::env::var("BENCH_DIALECTS")
        .unwrap_or_else(|_| "postgres,mysql,sqlite".to_owned())
        .split(',')
        .map(|name| match name.trim() {
            "postgres" => Ok(TestDialect::Postgres),
            "mysql" | "mariadb" => Ok(TestDialect::MySql),
            "sqlite" => Ok(TestDialect::Sqlite),
            other => Err(anyhow::anyhow!("BENCH_DIALECTS: unknown dialect {other:?}")),
        })
        .collect::<Result<_>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let prefill: Option<Vec<u64>> = std::env::var("BENCH_PREFILL").ok().map(|list| {
        list.split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("BENCH_PREFILL: a comma-separated list of row counts")
            })
            .collect()
    });
    runtime.block_on(async move {
        let amqp_url = colloquy_testkit::amqp_url().await;
        if let Some(sizes) = prefill {
            let events: usize = std::env::var("BENCH_EVENTS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(100_000);
            return growth_curve(&amqp_url, events, &sizes).await;
        }
        let bodies = workload(events);
        let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
        println!("consumer drain: {events} events of {mean} bytes on average");

        let mut postgres_rate = None;
        let mut summary = Vec::new();
        for dialect in dialects {
            let name = dialect_name(dialect);
            let raw = raw_drain(&amqp_url, &bodies, dialect).await?;
            println!("{name}: raw lapin + multi-row insert baseline: {raw:>8.0} events/s");
            let (ours, _) = our_drain(&amqp_url, &bodies, dialect, false, None).await?;
            println!("{name}: colloquy consume:                     {ours:>8.0} events/s");
            let raw_again = raw_drain(&amqp_url, &bodies, dialect).await?;
            println!("{name}: baseline again (drift check):         {raw_again:>8.0} events/s");
            let ratio = ours / ((raw + raw_again) / 2.0);
            println!("{name}: ratio ours / mean baseline:           {ratio:>8.2}");
            summary.push(format!(
                "{name}: baseline {raw:.0} / {raw_again:.0}, ours {ours:.0} events/s, ratio {ratio:.2}"
            ));
            if dialect == TestDialect::Postgres {
                postgres_rate = Some(ours);
                let (analytics, rebuild) = our_drain(&amqp_url, &bodies, dialect, true, None).await?;
                let ratio = analytics / ours;
                println!("{name}: colloquy consume --analytics:         {analytics:>8.0} events/s");
                println!("{name}: ratio analytics / ours:               {ratio:>8.2}  (one user message per conversation per batch: the worst case)");
                summary.push(format!("{name}: --analytics {analytics:.0} events/s, ratio to ours {ratio:.2} (worst case)"));
                if let Some(rebuild) = rebuild {
                    println!("{name}: analytics rebuild (from scratch, {} user messages): {rebuild:.1} s per million events", bodies.len());
                }
                // The same comparison on Rasa-shaped turns (a save's events together), with the rebuild.
                let turns = turn_workload(bodies.len());
                let (plain, _) = our_drain(&amqp_url, &turns, dialect, false, None).await?;
                let (analytics, rebuild) = our_drain(&amqp_url, &turns, dialect, true, None).await?;
                let ratio = analytics / plain;
                println!("{name}: turns: colloquy consume:              {plain:>8.0} events/s");
                println!("{name}: turns: colloquy consume --analytics:  {analytics:>8.0} events/s");
                println!("{name}: turns: ratio analytics / ours:        {ratio:>8.2}");
                summary.push(format!("{name}: turns: ours {plain:.0}, --analytics {analytics:.0} events/s, ratio {ratio:.2}"));
                if let Some(rebuild) = rebuild {
                    println!("{name}: analytics rebuild (from scratch, {} events of turns): {rebuild:.1} s per million events", turns.len());
                    summary.push(format!("{name}: analytics rebuild {rebuild:.1} s per million events"));
                }
            }
        }
        println!("summary:");
        for line in &summary {
            println!("  {line}");
        }

        if latency_secs > 0 {
            // Half of our measured PostgreSQL maximum, unless BENCH_LATENCY_RATE names a rate.
            let rate = match std::env::var("BENCH_LATENCY_RATE").ok().and_then(|r| r.parse().ok()) {
                Some(rate) => rate,
                None => match postgres_rate {
                    Some(ours) => ours / 2.0,
                    None => our_drain(&amqp_url, &bodies, TestDialect::Postgres, false, None).await?.0 / 2.0,
                },
            };
            let (p50, p99, max) = raw_latency(&amqp_url, rate, Duration::from_secs(latency_secs)).await?;
            println!("latency at {rate:.0} events/s, raw baseline (5 ms batch wait), publish to commit: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
            let (p50, p99, max) = latency(&amqp_url, rate, Duration::from_secs(latency_secs)).await?;
            println!("latency at {rate:.0} events/s, colloquy consume, publish to commit: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
        }
        Ok(())
    })
}

fn dialect_name(dialect: TestDialect) -> &'static str {
    match dialect {
        TestDialect::Postgres => "PostgreSQL",
        TestDialect::MySql => "MariaDB",
        TestDialect::Sqlite => "SQLite",
    }
}

/// Rasa-shaped turns, as a tracker store's saves publish them: each save's events together (a user message,
/// the predicted action, its bot message, `action_listen`; a conversation's first save opens its session with
/// `action_session_start`, `session_started`, `action_listen`), the saves of 1000 conversations interleaved.
fn turn_workload(events: usize) -> Vec<Vec<u8>> {
    let mut bodies = Vec::with_capacity(events);
    let mut turn = 0usize;
    while bodies.len() < events {
        let sender = format!("bench-turns-{}", turn % CONVERSATIONS);
        let t = 1_700_000_000.0 + turn as f64 / 100.0;
        let meta = r#""metadata": {"model_id": "m1", "assistant_id": "a1"}"#;
        let action = |name: &str, offset: f64| {
            format!(
                r#"{{"sender_id": "{sender}", "event": "action", "timestamp": {:?}, {meta}, "name": "{name}", "policy": "TEDPolicy", "confidence": 0.98, "action_text": null, "hide_rule_turn": false}}"#,
                t + offset
            )
        };
        let mut save = Vec::new();
        if turn < CONVERSATIONS {
            save.push(action("action_session_start", 0.0));
            save.push(format!(
                r#"{{"sender_id": "{sender}", "event": "session_started", "timestamp": {:?}, {meta}}}"#,
                t + 0.0001
            ));
            save.push(action("action_listen", 0.0002));
        }
        save.push(format!(
            r#"{{"sender_id": "{sender}", "event": "user", "timestamp": {:?}, {meta}, "text": "I would like to book a table for two at an indian restaurant {turn}", "parse_data": {{"intent": {{"name": "request_restaurant", "confidence": 0.94}}, "entities": [{{"entity": "cuisine", "value": "indian", "start": 7, "end": 13}}], "text": "I would like to book a table", "message_id": "t{turn}", "metadata": {{}}}}, "input_channel": "rest", "message_id": "t{turn}"}}"#,
            t + 0.001
        ));
        save.push(action("utter_ask_time", 0.002));
        save.push(format!(
            r#"{{"sender_id": "{sender}", "event": "bot", "timestamp": {:?}, "metadata": {{"utter_action": "utter_ask_time", "model_id": "m1", "assistant_id": "a1"}}, "text": "Sure, which day and time would suit you? ({turn})", "data": {{"elements": null, "quick_replies": null, "buttons": null, "attachment": null, "image": null, "custom": null}}}}"#,
            t + 0.003
        ));
        save.push(action("action_listen", 0.004));
        bodies.extend(save.into_iter().map(String::into_bytes));
        turn += 1;
    }
    bodies.truncate(events);
    bodies
}

/// Rasa-shaped user messages (~500 bytes), one per conversation in turn: as many conversations interleaved as an
/// analytics batch holds events, so a full batch holds one event of each (the worst case for per-conversation
/// work such as analytics).
fn workload(events: usize) -> Vec<Vec<u8>> {
    let conversations = ConsumerOptions::ANALYTICS_BATCH_SIZE;
    (0..events)
        .map(|n| {
            let sender = format!("bench-{}", n % conversations);
            let t = 1_700_000_000.0 + n as f64 / 1000.0;
            format!(
                r#"{{"sender_id": "{sender}", "event": "user", "timestamp": {t:?}, "metadata": {{"model_id": "m1", "assistant_id": "a1"}}, "text": "I would like to book a table for two at an indian restaurant {n}", "parse_data": {{"intent": {{"name": "request_restaurant", "confidence": 0.94}}, "entities": [{{"entity": "cuisine", "value": "indian", "start": 7, "end": 13}}], "text": "I would like to book a table", "message_id": "m{n}", "metadata": {{}}}}, "input_channel": "rest", "message_id": "m{n}"}}"#
            )
            .into_bytes()
        })
        .collect()
}

struct Topology {
    connection: Connection,
    channel: Channel,
    exchange: String,
    queue: String,
}

async fn topology(amqp_url: &str) -> Result<Topology> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let exchange = unique_name("bench-exchange");
    let queue = unique_name("bench-queue");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Topology {
        connection,
        channel,
        exchange,
        queue,
    })
}

impl Topology {
    async fn delete(self) -> Result<()> {
        self.channel
            .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        self.channel
            .exchange_delete(self.exchange.as_str().into(), Default::default())
            .await?;
        self.connection.close(200, "done".into()).await?;
        Ok(())
    }
}

/// Fills the queue with `bodies` (persistent, confirmed, pipelined).
async fn fill(topology: &Topology, bodies: &[Vec<u8>]) -> Result<()> {
    topology
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    for chunk in bodies.chunks(1000) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for body in chunk {
            confirms.push(
                topology
                    .channel
                    .basic_publish(
                        topology.exchange.as_str().into(),
                        "".into(),
                        BasicPublishOptions::default(),
                        body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker refused a message");
        }
    }
    Ok(())
}

/// The rows in `events`, read through the storage layer (any dialect).
async fn count(database: &TestDatabase) -> Result<u64> {
    let db = Database::connect_lazy(&database.url, &ConnectOptions::default())?;
    let (events, _dead_letters) = db.table_counts().await?;
    db.close().await;
    Ok(events)
}

/// The drain rate into tables holding 0, each of `sizes`, then 0 again stored events.
async fn growth_curve(amqp_url: &str, events: usize, sizes: &[u64]) -> Result<()> {
    let legacy = std::env::var("BENCH_SCHEMA").is_ok_and(|schema| schema == "legacy");
    let bodies = workload(events);
    let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!(
        "consumer drain growth curve: {events} events of {mean} bytes on average, {} schema",
        if legacy {
            "legacy (unique event_id, two sender_id indexes)"
        } else {
            "current"
        }
    );
    let mut points = vec![0];
    points.extend_from_slice(sizes);
    points.push(0);
    let mut empty = None;
    for stored in points {
        let (rate, _) = our_drain(
            amqp_url,
            &bodies,
            TestDialect::Postgres,
            false,
            Some(stored),
        )
        .await?;
        let base = *empty.get_or_insert(rate);
        println!(
            "stored {stored:>11}: {rate:>8.0} events/s  ratio to the first empty table {:>5.2}",
            rate / base
        );
    }
    Ok(())
}

/// Fills the `events` table of `database` with `rows` generated inside PostgreSQL (see the module's notes).
async fn prefill(database: &TestDatabase, rows: u64, legacy: bool) -> Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await?;
    if legacy {
        for statement in [
            "DROP INDEX IF EXISTS events_event_key",
            "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id_key ON events (event_id)",
            "CREATE INDEX IF NOT EXISTS events_sender_id_id ON events (sender_id, id)",
        ] {
            sqlx::query(statement).execute(&pool).await?;
        }
    }
    let started = Instant::now();
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
         WHERE schemaname = current_schema() AND tablename = 'events' AND indexname <> 'events_pkey'",
    )
    .fetch_all(&pool)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(&pool)
            .await?;
    }
    const CHUNK: u64 = 1_000_000;
    let mut from = 0;
    while from < rows {
        let to = (from + CHUNK).min(rows);
        // A turn of Rasa's events in rotation: user, action, bot, slot (about 240 bytes of data on
        // average, as a real tracker's mix is).
        sqlx::query(
            r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, action_name, data, event_id,
                                   event_key)
               SELECT sender, (ARRAY['user', 'action', 'bot', 'slot'])[g % 4 + 1], ts,
                      CASE WHEN g % 4 = 0 THEN 'request_restaurant' END,
                      CASE g % 4 WHEN 1 THEN 'utter_greet' WHEN 3 THEN 'cuisine' END,
                      CASE g % 4
                      WHEN 0 THEN format('{"event": "user", "timestamp": %s, "metadata": {"model_id": "m1", "assistant_id": "a1"}, "text": "I would like to book a table for two at an indian restaurant %s", "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.94}, "entities": [{"entity": "cuisine", "value": "indian", "start": 7, "end": 13}], "text": "I would like to book a table", "message_id": "m%s", "metadata": {}}, "input_channel": "rest", "message_id": "m%s"}', ts, g, g, g)
                      WHEN 1 THEN format('{"event": "action", "timestamp": %s, "metadata": {"model_id": "m1", "assistant_id": "a1"}, "name": "utter_greet", "policy": "RulePolicy", "confidence": 1.0, "action_text": null, "hide_rule_turn": false}', ts)
                      WHEN 2 THEN format('{"event": "bot", "timestamp": %s, "metadata": {"utter_action": "utter_greet", "model_id": "m1", "assistant_id": "a1"}, "text": "Sure, which day and time would suit you? (%s)", "data": {"elements": null, "quick_replies": null, "buttons": null, "attachment": null, "image": null, "custom": null}}', ts, g)
                      ELSE format('{"event": "slot", "timestamp": %s, "name": "cuisine", "value": "indian"}', ts)
                      END,
                      id,
                      int8send(floor(ts * 1000000)::int8) || substring(sha256(convert_to(id, 'UTF8')) FROM 1 FOR 8)
               FROM (SELECT g, 'prefill-' || (g / 40) AS sender, 1690000000 + g * 0.001 AS ts,
                            encode(sha256(convert_to('prefill' || g, 'UTF8')), 'hex') AS id
                     FROM generate_series($1::int8, $2::int8 - 1) g) generated
               ORDER BY g"#,
        )
        .bind(from as i64)
        .bind(to as i64)
        .execute(&pool)
        .await?;
        from = to;
    }
    for (_, definition) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(definition.clone()))
            .execute(&pool)
            .await?;
    }
    sqlx::query("VACUUM (ANALYZE) events")
        .execute(&pool)
        .await?;
    sqlx::query("CHECKPOINT").execute(&pool).await?;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('events'))")
            .fetch_one(&pool)
            .await?;
    println!(
        "  prefilled {rows} rows in {:.0} s; table with indexes: {size}",
        started.elapsed().as_secs_f64()
    );
    pool.close().await;
    Ok(())
}

/// What the SQL tracker store's `retrieve` and `keys()` cost on a table of `stored` events: the storage calls
/// they make (`read_conversation` of the latest session; `sender_ids`), timed on prefilled conversations
/// (40 events each) spread over the table.
async fn tracker_store_reads(database: &Database, stored: u64) -> Result<()> {
    let conversations = (stored / 40).max(1);
    let mut times = Vec::new();
    for n in 0..200u64 {
        let sender = format!("prefill-{}", n * 7919 % conversations);
        let started = Instant::now();
        let read = database.read_conversation(&sender, true).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            read.is_some_and(|rows| !rows.rows.is_empty()),
            "conversation {sender}"
        );
    }
    let (p50, p99, max) = percentiles(times);
    println!(
        "  retrieve (read_conversation, latest session) of 200 conversations: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    let started = Instant::now();
    let keys = database.sender_ids().await?;
    println!(
        "  keys() (sender_ids): {} conversations in {:.2} s",
        keys.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Our consumer draining a full queue into `dialect`: events per second; with `analytics` (`colloquy consume
/// --analytics`), also the seconds `analytics rebuild` takes per million events, timed from scratch on the
/// drained database. `prefilled`: the growth curve's point — the table gets that many generated rows, then is
/// vacuumed, analysed and checkpointed (0 included, so that every point starts from the same state).
async fn our_drain(
    amqp_url: &str,
    bodies: &[Vec<u8>],
    dialect: TestDialect,
    analytics: bool,
    prefilled: Option<u64>,
) -> Result<(f64, Option<f64>)> {
    let database = dialect.fresh_database().await;
    let sink = Database::connect_lazy(&database.url, &ConnectOptions::default())?;
    sink.migrate(Schema::Events).await?;
    if analytics {
        sink.migrate_analytics().await?;
    }
    let legacy = std::env::var("BENCH_SCHEMA").is_ok_and(|schema| schema == "legacy");
    let stored = prefilled.unwrap_or(0);
    if prefilled.is_some() || legacy {
        anyhow::ensure!(
            dialect == TestDialect::Postgres,
            "the prefill is PostgreSQL's"
        );
        prefill(&database, stored, legacy).await?;
    }
    // The queue is filled last, just before the drain, so that every run starts with the broker in the same
    // state (a drain started seconds after the fill, as one after a long prefill, ran 1.7x faster than one
    // started at once: RabbitMQ was still busy with the messages it had just taken).
    let topology = topology(amqp_url).await?;
    fill(&topology, bodies).await?;
    let config = AmqpConfig::from_url(amqp_url)?
        .with_exchange(&topology.exchange)?
        .with_queues([topology.queue.as_str()])?
        .with_prefetch(
            std::num::NonZeroU16::new((2 * ConsumerOptions::default_batch_size(analytics)) as u16)
                .expect("non-zero"),
        );
    let counting = Arc::new(CountingSink {
        inner: sink.clone(),
        stored: Default::default(),
        latencies: None,
        analytics: analytics
            .then(|| AnalyticsSink::new(sink.clone(), AnalyticsSettings::default())),
    });
    let consumer = Consumer::new(
        counting.clone(),
        ConsumerOptions {
            batch_size: ConsumerOptions::default_batch_size(analytics),
            batch_timeout: BATCH_WAIT,
            ..Default::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let subscription = AmqpSubscription::connect(config).await?;
    let running = tokio::spawn(consumer.run(Box::new(subscription), async move {
        let _ = stopped.await;
    }));
    wait_until(
        "the consumer to drain the queue",
        Duration::from_secs(600),
        || async { counting.stored() >= bodies.len() },
    )
    .await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    running.await??;
    let rebuild = if analytics {
        // `colloquy analytics rebuild --from-scratch`: what the command runs, 200 conversations a transaction.
        sink.reset_analytics().await?;
        let started = Instant::now();
        let senders = sink.sender_ids().await?;
        let mut derived = 0;
        for chunk in senders.chunks(200) {
            derived += sink
                .derive_analytics(chunk, &AnalyticsSettings::default())
                .await?
                .events;
        }
        anyhow::ensure!(
            derived == bodies.len() as u64,
            "rebuild derived {derived} events"
        );
        Some(started.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64)
    } else {
        None
    };
    if stored > 0 {
        tracker_store_reads(&sink, stored).await?;
    }
    sink.close().await;
    anyhow::ensure!(
        count(&database).await? == bodies.len() as u64 + stored,
        "row count"
    );
    database.drop_database().await;
    topology.delete().await?;
    Ok((bodies.len() as f64 / elapsed.as_secs_f64(), rebuild))
}

/// The baseline: a minimal raw lapin consumer that inserts batches of up to our plain batch size (or 50 ms)
/// with one multi-row statement (PostgreSQL: UNNEST + ON CONFLICT DO NOTHING; MariaDB: INSERT ... VALUES;
/// SQLite: INSERT ... VALUES + ON CONFLICT DO NOTHING), commits, then sends one multiple-ack.
async fn raw_drain(amqp_url: &str, bodies: &[Vec<u8>], dialect: TestDialect) -> Result<f64> {
    let topology = topology(amqp_url).await?;
    fill(&topology, bodies).await?;
    let RawConsumer {
        database,
        pool,
        connection,
        channel,
        mut consumer,
    } = raw_consumer(amqp_url, &topology.queue, dialect).await?;
    let started = Instant::now();
    raw_consume(
        &pool,
        &channel,
        &mut consumer,
        BATCH_WAIT,
        bodies.len(),
        None,
    )
    .await?;
    let elapsed = started.elapsed();
    connection.close(200, "done".into()).await?;
    pool.close().await;
    anyhow::ensure!(count(&database).await? == bodies.len() as u64, "row count");
    database.drop_database().await;
    topology.delete().await?;
    Ok(bodies.len() as f64 / elapsed.as_secs_f64())
}

/// The baseline's connection: one, to the database of the dialect under test.
enum RawPool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

impl RawPool {
    async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::MySql(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }

    /// One transaction: the batch in one multi-row statement, then COMMIT.
    async fn insert(&self, batch: &[RawRow]) -> Result<()> {
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, data, event_id)
                       SELECT * FROM UNNEST($1::varchar[], $2::varchar[], $3::float8[], $4::varchar[], $5::text[], $6::text[])
                       ON CONFLICT DO NOTHING"#,
                )
                .bind(batch.iter().map(|row| row.0.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|row| row.1.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|row| row.2).collect::<Vec<_>>())
                .bind(batch.iter().map(|row| row.3.as_deref()).collect::<Vec<_>>())
                .bind(batch.iter().map(|row| row.4.as_str()).collect::<Vec<_>>())
                .bind(batch.iter().map(|row| row.5.as_str()).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Self::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let mut insert: QueryBuilder<MySql> = QueryBuilder::new(
                    "INSERT INTO events (sender_id, type_name, `timestamp`, intent_name, data, event_id) ",
                );
                insert.push_values(batch, |mut values, row| {
                    values
                        .push_bind(row.0.as_str())
                        .push_bind(row.1.as_str())
                        .push_bind(row.2)
                        .push_bind(row.3.as_deref())
                        .push_bind(row.4.as_str())
                        .push_bind(row.5.as_str());
                });
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                    r#"INSERT INTO events (sender_id, type_name, "timestamp", intent_name, data, event_id) "#,
                );
                insert.push_values(batch, |mut values, row| {
                    values
                        .push_bind(row.0.as_str())
                        .push_bind(row.1.as_str())
                        .push_bind(row.2)
                        .push_bind(row.3.as_deref())
                        .push_bind(row.4.as_str())
                        .push_bind(row.5.as_str());
                });
                insert.push(" ON CONFLICT (event_id) DO NOTHING");
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

/// A baseline row: sender_id, type_name, timestamp, intent_name, data, event_id.
type RawRow = (String, String, f64, Option<String>, String, String);

/// What the raw baseline consumer runs on: a fresh migrated database, one pool connection, and a lapin
/// consumer of `queue` with the same prefetch as ours.
struct RawConsumer {
    database: TestDatabase,
    pool: RawPool,
    connection: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
}

async fn raw_consumer(amqp_url: &str, queue: &str, dialect: TestDialect) -> Result<RawConsumer> {
    let database = dialect.fresh_database().await;
    let migrate = Database::connect_lazy(&database.url, &ConnectOptions::default())?;
    migrate.migrate(Schema::Events).await?;
    migrate.close().await;
    let pool = match dialect {
        TestDialect::Postgres => RawPool::Postgres(
            PgPoolOptions::new()
                .max_connections(1)
                .connect(&database.url)
                .await?,
        ),
        TestDialect::MySql => RawPool::MySql(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(&database.url)
                .await?,
        ),
        TestDialect::Sqlite => {
            // The same durability as ours: WAL, a commit synced before it returns.
            let options = database
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
            RawPool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?,
            )
        }
    };
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(
            (2 * ConsumerOptions::DEFAULT_BATCH_SIZE) as u16,
            BasicQosOptions::default(),
        )
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "raw-baseline".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(RawConsumer {
        database,
        pool,
        connection,
        channel,
        consumer,
    })
}

/// The baseline consumer: batches of up to our plain batch size or `batch_wait`, one multi-row insert in a
/// transaction, commit, one multiple-ack; until `total` events are stored. With `latencies`, records
/// publish-to-commit times (the event timestamps are the publish times).
async fn raw_consume(
    pool: &RawPool,
    channel: &Channel,
    consumer: &mut lapin::Consumer,
    batch_wait: Duration,
    total: usize,
    mut latencies: Option<&mut Vec<f64>>,
) -> Result<()> {
    let mut stored = 0usize;
    while stored < total {
        let mut batch: Vec<RawRow> = Vec::with_capacity(ConsumerOptions::DEFAULT_BATCH_SIZE);
        let mut last_tag = None;
        let batch_deadline = tokio::time::Instant::now() + batch_wait;
        while batch.len() < ConsumerOptions::DEFAULT_BATCH_SIZE {
            let delivery = match tokio::time::timeout_at(batch_deadline, consumer.next()).await {
                Ok(Some(delivery)) => delivery?,
                Ok(None) => anyhow::bail!("consumer closed"),
                Err(_) => break,
            };
            let mut value: serde_json::Value = serde_json::from_slice(&delivery.data)?;
            let object = value.as_object_mut().context("object")?;
            let sender = object
                .shift_remove("sender_id")
                .and_then(|s| s.as_str().map(str::to_owned))
                .context("sender")?;
            let type_name = object["event"].as_str().context("event")?.to_owned();
            let timestamp = object["timestamp"].as_f64().unwrap_or_default();
            let intent = value
                .pointer("/parse_data/intent/name")
                .and_then(|n| n.as_str())
                .map(str::to_owned);
            let id = format!("{sender}:{}", delivery.delivery_tag);
            batch.push((sender, type_name, timestamp, intent, value.to_string(), id));
            last_tag = Some(delivery.delivery_tag);
        }
        let Some(last_tag) = last_tag else { continue };
        pool.insert(&batch).await?;
        if let Some(latencies) = latencies.as_deref_mut() {
            let now = unix_now();
            latencies.extend(batch.iter().map(|row| (now - row.2) * 1000.0));
        }
        channel
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await?;
        stored += batch.len();
    }
    Ok(())
}

/// Wraps the database: counts stored events and, when asked, records publish-to-commit latencies (the event
/// timestamps are the publish times).
struct CountingSink {
    inner: Database,
    stored: std::sync::atomic::AtomicUsize,
    latencies: Option<Mutex<Vec<f64>>>,
    /// With `--analytics`: store through this sink instead.
    analytics: Option<AnalyticsSink>,
}

impl CountingSink {
    fn stored(&self) -> usize {
        self.stored.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl EventSink for CountingSink {
    async fn store(
        &self,
        events: &[EventRow],
        dead_letters: &[DeadLetterRow],
    ) -> colloquy_consumer::Result<u64> {
        let inserted = match &self.analytics {
            Some(sink) => sink.store(events, dead_letters).await?,
            None => self.inner.store(events, dead_letters).await?,
        };
        if let Some(latencies) = &self.latencies {
            let now = unix_now();
            let mut latencies = latencies.lock().expect("latency lock");
            latencies.extend(
                events
                    .iter()
                    .filter_map(|row| row.timestamp)
                    .map(|sent| (now - sent) * 1000.0),
            );
        }
        self.stored
            .fetch_add(events.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(inserted)
    }

    async fn ping(&self) -> colloquy_consumer::Result<()> {
        EventSink::ping(&self.inner).await
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Publishes at `rate` events/s for `duration`, each event's timestamp its publish time; returns how many.
/// Every millisecond it publishes what the rate owes by then. Confirms are awaited by another task, so that
/// waiting for them never stalls the stream into bursts.
async fn publish_steadily(topology: &Topology, rate: f64, duration: Duration) -> Result<usize> {
    topology
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let (confirmed_tx, mut confirmed_rx) =
        tokio::sync::mpsc::unbounded_channel::<lapin::PublisherConfirm>();
    let confirmer = tokio::spawn(async move {
        while let Some(confirm) = confirmed_rx.recv().await {
            confirm.await?;
        }
        anyhow::Ok(())
    });
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut sent = 0usize;
    let total = (rate * duration.as_secs_f64()) as usize;
    while sent < total {
        interval.tick().await;
        let owed = ((rate * started.elapsed().as_secs_f64()) as usize).min(total);
        while sent < owed {
            let body = format!(
                r#"{{"sender_id": "lat-{}", "event": "user", "timestamp": {:?}, "metadata": {{}}, "text": "hello {sent}", "parse_data": {{"intent": {{"name": "greet", "confidence": 0.9}}, "entities": []}}, "input_channel": "rest", "message_id": "m{sent}"}}"#,
                sent % 100,
                unix_now()
            );
            let confirm = topology
                .channel
                .basic_publish(
                    topology.exchange.as_str().into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?;
            let _ = confirmed_tx.send(confirm);
            sent += 1;
        }
    }
    drop(confirmed_tx);
    confirmer.await??;
    Ok(sent)
}

/// p50, p99 and max of latencies in milliseconds.
fn percentiles(mut latencies: Vec<f64>) -> (f64, f64, f64) {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99), *latencies.last().unwrap_or(&0.0))
}

/// The baseline's latency: the raw consumer with a 5 ms batch wait, under the same steady stream.
async fn raw_latency(amqp_url: &str, rate: f64, duration: Duration) -> Result<(f64, f64, f64)> {
    let topology = topology(amqp_url).await?;
    let RawConsumer {
        database,
        pool,
        connection,
        channel,
        mut consumer,
    } = raw_consumer(amqp_url, &topology.queue, TestDialect::Postgres).await?;
    let expected = (rate * duration.as_secs_f64()) as usize;
    let draining = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(expected);
        raw_consume(
            &pool,
            &channel,
            &mut consumer,
            Duration::from_millis(5),
            expected,
            Some(&mut latencies),
        )
        .await?;
        pool.close().await;
        connection.close(200, "done".into()).await?;
        anyhow::Ok(latencies)
    });
    let sent = publish_steadily(&topology, rate, duration).await?;
    anyhow::ensure!(sent == expected, "published {sent}, expected {expected}");
    let latencies = tokio::time::timeout(Duration::from_secs(60), draining).await???;
    database.drop_database().await;
    topology.delete().await?;
    Ok(percentiles(latencies))
}

/// Publishes at `rate` events/s for `duration` while our consumer runs; returns p50, p99 and max latency (ms).
async fn latency(amqp_url: &str, rate: f64, duration: Duration) -> Result<(f64, f64, f64)> {
    let topology = topology(amqp_url).await?;
    let database = fresh_database().await;
    let sink = Database::connect_lazy(&database.url, &ConnectOptions::default())?;
    sink.migrate(Schema::Events).await?;
    let config = AmqpConfig::from_url(amqp_url)?
        .with_exchange(&topology.exchange)?
        .with_queues([topology.queue.as_str()])?
        .with_prefetch(
            std::num::NonZeroU16::new((2 * ConsumerOptions::DEFAULT_BATCH_SIZE) as u16)
                .expect("non-zero"),
        );
    let counting = Arc::new(CountingSink {
        inner: sink.clone(),
        stored: Default::default(),
        latencies: Some(Mutex::new(Vec::new())),
        analytics: None,
    });
    let consumer = Consumer::new(
        counting.clone(),
        ConsumerOptions {
            batch_size: ConsumerOptions::DEFAULT_BATCH_SIZE,
            batch_timeout: BATCH_WAIT,
            ..Default::default()
        },
    );
    let metrics = consumer.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let subscription = AmqpSubscription::connect(config).await?;
    let running = tokio::spawn(consumer.run(Box::new(subscription), async move {
        let _ = stopped.await;
    }));

    let sent = publish_steadily(&topology, rate, duration).await?;
    wait_until(
        "the consumer to store every event",
        Duration::from_secs(60),
        || async { counting.stored() >= sent },
    )
    .await;
    let _ = stop.send(());
    running.await??;
    if std::env::var_os("BENCH_DEBUG").is_some() {
        println!("{}", metrics.encode());
    }
    let latencies = counting
        .latencies
        .as_ref()
        .expect("recording")
        .lock()
        .expect("lock")
        .clone();
    let result = percentiles(latencies);
    sink.close().await;
    database.drop_database().await;
    topology.delete().await?;
    Ok(result)
}
