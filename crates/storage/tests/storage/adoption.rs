//! A database Rasa created: read as it is by a read-only handle, then adopted by a migration that keeps its
//! rows and adds Colloquy's columns beside Rasa's.

use colloquy_storage::{ConnectOptions, Database, ExportSelection, Schema, StoredEvent};
use colloquy_testkit::TestDialect;

use crate::fixture::{Fixture, OnDialect, row};

crate::dialect_tests!(
    a_read_only_handle_reads_a_database_rasa_created_and_changes_nothing,
    migrating_a_database_rasa_created_keeps_its_rows,
    a_read_only_handle_never_creates_a_sqlite_file,
);

/// The DDL Rasa 3.6.21 creates for its `SQLEvent` model (`rasa/core/tracker_store.py`), as SQLAlchemy 1.4
/// (Rasa's pin: `>=1.4.0,<1.5.0`) renders it in each dialect — printed with
/// `CreateTable(SQLEvent.__table__).compile(dialect=...)` and `CreateIndex`: the `id` column's optional
/// `Sequence("events_seq")` makes it `SERIAL` on PostgreSQL, `sa.Float` is `FLOAT` everywhere (4 bytes on
/// MySQL, 8 on PostgreSQL and SQLite), `sa.Text` is `TEXT`.
pub(crate) fn rasa_ddl(dialect: TestDialect) -> &'static str {
    match dialect {
        TestDialect::Postgres => {
            "CREATE TABLE events (
	id SERIAL NOT NULL, 
	sender_id VARCHAR(255) NOT NULL, 
	type_name VARCHAR(255) NOT NULL, 
	timestamp FLOAT, 
	intent_name VARCHAR(255), 
	action_name VARCHAR(255), 
	data TEXT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_events_sender_id ON events (sender_id);"
        }
        TestDialect::MySql => {
            "CREATE TABLE events (
	id INTEGER NOT NULL AUTO_INCREMENT, 
	sender_id VARCHAR(255) NOT NULL, 
	type_name VARCHAR(255) NOT NULL, 
	timestamp FLOAT, 
	intent_name VARCHAR(255), 
	action_name VARCHAR(255), 
	data TEXT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_events_sender_id ON events (sender_id);"
        }
        TestDialect::Sqlite => {
            "CREATE TABLE events (
	id INTEGER NOT NULL, 
	sender_id VARCHAR(255) NOT NULL, 
	type_name VARCHAR(255) NOT NULL, 
	timestamp FLOAT, 
	intent_name VARCHAR(255), 
	action_name VARCHAR(255), 
	data TEXT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_events_sender_id ON events (sender_id);"
        }
    }
}

