//! The SQL of `sql/<dialect>/` (pending its move to the storage crate) against real PostgreSQL and SQLite:
//! the schema and views create, the upserts store what the derivation gives (twice = once), and each metric
//! view answers with the numbers worked out by hand for a small data set.

use colloquy_analytics::{Conversation, Rows, Settings, derive_conversation};
use colloquy_events::{Event, EventKind, Intent};
use serde_json::{Map, json};
use sqlx::{AssertSqlSafe, Connection, Executor, Row};

/// Reads a file of `sql/<dialect>/`.
fn sql(dialect: &str, name: &str) -> String {
    let path = format!("{}/sql/{dialect}/{name}.sql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

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

/// The rows, written the way the consumer would: each conversation in two batches, the second one
/// redelivering the last two events of the first.
fn incremental_rows(settings: &Settings) -> Vec<Rows> {
    let mut batches = Vec::new();
    for (sender, events) in data_set() {
        let mut conversation = Conversation::new(sender);
        let positioned: Vec<(u64, &Event)> = events
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64, e))
            .collect();
        let cut = positioned.len() / 2;
        batches.push(
            conversation
                .apply(settings, positioned[..cut].iter().copied())
                .unwrap(),
        );
        batches.push(
            conversation
                .apply(settings, positioned[cut - 2..].iter().copied())
                .unwrap(),
        );
    }
    batches
}

fn rebuilt_rows(settings: &Settings) -> Rows {
    let mut rows = Rows::default();
    for (sender, events) in data_set() {
        rows.extend(derive_conversation(settings, sender, &events));
    }
    rows
}

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

mod postgres {
    use super::*;
    use sqlx::PgConnection;
    use sqlx::Postgres;
    use sqlx::postgres::PgArguments;
    use sqlx::query::Query;

    type Q<'q> = Query<'q, Postgres, PgArguments>;

    fn texts<T>(rows: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
        rows.iter().map(|r| f(r).to_owned()).collect()
    }
    fn opt_texts<T>(rows: &[T], f: impl Fn(&T) -> Option<&str>) -> Vec<Option<String>> {
        rows.iter().map(|r| f(r).map(str::to_owned)).collect()
    }
    fn floats<T>(rows: &[T], f: impl Fn(&T) -> Option<f64>) -> Vec<Option<f64>> {
        rows.iter().map(f).collect()
    }
    fn ints<T>(rows: &[T], f: impl Fn(&T) -> u64) -> Vec<i64> {
        rows.iter().map(|r| f(r) as i64).collect()
    }

