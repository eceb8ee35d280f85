//! The analytics tables through the storage layer, on PostgreSQL, MySQL/MariaDB and SQLite: the migrations
//! (idempotent, applied only on request), the consumer's write path (`store_batch_with_analytics`: events
//! and derived rows in one transaction, any split into batches and any redelivery), the rebuild path
//! (`reset_analytics` + `derive_analytics`), the plain writer (`write_analytics_rows` of a one-go
//! derivation) — all three give the same tables — and each metric view's numbers, worked out by hand for a
//! small data set. A property test on SQLite checks incremental = rebuild for any split.

use colloquy_analytics::{Rows, Settings, derive_conversation};
use colloquy_events::{Event, EventId, EventKind, Intent};
use colloquy_storage::{ConnectOptions, Database, EventRow, Schema};
use colloquy_testkit::TestDialect;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, Connection};

const TABLES: [&str; 9] = [
    "rasa_sender",
    "rasa_session",
    "rasa_turn",
    "rasa_event",
    "rasa_user_message",
    "rasa_bot_message",
    "rasa_action",
    "rasa_slot",
    "rasa_session_slot_state",
];

fn event(kind: EventKind, t: f64) -> Event {
    Event::new(kind).with_timestamp(t).unwrap()
}

fn user(intent: &str, channel: &str, t: f64) -> Event {
    let mut kind = EventKind::user(format!("text of {intent}"));
    if let EventKind::User(u) = &mut kind {
        u.input_channel = Some(channel.into());
        u.parse_data.as_mut().unwrap().intent =
            Some(Intent::new(intent, serde_json::Number::from_f64(0.75)));
    }
    event(kind, t)
}

fn bot(template: &str, t: f64) -> Event {
    let mut metadata = Map::new();
    metadata.insert("utter_action".into(), template.into());
    metadata.insert("model_id".into(), "m1".into());
    event(EventKind::bot("words"), t).with_metadata(metadata)
}

fn action(name: &str, t: f64) -> Event {
    event(EventKind::action(name), t)
}

/// Three sessions: alice's first escalates, her second ends inside a form (requested_slot set), bob's falls
/// back once and ends with the abandonment template `utter_goodbye`.
fn data_set() -> Vec<(&'static str, Vec<Event>)> {
    let day1 = 1_700_000_000.0; // 2023-11-14 UTC
    let day2 = day1 + 86_400.0;
    vec![
        (
            "alice",
            vec![
                action("action_session_start", day1),
                action("action_listen", day1),
                user("greet", "rest", day1 + 1.0),
                bot("utter_greet", day1 + 3.0),
                action("action_listen", day1 + 3.0),
                user("human_handoff", "rest", day1 + 10.0),
                action("action_human_handoff", day1 + 10.5),
                event(
                    EventKind::slot("session_started_metadata", json!({"a": 1})),
                    day2,
                ),
                action("action_session_start", day2),
                user("inform", "rest", day2 + 1.0),
                event(EventKind::slot("requested_slot", "cuisine"), day2 + 1.0),
                bot("utter_ask_cuisine", day2 + 2.0),
            ],
        ),
        (
            "bob",
            vec![
                action("action_session_start", day2),
                user("nlu_fallback", "socketio", day2 + 5.0),
                action("action_default_fallback", day2 + 5.0),
                bot("utter_default", day2 + 6.0),
                user("greet", "socketio", day2 + 7.0),
                bot("utter_goodbye", day2 + 11.0),
            ],
        ),
    ]
}

/// The event row of `sender`'s event at `position`, with a stable event id.
fn row(sender: &str, position: usize, event: &Event) -> EventRow {
    EventRow::new(
        sender,
        event,
        &EventId::from(format!("{sender}-{position}")),
    )
    .unwrap()
}