/// `sender_id`, `type_name`, `timestamp`, `intent_name`, `action_name`, `data`.
type RasaRow = (
    &'static str,
    &'static str,
    f64,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

/// Rows as Rasa's `SQLTrackerStore._additional_events` writes them: no `id` (the database assigns it), `data`
/// the event's JSON without `sender_id`, as Python's `json.dumps` writes it.
const RASA_ROWS: [RasaRow; 5] = [
    (
        "alice",
        "action",
        1_700_000_000.125,
        None,
        Some("action_session_start"),
        r#"{"event": "action", "timestamp": 1700000000.125, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}"#,
    ),
    (
        "alice",
        "session_started",
        1_700_000_000.25,
        None,
        None,
        r#"{"event": "session_started", "timestamp": 1700000000.25}"#,
    ),
    (
        "bob",
        "user",
        1_700_000_100.5,
        Some("greet"),
        None,
        r#"{"event": "user", "timestamp": 1700000100.5, "text": "caf\u00e9?", "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}, "input_channel": "rest", "message_id": "m1", "metadata": {}}"#,
    ),
    (
        "alice",
        "user",
        1_700_000_200.75,
        Some("greet"),
        None,
        r#"{"event": "user", "timestamp": 1700000200.75, "text": "hi", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}, "input_channel": null, "message_id": "m2", "metadata": {}}"#,
    ),
    (
        "alice",
        "slot",
        1_700_000_300.0,
        None,
        Some("cuisine"),
        r#"{"event": "slot", "timestamp": 1700000300.0, "name": "cuisine", "value": "thai"}"#,
    ),
];

async fn create_rasa_database(f: &Fixture) {
    f.exec(rasa_ddl(f.dialect)).await;
    let quote = |value: Option<&str>| {
        value.map_or("NULL".to_owned(), |v| {
            format!("'{}'", v.replace('\'', "''"))
        })
    };
    for (sender, type_name, timestamp, intent, action, data) in RASA_ROWS {
        f.exec(&format!(
            "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data) \
             VALUES ('{sender}', '{type_name}', {timestamp:?}, {}, {}, {})",
            quote(intent),
            quote(action),
            quote(
                Some(data)
                    .map(|d| d.replace(
                        '\\',
                        if f.dialect == TestDialect::MySql {
                            "\\\\"
                        } else {
                            "\\"
                        }
                    ))
                    .as_deref()
            )
        ))
        .await;
    }
}

/// The rows of Rasa's table as Rasa wrote them, with the precision the dialect's `FLOAT` keeps.
fn check_rasa_rows(dialect: TestDialect, sender: &str, read: &[StoredEvent]) {
    let expected: Vec<_> = RASA_ROWS.iter().filter(|r| r.0 == sender).collect();
    assert_eq!(read.len(), expected.len(), "{dialect:?}: {sender}'s rows");
    for (event, rasa) in read.iter().zip(&expected) {
        assert_eq!(event.data, rasa.5, "{dialect:?}: data as Rasa wrote it");
        assert_eq!(
            event.event_id, None,
            "{dialect:?}: Rasa's rows have no event id"
        );
        let timestamp = event
            .timestamp
            .unwrap_or_else(|| panic!("{dialect:?}: {sender}'s timestamp read"));
        // MySQL's FLOAT keeps 24 bits of mantissa: today's Unix times to 128 s.
        let tolerance = if dialect == TestDialect::MySql {
            128.0
        } else {
            0.0
        };
        assert!(
            (timestamp - rasa.2).abs() <= tolerance,
            "{dialect:?}: timestamp {timestamp} for {}",
            rasa.2
        );
        assert!(event.row_id > 0, "{dialect:?}: row id read");
    }
    assert!(
        read.windows(2).all(|w| w[0].row_id < w[1].row_id),
        "{dialect:?}: id order"
    );
}

async fn a_read_only_handle_reads_a_database_rasa_created_and_changes_nothing(f: &Fixture) {
    let d = f.dialect;
    create_rasa_database(f).await;
    let ro = Database::connect_lazy(&f.url, &ConnectOptions::read_only()).on(d);
    ro.require_events_table()
        .await
        .unwrap_or_else(|error| panic!("{d:?}: {error:?}"));
    check_rasa_rows(d, "alice", &ro.conversation_rows("alice").await.on(d));
    check_rasa_rows(d, "bob", &ro.conversation_rows("bob").await.on(d));
    assert_eq!(ro.sender_ids().await.on(d), ["alice", "bob"], "{d:?}");
    let all = ExportSelection::default();
    let conversations = ro.export_conversations(&all).await.on(d);
    assert_eq!(
        ro.count_selected(&conversations, &all).await.on(d),
        5,
        "{d:?}"
    );
    let latest = ro
        .read_conversation("alice", true)
        .await
        .on(d)
        .expect("alice");
    assert_eq!(latest.total, 4, "{d:?}");
    assert!(!latest.rows.is_empty(), "{d:?}");
    assert_eq!(ro.count_events("alice").await.on(d), 4, "{d:?}");
    assert!(ro.conversation_exists("bob").await.on(d), "{d:?}");
    assert!(
        ro.require_dead_letters_table()
            .await
            .unwrap_err()
            .is_config(),
        "{d:?}: no dead letters table"
    );

    // A read-only handle never alters the schema, even when asked to migrate.
    assert!(
        ro.migrate(Schema::Events).await.is_err(),
        "{d:?}: a read-only handle cannot migrate"
    );
    assert!(
        ro.store_batch(&[row("alice", "x", "bot", None)], &[])
            .await
            .is_err(),
        "{d:?}: nor write"
    );
    ro.close().await;
    assert!(
        !f.has_column("events", "event_id").await,
        "{d:?}: no column added"
    );
    assert!(!f.has_table("dead_letters").await, "{d:?}: no table added");
    assert_eq!(f.int("SELECT count(*) FROM events").await, 5, "{d:?}");
}

async fn migrating_a_database_rasa_created_keeps_its_rows(f: &Fixture) {
    let d = f.dialect;
    create_rasa_database(f).await;
    let before = f.db.conversation_rows("alice").await.on(d);
    f.db.migrate(Schema::Events)
        .await
        .unwrap_or_else(|error| panic!("{d:?}: adopting Rasa's table: {error:?}"));
    f.db.migrate(Schema::TrackerStore)
        .await
        .unwrap_or_else(|error| panic!("{d:?}: adopting Rasa's table: {error:?}"));
    f.db.migrate(Schema::TrackerStore)
        .await
        .unwrap_or_else(|error| panic!("{d:?}: again: {error:?}"));
    assert!(
        f.has_column("events", "event_id").await,
        "{d:?}: event_id added"
    );
    assert!(f.has_column("events", "seq").await, "{d:?}: seq added");
    assert!(
        f.has_table("dead_letters").await && f.has_table("outbox").await,
        "{d:?}"
    );
    let after = f.db.conversation_rows("alice").await.on(d);
    assert_eq!(after, before, "{d:?}: Rasa's rows untouched");
    check_rasa_rows(d, "alice", &after);
    check_rasa_rows(d, "bob", &f.db.conversation_rows("bob").await.on(d));

    // Colloquy writes after Rasa's rows, and the tracker store's count guard counts Rasa's rows too.
    assert_eq!(
        f.db.store_batch(&[row("bob", "b-new", "bot", Some(1_700_000_400.0))], &[])
            .await
            .on(d),
        1,
        "{d:?}"
    );
    let stale = [row("alice", "a-stale", "bot", None)];
    assert_eq!(
        f.db.insert_tracked("alice", 0, &stale, true).await.on(d),
        0,
        "{d:?}: alice holds 4 events"
    );
    let next = [row("alice", "a-4", "bot", Some(1_700_000_500.0))];
    assert_eq!(
        f.db.insert_tracked("alice", 4, &next, true).await.on(d),
        1,
        "{d:?}"
    );
    let read =
        f.db.read_conversation("alice", false)
            .await
            .on(d)
            .expect("alice");
    assert_eq!(read.total, 5, "{d:?}");
    assert_eq!(
        read.rows.last().map(|r| r.data.as_str()),
        Some(next[0].data.as_str()),
        "{d:?}: appended last"
    );
    let latest =
        f.db.read_conversation("alice", true)
            .await
            .on(d)
            .expect("alice");
    // MySQL's FLOAT rounds `action_session_start`'s timestamp to the session start's: Rasa reads it as part of
    // the session there too.
    let expected = if d == TestDialect::MySql { 5 } else { 4 };
    assert_eq!(
        latest.rows.len(),
        expected,
        "{d:?}: the latest session by Rasa's rule"
    );
    let bob = f.db.conversation_rows("bob").await.on(d);
    assert_eq!(
        bob.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        [None, Some("b-new".into())],
        "{d:?}"
    );
    assert_eq!(f.db.outbox_len().await.on(d), 1, "{d:?}");
}

async fn a_read_only_handle_never_creates_a_sqlite_file(f: &Fixture) {
    if f.dialect != TestDialect::Sqlite {
        return;
    }
    let dir = std::env::temp_dir();
    for path in [
        dir.join(format!("{}-mistyped.db", f.name())),
        dir.join(format!("{}-no-dir", f.name())).join("x.db"),
    ] {
        let url = format!("sqlite://{}", path.display());
        let ro = Database::connect_lazy(&url, &ConnectOptions::read_only()).unwrap();
        let error = ro
            .require_events_table()
            .await
            .expect_err("a mistyped path is an error");
        assert!(
            error.is_config(),
            "a missing file is a configuration error: {error:?}"
        );
        assert!(ro.conversation_rows("alice").await.is_err());
        ro.close().await;
        assert!(!path.exists(), "no file created at {}", path.display());
    }
}