    /// Binds the columns shared by event-derived rows ($1..$7).
    fn event_columns<'q, T>(
        query: Q<'q>,
        rows: &[T],
        columns: impl Fn(&T) -> (&str, &colloquy_analytics::rows::EventColumns),
    ) -> Q<'q> {
        query
            .bind(texts(rows, |r| columns(r).0))
            .bind(texts(rows, |r| &columns(r).1.sender_id))
            .bind(texts(rows, |r| &columns(r).1.session_id))
            .bind(texts(rows, |r| &columns(r).1.event_id))
            .bind(floats(rows, |r| columns(r).1.timestamp))
            .bind(opt_texts(rows, |r| columns(r).1.model_id.as_deref()))
            .bind(ints(rows, |r| columns(r).1.sequence_number))
    }

    async fn write(db: &mut PgConnection, rows: &Rows) {
        let s = |name| sql("postgres", name);
        let mut tx = db.begin().await.unwrap();
        let (sql_sender, sql_session, sql_turn, sql_event) = (
            s("upsert_rasa_sender"),
            s("upsert_rasa_session"),
            s("upsert_rasa_turn"),
            s("insert_rasa_event"),
        );
        let (sql_user, sql_bot, sql_action, sql_slot, sql_state) = (
            s("insert_rasa_user_message"),
            s("insert_rasa_bot_message"),
            s("insert_rasa_action"),
            s("insert_rasa_slot"),
            s("upsert_rasa_session_slot_state"),
        );
        let r = &rows.senders;
        sqlx::query(AssertSqlSafe(sql_sender.as_str()))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_key))
            .bind(opt_texts(r, |r| r.channel.as_deref()))
            .bind(floats(r, |r| r.first_seen))
            .bind(floats(r, |r| r.last_seen))
            .execute(&mut *tx)
            .await
            .unwrap();
        let r = &rows.sessions;
        sqlx::query(AssertSqlSafe(sql_session.as_str()))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(floats(r, |r| r.timestamp))
            .bind(ints(r, |r| r.start_sequence_number))
            .bind(ints(r, |r| r.end_sequence_number))
            .execute(&mut *tx)
            .await
            .unwrap();
        let r = &rows.turns;
        sqlx::query(AssertSqlSafe(sql_turn.as_str()))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(texts(r, |r| &r.session_id))
            .bind(ints(r, |r| r.start_sequence_number))
            .bind(ints(r, |r| r.end_sequence_number))
            .execute(&mut *tx)
            .await
            .unwrap();
        let r = &rows.events;
        sqlx::query(AssertSqlSafe(sql_event.as_str()))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(texts(r, |r| &r.session_id))
            .bind(floats(r, |r| r.timestamp))
            .bind(opt_texts(r, |r| r.model_id.as_deref()))
            .bind(opt_texts(r, |r| r.environment.as_deref()))
            .bind(ints(r, |r| r.sequence_number))
            .bind(texts(r, |r| &r.event_type))
            .execute(&mut *tx)
            .await
            .unwrap();
        let r = &rows.user_messages;
        event_columns(sqlx::query(AssertSqlSafe(sql_user.as_str())), r, |r| {
            (&r.id, &r.event)
        })
        .bind(opt_texts(r, |r| r.intent.as_deref()))
        .bind(opt_texts(r, |r| r.retrieval_intent.as_deref()))
        .bind(floats(r, |r| r.confidence))
        .bind(opt_texts(r, |r| r.text.as_deref()))
        .bind(opt_texts(r, |r| r.message_id.as_deref()))
        .execute(&mut *tx)
        .await
        .unwrap();
        let r = &rows.bot_messages;
        event_columns(sqlx::query(AssertSqlSafe(sql_bot.as_str())), r, |r| {
            (&r.id, &r.event)
        })
        .bind(opt_texts(r, |r| r.template_name.as_deref()))
        .bind(opt_texts(r, |r| r.text.as_deref()))
        .execute(&mut *tx)
        .await
        .unwrap();
        let r = &rows.actions;
        event_columns(sqlx::query(AssertSqlSafe(sql_action.as_str())), r, |r| {
            (&r.id, &r.event)
        })
        .bind(opt_texts(r, |r| r.name.as_deref()))
        .bind(floats(r, |r| r.confidence))
        .bind(opt_texts(r, |r| r.policy.as_deref()))
        .execute(&mut *tx)
        .await
        .unwrap();
        let r = &rows.slots;
        event_columns(sqlx::query(AssertSqlSafe(sql_slot.as_str())), r, |r| {
            (&r.id, &r.event)
        })
        .bind(texts(r, |r| &r.slot_path))
        .bind(texts(r, |r| &r.name))
        .bind(texts(r, |r| &r.value))
        .execute(&mut *tx)
        .await
        .unwrap();
        let r = &rows.session_slot_states;
        sqlx::query(AssertSqlSafe(sql_state.as_str()))
            .bind(texts(r, |r| &r.id))
            .bind(texts(r, |r| &r.sender_id))
            .bind(texts(r, |r| &r.session_id))
            .bind(texts(r, |r| &r.name))
            .bind(texts(r, |r| &r.value))
            .bind(floats(r, |r| r.timestamp))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// Every table's rows as text, sorted: to compare two states of the database.
    async fn dump(db: &mut PgConnection) -> Vec<String> {
        let mut all = Vec::new();
        for table in TABLES {
            let query = format!("SELECT t::text AS row FROM {table} t ORDER BY 1");
            for row in db.fetch_all(AssertSqlSafe(query)).await.unwrap() {
                all.push(format!("{table}: {}", row.get::<String, _>("row")));
            }
        }
        all
    }

    #[tokio::test]
    async fn schema_upserts_and_views_on_postgresql() {
        let database = colloquy_testkit::fresh_database().await;
        let result = run(&database.url).await;
        database.drop_database().await;
        result.unwrap();
    }

    async fn run(url: &str) -> anyhow::Result<()> {
        let mut db = PgConnection::connect(url).await?;
        db.execute(AssertSqlSafe(sql("postgres", "schema"))).await?;
        db.execute(AssertSqlSafe(sql("postgres", "schema"))).await?; // twice: idempotent
        db.execute(AssertSqlSafe(sql("postgres", "views"))).await?;
        db.execute(
            "INSERT INTO colloquy_metric_name VALUES ('abandonment', 'template', 'utter_goodbye')",
        )
        .await?;

        let settings = Settings {
            environment: Some("production".into()),
        };
        for rows in incremental_rows(&settings) {
            write(&mut db, &rows).await;
        }
        let incremental = dump(&mut db).await;
        write(&mut db, &rebuilt_rows(&settings)).await;
        assert_eq!(
            dump(&mut db).await,
            incremental,
            "a rebuild over incremental rows changes nothing"
        );
        assert_eq!(
            incremental
                .iter()
                .filter(|r| r.starts_with("rasa_event:"))
                .count(),
            18
        );

        let sessions_per_day: Vec<(String, i64)> = sqlx::query_as(
            "SELECT CAST(day AS TEXT), sessions FROM colloquy_sessions_per_day ORDER BY day",
        )
        .fetch_all(&mut db)
        .await?;
        assert_eq!(
            sessions_per_day,
            [("2023-11-14".into(), 1), ("2023-11-15".into(), 2)]
        );
        check_common(&mut db).await
    }

    async fn check_common(db: &mut PgConnection) -> anyhow::Result<()> {
        let per_channel: Vec<(String, i64)> = sqlx::query_as(
            "SELECT channel, sessions FROM colloquy_sessions_per_channel ORDER BY channel",
        )
        .fetch_all(&mut *db)
        .await?;
        assert_eq!(per_channel, [("rest".into(), 2), ("socketio".into(), 1)]);
        let senders: (i64, i64, f64) =
            sqlx::query_as("SELECT senders, sessions, sessions_per_sender FROM colloquy_senders")
                .fetch_one(&mut *db)
                .await?;
        assert_eq!(senders, (2, 3, 1.5));
        let turns: Vec<i64> = sqlx::query_scalar(
            "SELECT turns FROM colloquy_turns_per_session ORDER BY timestamp, turns",
        )
        .fetch_all(&mut *db)
        .await?;
        assert_eq!(turns, [2, 1, 2]);
        let top: Vec<(String, i64)> =
            sqlx::query_as("SELECT intent, messages FROM colloquy_top_intents ORDER BY messages DESC, intent LIMIT 2")
                .fetch_all(&mut *db)
                .await?;
        assert_eq!(top, [("greet".into(), 2), ("human_handoff".into(), 1)]);
        let response: f64 = sqlx::query_scalar(
            "SELECT CAST(AVG(seconds) AS DOUBLE PRECISION) FROM colloquy_bot_response_time",
        )
        .fetch_one(&mut *db)
        .await?;
        assert!(
            (response - (2.0 + 1.0 + 1.0 + 4.0) / 4.0).abs() < 1e-6,
            "{response}"
        );
        let rates: (f64, f64, f64, f64) = sqlx::query_as(
            "SELECT e.escalation_rate, a.abandonment_rate, c.containment_rate, f.fallback_rate \
             FROM colloquy_escalation_rate e, colloquy_abandonment_rate a, colloquy_containment_rate c, colloquy_fallback_rate f",
        )
        .fetch_one(&mut *db)
        .await?;
        assert_eq!(rates, (1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0 / 5.0));
        Ok(())
    }
}