/// Every table's rows as text (each column rendered by the database), sorted: to compare two states.
async fn dump(dialect: TestDialect, url: &str) -> Vec<String> {
    let mut all = Vec::new();
    for table in TABLES {
        let rows: Vec<String> = match dialect {
            TestDialect::Postgres => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT t::text FROM {table} t ORDER BY 1"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap()
            }
            TestDialect::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                let columns: String = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT group_concat('quote(' || name || ')', ' || '','' || ') FROM pragma_table_info('{table}')"
                )))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT {columns} FROM {table} ORDER BY id"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap()
            }
            TestDialect::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
                let columns: String = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT GROUP_CONCAT(CONCAT('QUOTE(', column_name, ')') ORDER BY ordinal_position SEPARATOR ', \\',\\', ') \
                     FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}'"
                )))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT CONCAT({columns}) FROM {table} ORDER BY id"
                )))
                .fetch_all(&mut conn)
                .await
                .unwrap()
            }
        };
        all.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
    }
    all
}

async fn exec(dialect: TestDialect, url: &str, sql: &str) {
    let sql = AssertSqlSafe(sql.to_owned());
    match dialect {
        TestDialect::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        TestDialect::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        TestDialect::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// Whether the table exists (to check that a plain consumer database gets no analytics tables).
async fn table_exists(dialect: TestDialect, url: &str, table: &str) -> bool {
    let count: i64 = match dialect {
        TestDialect::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = $1",
            )
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap()
        }
        TestDialect::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = ?")
                .bind(table)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        TestDialect::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
            )
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap()
        }
    };
    count > 0
}

/// The data set through each write path; all give the same tables; then the views.
async fn paths_agree_and_views_answer(dialect: TestDialect) {
    let guard = dialect.fresh_database().await.guard();
    let url = guard.url.clone();
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    db.migrate(Schema::Events).await.unwrap();
    assert!(
        !table_exists(dialect, &url, "rasa_event").await,
        "{dialect:?}: a plain consumer database gets no analytics tables"
    );
    db.migrate_analytics().await.unwrap();
    db.migrate_analytics().await.unwrap(); // idempotent
    db.migrate(Schema::TrackerStore).await.unwrap(); // the sets ignore each other
    exec(
        dialect,
        &url,
        "INSERT INTO colloquy_metric_name (metric, kind, name) VALUES ('abandonment', 'template', 'utter_goodbye')",
    )
    .await;
    let settings = Settings {
        environment: Some("production".into()),
    };

    // The consumer's path: each conversation in three batches, the two conversations interleaved, every
    // batch after the first redelivering two events, and the whole stream replayed at the end.
    let conversations = data_set();
    let mut batches: Vec<Vec<EventRow>> = vec![Vec::new(); 3];
    for (sender, events) in &conversations {
        let third = events.len() / 3;
        for (b, batch) in batches.iter_mut().enumerate() {
            let start = (b * third).saturating_sub(if b == 0 { 0 } else { 2 });
            let end = if b == 2 {
                events.len()
            } else {
                (b + 1) * third
            };
            batch.extend((start..end).map(|i| row(sender, i, &events[i])));
        }
    }
    let mut inserted = 0;
    for batch in &batches {
        inserted += db
            .store_batch_with_analytics(batch, &[], &settings)
            .await
            .unwrap();
    }
    assert_eq!(inserted, 18);
    let incremental = dump(dialect, &url).await;
    assert_eq!(
        incremental
            .iter()
            .filter(|r| r.starts_with("rasa_event:"))
            .count(),
        18,
        "{dialect:?}"
    );
    let replay: Vec<EventRow> = batches.concat();
    assert_eq!(
        db.store_batch_with_analytics(&replay, &[], &settings)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        dump(dialect, &url).await,
        incremental,
        "{dialect:?}: replay"
    );

    // The rebuild path: from scratch, twice (idempotent).
    let senders = db.sender_ids().await.unwrap();
    db.reset_analytics().await.unwrap();
    assert!(dump(dialect, &url).await.is_empty());
    let progress = db.derive_analytics(&senders, &settings).await.unwrap();
    assert_eq!((progress.conversations, progress.events), (2, 18));
    let progress = db.derive_analytics(&senders, &settings).await.unwrap();
    assert_eq!(
        progress.events, 0,
        "{dialect:?}: a second rebuild derives nothing"
    );
    assert_eq!(
        dump(dialect, &url).await,
        incremental,
        "{dialect:?}: rebuild"
    );

    // A derivation that finds its rows already written (the states deleted by hand, or another derivation
    // of the same conversations that got there first) writes every row again and changes nothing.
    exec(dialect, &url, "DELETE FROM colloquy_analytics_state").await;
    let progress = db.derive_analytics(&senders, &settings).await.unwrap();
    assert_eq!((progress.conversations, progress.events), (2, 18));
    assert_eq!(
        dump(dialect, &url).await,
        incremental,
        "{dialect:?}: derived again over its own rows"
    );

    // A one-go derivation written over it changes nothing (same ids, same values).
    let mut rows = Rows::default();
    for (sender, events) in &conversations {
        rows.extend(derive_conversation(&settings, sender, events));
    }
    db.write_analytics_rows(&rows).await.unwrap();
    assert_eq!(
        dump(dialect, &url).await,
        incremental,
        "{dialect:?}: one go"
    );

    check_views(dialect, &url).await;
    db.close().await;
    drop(guard);
}

async fn check_views(dialect: TestDialect, url: &str) {
    macro_rules! on {
        ($conn:ty, $double:literal, $text:literal) => {{
            let mut db = <$conn>::connect(url).await.unwrap();
            let first: String = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT CAST(timestamp AS {}) FROM rasa_user_message ORDER BY timestamp LIMIT 1",
                $text
            )))
            .fetch_one(&mut db)
            .await
            .unwrap();
            assert!(first.starts_with("2023-11-14 22:13:21"), "{dialect:?}: UTC timestamps: {first}");
            let per_day: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT CAST(day AS {}), sessions FROM colloquy_sessions_per_day ORDER BY day",
                $text
            )))
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert_eq!(per_day, [("2023-11-14".into(), 1), ("2023-11-15".into(), 2)]);
            let per_channel: Vec<(String, i64)> = sqlx::query_as(
                "SELECT channel, sessions FROM colloquy_sessions_per_channel ORDER BY channel",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert_eq!(per_channel, [("rest".into(), 2), ("socketio".into(), 1)]);
            let senders: (i64, i64, f64) =
                sqlx::query_as("SELECT senders, sessions, sessions_per_sender FROM colloquy_senders")
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            assert_eq!(senders, (2, 3, 1.5));
            let turns: Vec<i64> = sqlx::query_scalar(
                "SELECT turns FROM colloquy_turns_per_session ORDER BY timestamp, turns",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert_eq!(turns, [2, 1, 2]);
            let top: Vec<(String, i64)> = sqlx::query_as(
                "SELECT intent, messages FROM colloquy_top_intents ORDER BY messages DESC, intent LIMIT 2",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert_eq!(top, [("greet".into(), 2), ("human_handoff".into(), 1)]);
            let response: f64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT CAST(AVG(seconds) AS {}) FROM colloquy_bot_response_time",
                $double
            )))
            .fetch_one(&mut db)
            .await
            .unwrap();
            assert!((response - 2.0).abs() < 1e-3, "{dialect:?}: {response}");
            let rates: (f64, f64, f64, f64) = sqlx::query_as(
                "SELECT e.escalation_rate, a.abandonment_rate, c.containment_rate, f.fallback_rate \
                 FROM colloquy_escalation_rate e, colloquy_abandonment_rate a, colloquy_containment_rate c, \
                 colloquy_fallback_rate f",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            assert_eq!(rates, (1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0 / 5.0), "{dialect:?}");
        }};
    }
    match dialect {
        TestDialect::Postgres => on!(sqlx::PgConnection, "DOUBLE PRECISION", "TEXT"),
        TestDialect::Sqlite => on!(sqlx::SqliteConnection, "REAL", "TEXT"),
        TestDialect::MySql => on!(sqlx::MySqlConnection, "DOUBLE", "CHAR"),
    }
}

#[tokio::test]
async fn paths_agree_and_views_answer_on_postgresql() {
    paths_agree_and_views_answer(TestDialect::Postgres).await;
}