/// The dialects whose statements take one row (`?` placeholders in column order): SQLite and MySQL.
macro_rules! per_row_dialect {
    ($module:ident, $dialect:literal, $db:ty, $conn:ty, $args:ty, $columns:literal, $concat:literal) => {
        mod $module {
            use super::*;
            use colloquy_analytics::rows::EventColumns;
            use sqlx::query::Query;

            type Q<'q> = Query<'q, $db, $args>;

            fn event_columns<'q>(query: Q<'q>, id: &str, e: &EventColumns) -> Q<'q> {
                query
                    .bind(id.to_owned())
                    .bind(e.sender_id.clone())
                    .bind(e.session_id.clone())
                    .bind(e.event_id.clone())
                    .bind(e.timestamp)
                    .bind(e.model_id.clone())
                    .bind(e.sequence_number as i64)
            }

            pub(super) async fn write(db: &mut $conn, rows: &Rows) {
                let s = |name| sql($dialect, name);
                let mut tx = db.begin().await.unwrap();
                let statement = s("upsert_rasa_sender");
                for r in &rows.senders {
                    sqlx::query(AssertSqlSafe(statement.as_str()))
                        .bind(&r.id)
                        .bind(&r.sender_key)
                        .bind(&r.channel)
                        .bind(r.first_seen)
                        .bind(r.last_seen)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("upsert_rasa_session");
                for r in &rows.sessions {
                    sqlx::query(AssertSqlSafe(statement.as_str()))
                        .bind(&r.id)
                        .bind(&r.sender_id)
                        .bind(r.timestamp)
                        .bind(r.start_sequence_number as i64)
                        .bind(r.end_sequence_number as i64)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("upsert_rasa_turn");
                for r in &rows.turns {
                    sqlx::query(AssertSqlSafe(statement.as_str()))
                        .bind(&r.id)
                        .bind(&r.sender_id)
                        .bind(&r.session_id)
                        .bind(r.start_sequence_number as i64)
                        .bind(r.end_sequence_number as i64)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("insert_rasa_event");
                for r in &rows.events {
                    sqlx::query(AssertSqlSafe(statement.as_str()))
                        .bind(&r.id)
                        .bind(&r.sender_id)
                        .bind(&r.session_id)
                        .bind(r.timestamp)
                        .bind(&r.model_id)
                        .bind(&r.environment)
                        .bind(r.sequence_number as i64)
                        .bind(&r.event_type)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("insert_rasa_user_message");
                for r in &rows.user_messages {
                    event_columns(sqlx::query(AssertSqlSafe(statement.as_str())), &r.id, &r.event)
                        .bind(&r.intent)
                        .bind(&r.retrieval_intent)
                        .bind(r.confidence)
                        .bind(&r.text)
                        .bind(&r.message_id)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("insert_rasa_bot_message");
                for r in &rows.bot_messages {
                    event_columns(sqlx::query(AssertSqlSafe(statement.as_str())), &r.id, &r.event)
                        .bind(&r.template_name)
                        .bind(&r.text)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("insert_rasa_action");
                for r in &rows.actions {
                    event_columns(sqlx::query(AssertSqlSafe(statement.as_str())), &r.id, &r.event)
                        .bind(&r.name)
                        .bind(r.confidence)
                        .bind(&r.policy)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("insert_rasa_slot");
                for r in &rows.slots {
                    event_columns(sqlx::query(AssertSqlSafe(statement.as_str())), &r.id, &r.event)
                        .bind(&r.slot_path)
                        .bind(&r.name)
                        .bind(&r.value)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                let statement = s("upsert_rasa_session_slot_state");
                for r in &rows.session_slot_states {
                    sqlx::query(AssertSqlSafe(statement.as_str()))
                        .bind(&r.id)
                        .bind(&r.sender_id)
                        .bind(&r.session_id)
                        .bind(&r.name)
                        .bind(&r.value)
                        .bind(r.timestamp)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }

            /// Every table's rows as text (each column quoted by the database), sorted by id.
            async fn dump(db: &mut $conn) -> Vec<String> {
                let mut all = Vec::new();
                for table in TABLES {
                    let columns: String = sqlx::query_scalar(AssertSqlSafe(format!($columns, table = table)))
                        .fetch_one(&mut *db)
                        .await
                        .unwrap();
                    let query = format!("SELECT {} FROM {table} ORDER BY id", format!($concat, columns = columns));
                    let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(query))
                        .fetch_all(&mut *db)
                        .await
                        .unwrap();
                    all.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
                }
                all
            }

            /// Schema and views (twice: idempotent), the data set incrementally, a rebuild over it (no
            /// change), then every metric view.
            pub(super) async fn run(db: &mut $conn) -> anyhow::Result<()> {
                for file in ["schema", "schema", "views", "views"] {
                    db.execute(AssertSqlSafe(sql($dialect, file))).await?;
                }
                db.execute("INSERT INTO colloquy_metric_name VALUES ('abandonment', 'template', 'utter_goodbye')")
                    .await?;

                let settings = Settings { environment: Some("production".into()) };
                for rows in incremental_rows(&settings) {
                    write(db, &rows).await;
                }
                let incremental = dump(db).await;
                write(db, &rebuilt_rows(&settings)).await;
                assert_eq!(dump(db).await, incremental, "a rebuild over incremental rows changes nothing");
                assert_eq!(incremental.iter().filter(|r| r.starts_with("rasa_event:")).count(), 18);

                let first: String = sqlx::query_scalar(
                    "SELECT CAST(timestamp AS CHAR) FROM rasa_user_message ORDER BY timestamp LIMIT 1",
                )
                .fetch_one(&mut *db)
                .await?;
                assert!(first.starts_with("2023-11-14 22:13:21.000"), "UTC timestamps: {first}");
                let sessions_per_day: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT CAST(day AS CHAR), sessions FROM colloquy_sessions_per_day ORDER BY day",
                )
                .fetch_all(&mut *db)
                .await?;
                assert_eq!(sessions_per_day, [("2023-11-14".into(), 1), ("2023-11-15".into(), 2)]);
                let per_channel: Vec<(String, i64)> =
                    sqlx::query_as("SELECT channel, sessions FROM colloquy_sessions_per_channel ORDER BY channel")
                        .fetch_all(&mut *db)
                        .await?;
                assert_eq!(per_channel, [("rest".into(), 2), ("socketio".into(), 1)]);
                let senders: (i64, i64, f64) =
                    sqlx::query_as("SELECT senders, sessions, sessions_per_sender FROM colloquy_senders")
                        .fetch_one(&mut *db)
                        .await?;
                assert_eq!(senders, (2, 3, 1.5));
                let turns: Vec<i64> =
                    sqlx::query_scalar("SELECT turns FROM colloquy_turns_per_session ORDER BY timestamp, turns")
                        .fetch_all(&mut *db)
                        .await?;
                assert_eq!(turns, [2, 1, 2]);
                let top: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT intent, messages FROM colloquy_top_intents ORDER BY messages DESC, intent LIMIT 2",
                )
                .fetch_all(&mut *db)
                .await?;
                assert_eq!(top, [("greet".into(), 2), ("human_handoff".into(), 1)]);
                let response: f64 =
                    sqlx::query_scalar("SELECT CAST(AVG(seconds) AS DOUBLE) FROM colloquy_bot_response_time")
                        .fetch_one(&mut *db)
                        .await?;
                assert!((response - 2.0).abs() < 1e-3, "{response}");
                let rates: (f64, f64, f64, f64) = sqlx::query_as(
                    "SELECT e.escalation_rate, a.abandonment_rate, c.containment_rate, f.fallback_rate \
                     FROM colloquy_escalation_rate e, colloquy_abandonment_rate a, colloquy_containment_rate c, \
                     colloquy_fallback_rate f",
                )
                .fetch_one(&mut *db)
                .await?;
                assert_eq!(rates, (1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0 / 5.0));
                Ok(())
            }
        }
    };
}

per_row_dialect!(
    sqlite,
    "sqlite",
    sqlx::Sqlite,
    sqlx::SqliteConnection,
    sqlx::sqlite::SqliteArguments,
    "SELECT group_concat('quote(' || name || ')', ' || '','' || ') FROM pragma_table_info('{table}')",
    "{columns}"
);

#[tokio::test]
async fn schema_upserts_and_views_on_sqlite() -> anyhow::Result<()> {
    let mut db = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
    sqlite::run(&mut db).await
}

per_row_dialect!(
    mysql,
    "mysql",
    sqlx::MySql,
    sqlx::MySqlConnection,
    sqlx::mysql::MySqlArguments,
    "SELECT GROUP_CONCAT(CONCAT('QUOTE(', column_name, ')') ORDER BY ordinal_position SEPARATOR ', \\',\\', ') \
     FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}'",
    "CONCAT({columns})"
);

/// MySQL/MariaDB from `MYSQL_URL` (default: root without password on 127.0.0.1:3306); the test creates
/// and drops a database of its own.
#[tokio::test]
async fn schema_upserts_and_views_on_mysql() -> anyhow::Result<()> {
    let server =
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let mut admin = sqlx::MySqlConnection::connect(&server).await.map_err(|e| {
        anyhow::anyhow!("no MySQL/MariaDB for the test at {server} (set MYSQL_URL): {e}")
    })?;
    let name = colloquy_testkit::unique_name("colloquy_test").replace('-', "_");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .await?;
    let base = server
        .rsplit_once('/')
        .map_or(server.as_str(), |(base, _)| base);
    let result = async {
        let mut db = sqlx::MySqlConnection::connect(&format!("{base}/{name}")).await?;
        // The SQL must not depend on the session's time zone.
        db.execute("SET time_zone = '+05:00'").await?;
        mysql::run(&mut db).await
    }
    .await;
    admin
        .execute(AssertSqlSafe(format!("DROP DATABASE `{name}`")))
        .await?;
    result
}