#[tokio::test]
async fn paths_agree_and_views_answer_on_sqlite() {
    paths_agree_and_views_answer(TestDialect::Sqlite).await;
}

#[tokio::test]
async fn paths_agree_and_views_answer_on_mysql() {
    paths_agree_and_views_answer(TestDialect::MySql).await;
}

/// PostgreSQL stores a batch with analytics as concurrent transactions, each holding whole conversations.
/// One of them failing (here: a row the database refuses) leaves the others committed; storing the batch
/// again, as the consumer's retry and the redelivery do, stores and derives every event once: the tables are
/// those a rebuild computes.
#[tokio::test]
async fn a_batch_that_fails_in_part_is_stored_once_when_stored_again() {
    let guard = TestDialect::Postgres.fresh_database().await.guard();
    let url = guard.url.clone();
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    db.migrate(Schema::Events).await.unwrap();
    db.migrate_analytics().await.unwrap();
    let settings = Settings::default();
    let rows: Vec<EventRow> = (0..40)
        .flat_map(|turn| {
            (0..20).map(move |c| {
                let t = 1_700_000_000.0 + f64::from(turn * 20 + c);
                let event = if turn % 2 == 0 {
                    user("greet", "rest", t)
                } else {
                    bot("utter_greet", t)
                };
                row(&format!("sender-{c}"), turn as usize, &event)
            })
        })
        .collect();
    let mut refused = rows.clone();
    // PostgreSQL's text cannot hold NUL: this row fails its conversation's transaction.
    refused[5].data = "{\"event\": \"bot\", \"text\": \"\u{0}\"}".to_owned();
    let failed = db
        .store_batch_with_analytics(&refused, &[], &settings)
        .await;
    assert!(failed.is_err(), "the refused row fails the batch");
    let events_stored = async || -> u64 {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        count as u64
    };
    let committed = events_stored().await;
    assert!(
        committed > 0 && committed < rows.len() as u64,
        "the other conversations' transaction committed: {committed} of {} events",
        rows.len()
    );

    let inserted = db
        .store_batch_with_analytics(&rows, &[], &settings)
        .await
        .unwrap();
    assert_eq!(
        inserted + committed,
        rows.len() as u64,
        "each event stored once"
    );
    assert_eq!(events_stored().await, rows.len() as u64);
    let incremental = dump(TestDialect::Postgres, &url).await;
    db.reset_analytics().await.unwrap();
    db.derive_analytics(&db.sender_ids().await.unwrap(), &settings)
        .await
        .unwrap();
    assert_eq!(incremental, dump(TestDialect::Postgres, &url).await);
    db.close().await;
    drop(guard);
}

/// A database Rasa wrote (no `event_id` column, events without ids): a rebuild derives its tables.
#[tokio::test]
async fn rebuild_reads_a_database_rasa_wrote() {
    let guard = TestDialect::Sqlite.fresh_database().await.guard();
    let url = guard.url.clone();
    exec(
        TestDialect::Sqlite,
        &format!("{url}?mode=rwc"),
        "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, \
         type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), \
         action_name VARCHAR(255), data TEXT)",
    )
    .await;
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    let (sender, events) = data_set().remove(1);
    for (i, e) in events.iter().enumerate() {
        let r = row(sender, i, e);
        exec(
            TestDialect::Sqlite,
            &url,
            &format!(
                "INSERT INTO events (sender_id, type_name, timestamp, data) VALUES ('{sender}', '{}', {}, '{}')",
                r.type_name,
                r.timestamp.unwrap(),
                r.data.replace('\'', "''")
            ),
        )
        .await;
    }
    db.migrate_analytics().await.unwrap();
    let settings = Settings::default();
    let progress = db
        .derive_analytics(&db.sender_ids().await.unwrap(), &settings)
        .await
        .unwrap();
    assert_eq!((progress.conversations, progress.events), (1, 6));
    assert!(!table_exists(TestDialect::Sqlite, &url, "dead_letters").await);
    db.close().await;
    drop(guard);
}

fn arbitrary_event() -> impl Strategy<Value = Event> {
    let kind = prop_oneof![
        3 => (prop::sample::select(vec!["greet", "nlu_fallback", "inform"]), prop::option::of(prop::sample::select(vec!["rest", "socketio"])))
            .prop_map(|(intent, channel)| {
                let mut kind = EventKind::user(format!("text {intent}"));
                if let EventKind::User(user) = &mut kind {
                    user.input_channel = channel.map(str::to_owned);
                    user.parse_data.as_mut().unwrap().intent = Some(Intent::new(intent, serde_json::Number::from_f64(0.5)));
                }
                kind
            }),
        2 => prop::sample::select(vec!["action_session_start", "action_listen", "action_default_fallback"]).prop_map(EventKind::action),
        2 => Just(EventKind::bot("hello")),
        1 => (prop::sample::select(vec!["session_started_metadata", "cuisine", "requested_slot"]), prop::sample::select(vec![json!(null), json!("indian"), json!({"a": [1, 2.5]})]))
            .prop_map(|(name, value)| EventKind::slot(name, value)),
        1 => Just(EventKind::Restart),
    ];
    (
        kind,
        1_600_000_000.0..1_700_000_000.0f64,
        prop::option::of(Just("m1")),
    )
        .prop_map(|(kind, timestamp, model)| {
            let mut metadata: Map<String, Value> = Map::new();
            if let Some(model) = model {
                metadata.insert("model_id".into(), model.into());
            }
            Event::new(kind)
                .with_metadata(metadata)
                .with_timestamp(timestamp)
                .unwrap()
        })
}

/// Stores `stream` (conversation index, event) through the consumer's path, cut into batches at `cuts` (each
/// batch redelivering up to 3 events of the previous one), then rebuilds from scratch: both dumps.
async fn incremental_and_rebuilt(
    dialect: TestDialect,
    stream: &[(usize, Event)],
    cuts: &[(usize, usize)],
) -> (Vec<String>, Vec<String>) {
    let guard = dialect.fresh_database().await.guard();
    let url = guard.url.clone();
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    db.migrate(Schema::Events).await.unwrap();
    db.migrate_analytics().await.unwrap();
    let settings = Settings {
        environment: Some("staging".into()),
    };
    let mut positions = [0usize; 3];
    let rows: Vec<EventRow> = stream
        .iter()
        .map(|(c, e)| {
            positions[*c] += 1;
            row(&format!("sender-{c}"), positions[*c] - 1, e)
        })
        .collect();
    let mut ends: Vec<usize> = cuts.iter().map(|(end, _)| (*end).min(rows.len())).collect();
    ends.push(rows.len());
    ends.sort_unstable();
    let mut start = 0usize;
    for (i, end) in ends.into_iter().enumerate() {
        let back = cuts.get(i).map_or(0, |(_, back)| *back);
        db.store_batch_with_analytics(&rows[start.saturating_sub(back)..end], &[], &settings)
            .await
            .unwrap();
        start = end;
    }
    let incremental = dump(dialect, &url).await;
    db.reset_analytics().await.unwrap();
    db.derive_analytics(&db.sender_ids().await.unwrap(), &settings)
        .await
        .unwrap();
    let rebuilt = dump(dialect, &url).await;
    db.close().await;
    drop(guard);
    (incremental, rebuilt)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any interleaving of three conversations, split into batches anywhere, with redeliveries: the
    /// consumer's path gives exactly the tables a rebuild computes from the events table.
    #[test]
    fn incremental_through_storage_equals_rebuild_on_sqlite(
        stream in prop::collection::vec((0usize..3, arbitrary_event()), 1..40),
        cuts in prop::collection::vec((0usize..40, 0usize..4), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (incremental, rebuilt) =
            runtime.block_on(incremental_and_rebuilt(TestDialect::Sqlite, &stream, &cuts));
        prop_assert_eq!(incremental, rebuilt);
    }
}

proptest! {
    // PostgreSQL's path is its own (whole batches per statement, rows skipped when unchanged): fewer cases,
    // each creates a database on the shared server.
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// The same property through PostgreSQL's statements.
    #[test]
    fn incremental_through_storage_equals_rebuild_on_postgresql(
        stream in prop::collection::vec((0usize..3, arbitrary_event()), 1..40),
        cuts in prop::collection::vec((0usize..40, 0usize..4), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (incremental, rebuilt) =
            runtime.block_on(incremental_and_rebuilt(TestDialect::Postgres, &stream, &cuts));
        prop_assert_eq!(incremental, rebuilt);
    }
}

/// Real-time markers: uploaded patterns are evaluated as batches arrive (split, redelivered, replayed); each
/// hit is written to `rasa_marker` once, the hits are those `markers evaluate` finds (one conversation at a
/// time), and a rebuild from scratch gives the same rows.
async fn markers_are_written_once_as_events_arrive(dialect: TestDialect) {
    use colloquy_analytics::markers::{Evaluator, MarkerConfig, TagNegation, patterns_of};
    let guard = dialect.fresh_database().await.guard();
    let url = guard.url.clone();
    let db = Database::connect_lazy(&url, &ConnectOptions::default()).unwrap();
    db.migrate(Schema::Events).await.unwrap();
    db.migrate_analytics().await.unwrap();
    let yaml = "greeted:\n  description: said hi\n  intent: greet\nfell_back:\n  action: action_default_fallback\ngreet_then_utter:\n  seq:\n    - intent: greet\n    - action: action_listen\nold:\n  intent: inform\n";
    db.upload_patterns(&patterns_of("stale:\n  intent: greet\n", TagNegation::AsRasa3_6).unwrap())
        .await
        .unwrap();
    // The second upload leaves `stale` out: it becomes inactive and finds nothing (the count below).
    db.upload_patterns(&patterns_of(yaml, TagNegation::AsRasa3_6).unwrap())
        .await
        .unwrap();
    let settings = Settings::default();
    let conversations = data_set();
    let config = MarkerConfig::from_yaml(yaml, TagNegation::AsRasa3_6).unwrap();
    let mut expected = 0;
    for (sender, events) in &conversations {
        let result = Evaluator::new(&config).evaluate(sender, events);
        expected += result
            .sessions
            .iter()
            .flat_map(|session| session.iter().map(|(_, hits)| hits.len()))
            .sum::<usize>();
    }
    assert!(
        expected >= 5,
        "the data set exercises the markers ({expected})"
    );
    for (sender, events) in &conversations {
        for (start, end) in [(0, 3), (1, 7), (5, events.len())] {
            let batch: Vec<EventRow> = (start..end.min(events.len()))
                .map(|i| row(sender, i, &events[i]))
                .collect();
            db.store_batch_with_analytics(&batch, &[], &settings)
                .await
                .unwrap();
        }
    }
    let kept = db.analytics_dump().await.unwrap();
    let markers: Vec<&String> = kept
        .iter()
        .filter(|r| r.starts_with("rasa_marker:"))
        .collect();
    assert_eq!(markers.len(), expected, "{dialect:?}: {markers:#?}");
    let all: Vec<EventRow> = conversations
        .iter()
        .flat_map(|(sender, events)| events.iter().enumerate().map(|(i, e)| row(sender, i, e)))
        .collect();
    db.store_batch_with_analytics(&all, &[], &settings)
        .await
        .unwrap();
    assert_eq!(
        db.analytics_dump().await.unwrap(),
        kept,
        "{dialect:?}: replay"
    );
    db.reset_analytics().await.unwrap();
    db.derive_analytics(&db.sender_ids().await.unwrap(), &settings)
        .await
        .unwrap();
    assert_eq!(
        db.analytics_dump().await.unwrap(),
        kept,
        "{dialect:?}: rebuild"
    );
    db.close().await;
    drop(guard);
}

#[tokio::test]
async fn markers_are_written_once_on_postgresql() {
    markers_are_written_once_as_events_arrive(TestDialect::Postgres).await;
}

#[tokio::test]
async fn markers_are_written_once_on_sqlite() {
    markers_are_written_once_as_events_arrive(TestDialect::Sqlite).await;
}

#[tokio::test]
async fn markers_are_written_once_on_mysql() {
    markers_are_written_once_as_events_arrive(TestDialect::MySql).await;
}
