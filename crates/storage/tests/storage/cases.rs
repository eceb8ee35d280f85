//! The storage layer's contract, case by case; each case runs on every dialect (see `dialect_tests!`).

use std::time::Duration;

use colloquy_storage::{
    ConnectOptions, Database, DeadLetterRow, Dialect, ExportSelection, RelayError, RelayPass,
    RowError, Schema,
};
use colloquy_testkit::TestDialect;

use crate::fixture::{Fixture, OnDialect, row};

crate::dialect_tests!(
    migrations_are_idempotent,
    consumer_database_has_no_tracker_store_tables,
    store_batch_keeps_order_and_skips_stored_ids,
    store_batch_keeps_dead_letters_whole,
    a_dead_letter_larger_than_a_packet_is_stored_or_refused_never_retried_forever,
    rows_too_large_for_the_dialect_are_refused_never_truncated,
    insert_tracked_guards_the_count_and_records_positions,
    concurrent_saves_of_one_conversation_let_exactly_one_win,
    tracked_conversations_are_told_apart_byte_for_byte,
    read_conversation_selects_the_latest_session_by_rasas_rule,
    sender_ids_are_distinct_and_in_byte_order,
    relay_publishes_in_row_order_and_deletes_only_after_success,
    relay_is_busy_while_another_pass_holds_the_outbox,
    a_cancelled_relay_pass_releases_the_outbox,
    a_write_cancelled_half_way_leaves_nothing_open,
    export_selects_filters_and_resumes,
    dead_letters_list_previews_and_deletes,
    a_missing_table_or_unique_index_is_a_schema_fault,
    refused_credentials_and_missing_databases_are_config_errors,
    a_server_that_is_down_is_transient,
);

/// The `(row id, event id)` of every row of `senders`' conversations, in row id order.
async fn stored(f: &Fixture, senders: &[&str]) -> Vec<(i64, String)> {
    let mut rows = Vec::new();
    for sender in senders {
        for event in f.db.conversation_rows(sender).await.on(f.dialect) {
            rows.push((
                event.row_id,
                event
                    .event_id
                    .unwrap_or_else(|| panic!("{:?}: a stored row has its event id", f.dialect)),
            ));
        }
    }
    rows.sort();
    rows
}

async fn migrations_are_idempotent(f: &Fixture) {
    let d = f.dialect;
    for schema in [
        Schema::Events,
        Schema::Events,
        Schema::TrackerStore,
        Schema::TrackerStore,
        Schema::Events,
    ] {
        f.db.migrate(schema)
            .await
            .unwrap_or_else(|error| panic!("{d:?}: migrate {schema:?} again: {error:?}"));
    }
    assert_eq!(
        f.db.store_batch(&[row("s", "e1", "restart", Some(1.0))], &[])
            .await
            .on(d),
        1,
        "{d:?}"
    );
    assert_eq!(
        f.db.insert_tracked("t", 0, &[row("t", "e2", "restart", Some(1.0))], true)
            .await
            .on(d),
        1,
        "{d:?}"
    );
    // A second database handle (another process) migrating the same database changes nothing.
    let other = Database::connect_lazy(&f.url, &ConnectOptions::default()).on(d);
    other
        .migrate(Schema::TrackerStore)
        .await
        .unwrap_or_else(|error| panic!("{d:?}: {error:?}"));
    other.close().await;
    assert_eq!(f.db.count_events("s").await.on(d), 1, "{d:?}");
    assert_eq!(f.db.outbox_len().await.on(d), 1, "{d:?}");
}

async fn consumer_database_has_no_tracker_store_tables(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    assert!(f.has_table("events").await, "{d:?}: events");
    assert!(f.has_table("dead_letters").await, "{d:?}: dead_letters");
    assert!(
        f.has_column("events", "event_id").await,
        "{d:?}: events.event_id"
    );
    assert!(
        !f.has_table("outbox").await,
        "{d:?}: a consumer database has no outbox"
    );
    assert!(
        !f.has_table("outbox_relay_lock").await,
        "{d:?}: a consumer database has no relay lock"
    );
    assert!(
        !f.has_column("events", "seq").await,
        "{d:?}: a consumer database has no seq column"
    );
    f.db.migrate(Schema::TrackerStore).await.on(d);
    assert!(
        f.has_table("outbox").await,
        "{d:?}: the tracker store adds the outbox"
    );
    assert!(
        f.has_column("events", "seq").await,
        "{d:?}: the tracker store adds seq"
    );
}

async fn store_batch_keeps_order_and_skips_stored_ids(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    let first = [
        row("bob", "id-1", "user", Some(3.0)),
        row("alice", "id-2", "bot", Some(1.0)),
        row("bob", "id-3", "action", Some(2.0)),
        row("alice", "id-4", "restart", None),
    ];
    assert_eq!(
        f.db.store_batch(&first, &[]).await.on(d),
        4,
        "{d:?}: every new row is inserted"
    );
    let rows = stored(f, &["alice", "bob"]).await;
    let order: Vec<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        order,
        ["id-1", "id-2", "id-3", "id-4"],
        "{d:?}: ids ascend in slice order"
    );

    // Stored ids and repeats within the batch are skipped; the count is what was inserted.
    let second = [
        row("alice", "id-2", "bot", Some(1.0)),
        row("carol", "id-5", "user", Some(5.0)),
        row("carol", "id-5", "user", Some(5.0)),
        row("bob", "id-1", "user", Some(3.0)),
        row("carol", "id-6", "bot", Some(6.0)),
        // Ids that differ only in case are different ids (MySQL's `utf8mb4_bin` still pads trailing blanks:
        // ids that differ only in trailing blanks are not told apart there).
        row("carol", "ID-6", "bot", Some(6.0)),
    ];
    assert_eq!(
        f.db.store_batch(&second, &[]).await.on(d),
        3,
        "{d:?}: duplicates skipped, the rest inserted"
    );
    assert_eq!(
        f.db.store_batch(&second, &[]).await.on(d),
        0,
        "{d:?}: a redelivered batch inserts nothing"
    );
    let rows = stored(f, &["alice", "bob", "carol"]).await;
    let order: Vec<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        order,
        ["id-1", "id-2", "id-3", "id-4", "id-5", "id-6", "ID-6"],
        "{d:?}: each id once, in the order first seen"
    );
    assert_eq!(
        f.db.store_batch(&[], &[]).await.on(d),
        0,
        "{d:?}: an empty batch"
    );
    // A large batch (more rows than one statement takes) keeps its order too.
    let many: Vec<_> = (0..4500)
        .map(|i| {
            row(
                &format!("m{}", i % 7),
                &format!("many-{i:05}"),
                "bot",
                Some(i as f64),
            )
        })
        .collect();
    assert_eq!(
        f.db.store_batch(&many, &[]).await.on(d),
        4500,
        "{d:?}: a large batch"
    );
    let senders: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
    let rows = stored(f, &senders).await;
    let ids: Vec<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
    let expected: Vec<String> = (0..4500).map(|i| format!("many-{i:05}")).collect();
    assert_eq!(ids, expected, "{d:?}: a large batch keeps slice order");
}

async fn store_batch_keeps_dead_letters_whole(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    let raw = vec![0xff, 0x00, 0xfe, b'{', 0x80, b'"', 0x00];
    let letters = [
        DeadLetterRow {
            source: "queue-a".into(),
            body: raw.clone(),
            properties: r#"{"content_type": "application/json"}"#.into(),
            error: "not JSON".into(),
        },
        DeadLetterRow {
            source: "queue-b".into(),
            body: Vec::new(),
            properties: "{}".into(),
            error: "empty".into(),
        },
    ];
    let inserted =
        f.db.store_batch(&[row("s", "e1", "bot", Some(1.0))], &letters)
            .await
            .on(d);
    assert_eq!(inserted, 1, "{d:?}: the count is of events only");
    let stored = f.db.dead_letters(0, 10, None).await.on(d);
    assert_eq!(stored.len(), 2, "{d:?}");
    assert_eq!(stored[0].body, raw, "{d:?}: raw bytes kept exactly");
    assert_eq!(stored[0].body_len, raw.len() as i64, "{d:?}");
    assert_eq!(stored[0].source, "queue-a", "{d:?}");
    assert_eq!(
        stored[0].properties, r#"{"content_type": "application/json"}"#,
        "{d:?}"
    );
    assert_eq!(stored[0].error, "not JSON", "{d:?}");
    assert!(!stored[0].received_at.is_empty(), "{d:?}: received_at");
    assert_eq!(
        (stored[1].body.len(), stored[1].body_len),
        (0, 0),
        "{d:?}: an empty body"
    );
    assert!(stored[0].id < stored[1].id, "{d:?}: ids ascend");
    // A batch of dead letters only.
    assert_eq!(f.db.store_batch(&[], &letters[..1]).await.on(d), 0, "{d:?}");
    assert_eq!(f.db.dead_letters(0, 10, None).await.on(d).len(), 3, "{d:?}");
}

async fn a_dead_letter_larger_than_a_packet_is_stored_or_refused_never_retried_forever(
    f: &Fixture,
) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    // Larger than MariaDB's default max_allowed_packet (16 MiB).
    let letter = DeadLetterRow {
        source: "q".into(),
        body: vec![b'x'; 20 * 1024 * 1024],
        properties: "{}".into(),
        error: "too large".into(),
    };
    match f.db.store_batch(&[], std::slice::from_ref(&letter)).await {
        Ok(_) => {
            let stored = f.db.dead_letters(0, 1, Some(4)).await.on(d);
            assert_eq!(
                stored[0].body_len,
                letter.body.len() as i64,
                "{d:?}: stored whole"
            );
        }
        Err(error) => {
            eprintln!("{d:?}: {}", error);
            assert!(
                !error.is_transient(),
                "{d:?}: retrying cannot help, it must not look transient: {error:?}"
            );
        }
    }
    // The pool still works.
    assert_eq!(
        f.db.store_batch(&[row("s", "e", "bot", None)], &[])
            .await
            .on(d),
        1,
        "{d:?}"
    );
}

async fn rows_too_large_for_the_dialect_are_refused_never_truncated(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    let dialect = f.db.dialect();
    let mut big = row("s", "big", "bot", Some(1.0));
    big.data = format!(r#"{{"event": "bot", "text": "{}"}}"#, "x".repeat(70_000));
    let mut fits = row("s", "fits", "bot", Some(1.0));
    fits.data = format!(r#"{{"event": "bot", "text": "{}"}}"#, "é".repeat(32_000)); // 64,000+ bytes
    assert!(fits.data.len() <= 65_535, "{d:?}");
    assert_eq!(
        fits.check_fits(dialect),
        Ok(()),
        "{d:?}: a row under the limit fits"
    );
    match dialect {
        Dialect::MySql => {
            assert_eq!(
                big.check_fits(dialect),
                Err(RowError::TooLarge {
                    column: "data",
                    bytes: big.data.len(),
                    limit: 65_535,
                    dialect
                }),
                "{d:?}"
            );
            // Should an oversize row reach the server anyway, strict mode refuses it: nothing is truncated,
            // and nothing of the batch is stored.
            let error =
                f.db.store_batch(&[fits.clone(), big.clone()], &[])
                    .await
                    .expect_err("MySQL: strict mode refuses a value longer than TEXT");
            assert!(
                error.is_refused(),
                "{d:?}: refused, not {:?}: {error:?}",
                error.kind()
            );
            assert_eq!(
                f.db.count_events("s").await.on(d),
                0,
                "{d:?}: the batch is stored whole or not at all"
            );
        }
        Dialect::Postgres | Dialect::Sqlite => {
            assert_eq!(
                big.check_fits(dialect),
                Ok(()),
                "{d:?}: TEXT is unbounded here"
            );
            assert_eq!(
                f.db.store_batch(&[big.clone()], &[]).await.on(d),
                1,
                "{d:?}"
            );
        }
    }
    assert_eq!(
        f.db.store_batch(&[fits.clone()], &[]).await.on(d),
        1,
        "{d:?}"
    );
    for event in f.db.conversation_rows("s").await.on(d) {
        let expected = if event.event_id.as_deref() == Some("big") {
            &big.data
        } else {
            &fits.data
        };
        assert_eq!(&event.data, expected, "{d:?}: data read back whole");
    }
}

async fn insert_tracked_guards_the_count_and_records_positions(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::TrackerStore).await.on(d);
    let first: Vec<_> = (0..3)
        .map(|i| row("s", &format!("s-{i}"), "bot", Some(i as f64)))
        .collect();
    assert_eq!(
        f.db.insert_tracked("s", 0, &first, true).await.on(d),
        3,
        "{d:?}"
    );
    let stale: Vec<_> = (0..2)
        .map(|i| row("s", &format!("stale-{i}"), "bot", None))
        .collect();
    assert_eq!(
        f.db.insert_tracked("s", 0, &stale, true).await.on(d),
        0,
        "{d:?}: the conversation holds 3, not 0"
    );
    assert_eq!(
        f.db.insert_tracked("s", 5, &stale, true).await.on(d),
        0,
        "{d:?}: the conversation holds 3, not 5"
    );
    let next: Vec<_> = (3..5)
        .map(|i| row("s", &format!("s-{i}"), "bot", Some(i as f64)))
        .collect();
    assert_eq!(
        f.db.insert_tracked("s", 3, &next, true).await.on(d),
        2,
        "{d:?}"
    );
    assert_eq!(
        f.db.insert_tracked("s", 5, &[], true).await.on(d),
        0,
        "{d:?}: nothing to insert"
    );
    // Without the outbox (a store without a broker).
    let quiet = [row("s", "s-5", "bot", Some(5.0))];
    assert_eq!(
        f.db.insert_tracked("s", 5, &quiet, false).await.on(d),
        1,
        "{d:?}"
    );
    // Another conversation's count is its own.
    assert_eq!(
        f.db.insert_tracked("other", 0, &[row("other", "o-0", "bot", None)], true)
            .await
            .on(d),
        1,
        "{d:?}"
    );

    let seqs = f
        .ints("SELECT seq FROM events WHERE sender_id = 's' ORDER BY id")
        .await;
    assert_eq!(
        seqs,
        (0..6).map(Some).collect::<Vec<_>>(),
        "{d:?}: positions 0.. in order"
    );
    assert_eq!(f.db.count_events("s").await.on(d), 6, "{d:?}");
    assert_eq!(
        f.db.outbox_len().await.on(d),
        6,
        "{d:?}: 5 + 1 saved with the outbox"
    );
    let outboxed = f
        .ints("SELECT e.seq FROM outbox o JOIN events e ON e.id = o.event_row_id WHERE e.sender_id = 's' ORDER BY o.event_row_id")
        .await;
    assert_eq!(
        outboxed,
        (0..5).map(Some).collect::<Vec<_>>(),
        "{d:?}: the outbox holds the events saved with it"
    );

    // A retry of a save whose outcome was lost: the ids are found, so the caller knows it succeeded.
    let ids: Vec<&str> = next
        .iter()
        .filter_map(|row| row.event_id.as_deref())
        .collect();
    assert_eq!(f.db.count_stored_ids("s", &ids).await.on(d), 2, "{d:?}");
    assert_eq!(
        f.db.count_stored_ids("other", &ids).await.on(d),
        0,
        "{d:?}: per conversation"
    );
    assert_eq!(
        f.db.count_stored_ids("s", &["nope"]).await.on(d),
        0,
        "{d:?}"
    );
    assert!(f.db.conversation_exists("s").await.on(d), "{d:?}");
    assert!(!f.db.conversation_exists("nobody").await.on(d), "{d:?}");
}

async fn concurrent_saves_of_one_conversation_let_exactly_one_win(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::TrackerStore).await.on(d);
    for round in 0..8 {
        let sender = format!("c{round}");
        let a: Vec<_> = (0..3)
            .map(|i| row(&sender, &format!("{sender}-a{i}"), "bot", None))
            .collect();
        let b: Vec<_> = (0..2)
            .map(|i| row(&sender, &format!("{sender}-b{i}"), "bot", None))
            .collect();
        let (one, two) = tokio::join!(
            f.db.insert_tracked(&sender, 0, &a, true),
            f.db.insert_tracked(&sender, 0, &b, true)
        );
        let (one, two) = (
            one.unwrap_or_else(|error| panic!("{d:?}: round {round}: {error:?}")),
            two.unwrap_or_else(|error| panic!("{d:?}: round {round}: {error:?}")),
        );
        assert!(
            (one, two) == (3, 0) || (one, two) == (0, 2),
            "{d:?}: round {round}: exactly one save wins, got {one} and {two}"
        );
        assert_eq!(
            f.db.count_events(&sender).await.on(d),
            one + two,
            "{d:?}: round {round}"
        );
        let winner: Vec<&str> = if one > 0 { a.iter() } else { b.iter() }
            .filter_map(|row| row.event_id.as_deref())
            .collect();
        assert_eq!(
            f.db.count_stored_ids(&sender, &winner).await.on(d),
            one + two,
            "{d:?}: round {round}"
        );
    }
    assert_eq!(
        f.db.outbox_len().await.on(d),
        f.int("SELECT count(*) FROM events").await as u64,
        "{d:?}"
    );
}

async fn tracked_conversations_are_told_apart_byte_for_byte(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::TrackerStore).await.on(d);
    // Ids a case- and accent-folding, blank-padding collation holds equal.
    let senders = ["alice", "Alice", "ALICE", "alicé", "alice "];
    for (i, sender) in senders.iter().enumerate() {
        let rows: Vec<_> = (0..2)
            .map(|j| row(sender, &format!("{i}-{j}"), "bot", None))
            .collect();
        let inserted = f.db.insert_tracked(sender, 0, &rows, true).await.on(d);
        assert_eq!(
            inserted, 2,
            "{d:?}: {sender:?} is a conversation of its own"
        );
        let next = [row(sender, &format!("{i}-2"), "bot", None)];
        assert_eq!(
            f.db.insert_tracked(sender, 2, &next, true).await.on(d),
            1,
            "{d:?}: {sender:?}"
        );
    }
    for sender in senders {
        assert_eq!(
            f.db.count_events(sender).await.on(d),
            3,
            "{d:?}: {sender:?}"
        );
        let read =
            f.db.read_conversation(sender, true)
                .await
                .on(d)
                .expect("a conversation");
        assert_eq!(read.rows.len(), 3, "{d:?}: {sender:?}");
    }
    let outbox = f.db.relay_outbox(100, |_| async { Ok::<(), String>(()) });
    assert!(
        matches!(outbox.await, Ok(RelayPass::Published(15))),
        "{d:?}"
    );
}

async fn read_conversation_selects_the_latest_session_by_rasas_rule(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    let rows = [
        row("s", "r1", "action", Some(1.0)),
        row("s", "r2", "session_started", Some(10.0)),
        row("s", "r3", "user", Some(11.0)),
        row("s", "r4", "session_started", Some(20.0)),
        row("s", "r5", "user", Some(21.0)),
        row("other", "o1", "session_started", Some(30.0)),
        // Stored after the latest session started, but with a clock behind it: Rasa leaves it out.
        row("s", "r6", "bot", Some(19.5)),
        row("s", "r7", "bot", None),
        row("s", "r8", "bot", Some(20.0)),
    ];
    f.db.store_batch(&rows, &[]).await.on(d);
    let data_of = |ids: &[&str]| -> Vec<String> {
        ids.iter()
            .map(|id| {
                rows.iter()
                    .find(|r| r.event_id.as_deref() == Some(*id))
                    .unwrap()
                    .data
                    .clone()
            })
            .collect()
    };
    let latest =
        f.db.read_conversation("s", true)
            .await
            .on(d)
            .expect("a conversation");
    assert_eq!(latest.total, 8, "{d:?}: the total counts every session");
    let data: Vec<String> = latest.rows.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        data,
        data_of(&["r4", "r5", "r8"]),
        "{d:?}: timestamp >= the latest session start, in id order"
    );
    assert_eq!(latest.rows[0].timestamp, Some(20.0), "{d:?}");
    assert!(
        latest.rows.windows(2).all(|w| w[0].row_id < w[1].row_id),
        "{d:?}: id order"
    );
    let all =
        f.db.read_conversation("s", false)
            .await
            .on(d)
            .expect("a conversation");
    assert_eq!(all.total, 8, "{d:?}");
    let data: Vec<String> = all.rows.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        data,
        data_of(&["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]),
        "{d:?}: every event"
    );
    // No session started: every event is the latest session.
    f.db.store_batch(
        &[
            row("n", "n1", "user", Some(1.0)),
            row("n", "n2", "bot", None),
        ],
        &[],
    )
    .await
    .on(d);
    let none =
        f.db.read_conversation("n", true)
            .await
            .on(d)
            .expect("a conversation");
    assert_eq!((none.total, none.rows.len()), (2, 2), "{d:?}");
    assert_eq!(
        f.db.read_conversation("nobody", true).await.on(d),
        None,
        "{d:?}"
    );
}

async fn sender_ids_are_distinct_and_in_byte_order(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    let senders = [
        "b", "B", "a", "A", "é", "e", "E", "ä", "z", "a ", "a b", "Alice", "alice", "ALICE",
        "日本", "💬", "_",
    ];
    let rows: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, s)| row(s, &format!("id-{i}"), "bot", Some(i as f64)))
        .collect();
    assert_eq!(
        f.db.store_batch(&rows, &[]).await.on(d),
        senders.len() as u64,
        "{d:?}"
    );
    let mut expected: Vec<String> = senders.iter().map(|s| (*s).to_owned()).collect();
    expected.sort(); // Rust orders strings by their UTF-8 bytes
    assert_eq!(
        f.db.sender_ids().await.on(d),
        expected,
        "{d:?}: every id once, in byte order"
    );
    // Each conversation is exactly its own, whatever the column's collation thinks is equal.
    for (i, sender) in senders.iter().enumerate() {
        let stored = f.db.conversation_rows(sender).await.on(d);
        let ids: Vec<Option<String>> = stored.into_iter().map(|r| r.event_id).collect();
        assert_eq!(
            ids,
            [Some(format!("id-{i}"))],
            "{d:?}: conversation_rows({sender:?})"
        );
        assert_eq!(
            f.db.count_events(sender).await.on(d),
            1,
            "{d:?}: count_events({sender:?})"
        );
        let read =
            f.db.read_conversation(sender, false)
                .await
                .on(d)
                .expect("a conversation");
        assert_eq!(
            (read.total, read.rows.len()),
            (1, 1),
            "{d:?}: read_conversation({sender:?})"
        );
        assert_eq!(
            f.db.count_stored_ids(sender, &[&format!("id-{i}")])
                .await
                .on(d),
            1,
            "{d:?}: {sender:?}"
        );
    }
    let selection = ExportSelection {
        only: vec!["alice".into(), "e".into()],
        ..Default::default()
    };
    assert_eq!(
        f.db.export_conversations(&selection).await.on(d),
        ["alice", "e"],
        "{d:?}: only exactly these"
    );
    assert_eq!(
        f.db.count_selected(&selection.only, &selection).await.on(d),
        2,
        "{d:?}"
    );
    let resume = ExportSelection {
        from: Some("a".into()),
        ..Default::default()
    };
    let after: Vec<String> = expected
        .iter()
        .filter(|s| s.as_str() >= "a")
        .cloned()
        .collect();
    assert_eq!(
        f.db.export_conversations(&resume).await.on(d),
        after,
        "{d:?}: resumes in byte order"
    );
}

/// How often the relay test tries a pass again while the previous pass's lock is still held.
const RELAY_BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(50);

async fn relay_publishes_in_row_order_and_deletes_only_after_success(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::TrackerStore).await.on(d);
    for (sender, n) in [("x", 3), ("y", 2), ("x", 2)] {
        let first = f.db.count_events(sender).await.on(d);
        let rows: Vec<_> = (0..n)
            .map(|i| row(sender, &format!("{sender}-{}", first + i), "bot", None))
            .collect();
        assert_eq!(
            f.db.insert_tracked(sender, first, &rows, true).await.on(d),
            n,
            "{d:?}"
        );
    }
    // A failing publish keeps every entry.
    let pass = f.db.relay_outbox(100, |entries| async move {
        assert_eq!(entries.len(), 7);
        Err::<(), _>("the broker is gone")
    });
    assert!(
        matches!(pass.await, Err(RelayError::Publish("the broker is gone"))),
        "{d:?}"
    );
    assert_eq!(
        f.db.outbox_len().await.on(d),
        7,
        "{d:?}: kept after a failed publish"
    );

    // Entries come in row order, are still there while publishing, and go once publish returned Ok. The failed
    // pass's lock goes with its discarded connection, which the server may notice a moment later: a pass that finds
    // the relay busy is tried again (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pass = loop {
        let db = f.db.clone();
        let pass =
            f.db.relay_outbox(4, |entries| async move {
                let seen: Vec<(String, Option<i64>, Option<String>)> = entries
                    .iter()
                    .map(|e| (e.sender_id.clone(), e.seq, e.event_id.clone()))
                    .collect();
                let still = db.outbox_len().await.map_err(|e| format!("{e:?}"))?;
                if still != 7 {
                    return Err(format!(
                        "entries deleted before publish returned: {still} left"
                    ));
                }
                if !entries.windows(2).all(|w| w[0].row_id < w[1].row_id)
                    || entries.iter().any(|e| e.data.is_empty())
                {
                    return Err(format!("out of order or empty: {seen:?}"));
                }
                let expected: Vec<(String, Option<i64>, Option<String>)> =
                    [("x", 0), ("x", 1), ("x", 2), ("y", 0)]
                        .iter()
                        .map(|(s, i)| (s.to_string(), Some(*i), Some(format!("{s}-{i}"))))
                        .collect();
                if seen != expected {
                    return Err(format!("{seen:?}"));
                }
                Ok(())
            })
            .await;
        if !matches!(pass, Ok(RelayPass::Busy)) || std::time::Instant::now() > deadline {
            break pass;
        }
        tokio::time::sleep(RELAY_BUSY_POLL).await;
    };
    match pass {
        Ok(RelayPass::Published(4)) => {}
        Err(RelayError::Publish(message)) => panic!("{d:?}: {message}"),
        other => panic!("{d:?}: {other:?}"),
    }
    assert_eq!(
        f.db.outbox_len().await.on(d),
        3,
        "{d:?}: the published entries are deleted"
    );
    let rest = f.db.relay_outbox(100, |entries| async move {
        let ids: Vec<String> = entries.iter().filter_map(|e| e.event_id.clone()).collect();
        if ids == ["y-1", "x-3", "x-4"] {
            Ok(())
        } else {
            Err(format!("{ids:?}"))
        }
    });
    assert!(matches!(rest.await, Ok(RelayPass::Published(3))), "{d:?}");
    assert_eq!(f.db.outbox_len().await.on(d), 0, "{d:?}");
    let empty = f.db.relay_outbox(100, |_| async {
        Err::<(), _>("not called on an empty outbox")
    });
    assert!(matches!(empty.await, Ok(RelayPass::Published(0))), "{d:?}");
    assert_eq!(f.db.count_events("x").await.on(d), 5, "{d:?}: events stay");
}

async fn relay_is_busy_while_another_pass_holds_the_outbox(f: &Fixture) {
    let d = f.dialect;
    if d == TestDialect::Sqlite {
        return; // The SQLite tracker store serves one process; its relay takes no lock (see sqlite.rs).
    }
    f.db.migrate(Schema::TrackerStore).await.on(d);
    f.db.insert_tracked("s", 0, &[row("s", "s-0", "bot", None)], true)
        .await
        .on(d);
    let other = Database::connect_lazy(&f.url, &ConnectOptions::default()).on(d);
    let pass =
        f.db.relay_outbox(10, |_| async move {
            // Another relay (another process) while this one holds the outbox.
            let inner = other
                .relay_outbox(10, |_| async {
                    Err::<(), String>("published twice".into())
                })
                .await;
            other.close().await;
            match inner {
                Ok(RelayPass::Busy) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(RelayError::Publish(error)) => Err(error),
                Err(RelayError::Storage(error)) => Err(format!("{error:?}")),
            }
        })
        .await;
    match pass {
        Ok(RelayPass::Published(1)) => {}
        Err(RelayError::Publish(message)) => panic!("{d:?}: the second pass: {message}"),
        other => panic!("{d:?}: {other:?}"),
    }
    assert_eq!(f.db.outbox_len().await.on(d), 0, "{d:?}");
}

async fn a_cancelled_relay_pass_releases_the_outbox(f: &Fixture) {
    let d = f.dialect;
    if d == TestDialect::Sqlite {
        return; // no relay lock
    }
    f.db.migrate(Schema::TrackerStore).await.on(d);
    f.db.insert_tracked("s", 0, &[row("s", "s-0", "bot", None)], true)
        .await
        .on(d);
    // A pass whose publish never returns (a broker that never confirms) is given up by its caller.
    let pass =
        f.db.relay_outbox(10, |_| std::future::pending::<Result<(), String>>());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), pass)
            .await
            .is_err(),
        "{d:?}: the pass hangs"
    );
    // Its lock went with its connection: another relay (another process) gets the outbox.
    let other = Database::connect_lazy(&f.url, &ConnectOptions::default()).on(d);
    colloquy_testkit::wait_until(
        &format!("{d:?}: the outbox to be free again"),
        Duration::from_secs(10),
        || {
            let other = other.clone();
            async move {
                let pass = other
                    .relay_outbox(10, |_| async { Ok::<(), String>(()) })
                    .await;
                matches!(pass, Ok(RelayPass::Published(1)))
            }
        },
    )
    .await;
    other.close().await;
    assert_eq!(f.db.outbox_len().await.on(d), 0, "{d:?}");
}

async fn a_write_cancelled_half_way_leaves_nothing_open(f: &Fixture) {
    use sqlx::Connection as _;
    let d = f.dialect;
    if d == TestDialect::Sqlite {
        return; // its writer holds the only write lock from BEGIN IMMEDIATE on: nothing can stall it half-way
    }
    f.db.migrate(Schema::Events).await.on(d);
    let one = ConnectOptions {
        max_connections: 1,
        ..ConnectOptions::default()
    };
    let db = Database::connect_lazy(&f.url, &one).on(d);
    let letter = DeadLetterRow {
        source: "q".into(),
        body: b"x".to_vec(),
        properties: "{}".into(),
        error: "e".into(),
    };
    // Another session holds `dead_letters` locked: the batch inserts its events, then waits, and its caller
    // gives up (a timeout, a shutdown) half-way through the transaction.
    let cancelled = match d {
        TestDialect::Postgres => {
            let mut locker = sqlx::PgConnection::connect(&f.url).await.on(d);
            sqlx::raw_sql("BEGIN; LOCK TABLE dead_letters IN ACCESS EXCLUSIVE MODE")
                .execute(&mut locker)
                .await
                .on(d);
            let cancelled = tokio::time::timeout(
                Duration::from_millis(500),
                db.store_batch(
                    &[row("c", "c1", "bot", None)],
                    std::slice::from_ref(&letter),
                ),
            )
            .await;
            sqlx::raw_sql("COMMIT").execute(&mut locker).await.on(d);
            cancelled
        }
        TestDialect::MySql => {
            let mut locker = sqlx::MySqlConnection::connect(&f.url).await.on(d);
            sqlx::raw_sql("LOCK TABLES dead_letters WRITE")
                .execute(&mut locker)
                .await
                .on(d);
            let cancelled = tokio::time::timeout(
                Duration::from_millis(500),
                db.store_batch(
                    &[row("c", "c1", "bot", None)],
                    std::slice::from_ref(&letter),
                ),
            )
            .await;
            sqlx::raw_sql("UNLOCK TABLES")
                .execute(&mut locker)
                .await
                .on(d);
            cancelled
        }
        TestDialect::Sqlite => unreachable!(),
    };
    assert!(
        cancelled.is_err(),
        "{d:?}: the batch was stalled and given up"
    );
    // The next batch on that pool (one connection) returns Ok: it must be committed, and nothing of the
    // cancelled one may be.
    assert_eq!(
        db.store_batch(&[row("n", "n1", "bot", None)], &[])
            .await
            .on(d),
        1,
        "{d:?}"
    );
    assert_eq!(
        f.db.count_events("n").await.on(d),
        1,
        "{d:?}: the batch that returned Ok is committed"
    );
    db.close().await;
    assert_eq!(
        f.db.count_events("c").await.on(d),
        0,
        "{d:?}: nothing of the cancelled batch"
    );
    assert_eq!(
        f.db.last_dead_letter_id().await.on(d),
        0,
        "{d:?}: nor its dead letter"
    );
}

async fn export_selects_filters_and_resumes(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    let rows = [
        row("a", "a1", "user", Some(100.0)),
        row("a", "a2", "bot", Some(200.0)),
        row("b", "b1", "user", Some(150.0)),
        row("b", "b2", "bot", None),
        row("c", "c1", "user", Some(300.0)),
    ];
    f.db.store_batch(&rows, &[]).await.on(d);
    let all = ExportSelection::default();
    let conversations = f.db.export_conversations(&all).await.on(d);
    assert_eq!(conversations, ["a", "b", "c"], "{d:?}");
    assert_eq!(
        f.db.count_selected(&conversations, &all).await.on(d),
        5,
        "{d:?}: unbounded counts every event"
    );
    let window = ExportSelection {
        minimum_timestamp: Some(150.0),
        maximum_timestamp: Some(300.0),
        ..Default::default()
    };
    assert_eq!(
        f.db.count_selected(&conversations, &window).await.on(d),
        2,
        "{d:?}: [150, 300)"
    );
    let selected: usize = {
        let mut n = 0;
        for c in &conversations {
            n +=
                f.db.conversation_rows(c)
                    .await
                    .on(d)
                    .iter()
                    .filter(|r| window.selects(r.timestamp))
                    .count();
        }
        n
    };
    assert_eq!(selected, 2, "{d:?}: selects() agrees with count_selected");
    let min_only = ExportSelection {
        minimum_timestamp: Some(200.0),
        ..Default::default()
    };
    assert_eq!(
        f.db.count_selected(&conversations, &min_only).await.on(d),
        2,
        "{d:?}"
    );
    let resume = ExportSelection {
        from: Some("b".into()),
        ..Default::default()
    };
    let rest = f.db.export_conversations(&resume).await.on(d);
    assert_eq!(rest, ["b", "c"], "{d:?}: resumes at the given conversation");
    assert_eq!(f.db.count_selected(&rest, &resume).await.on(d), 3, "{d:?}");
    let only = ExportSelection {
        only: vec!["c".into(), "a".into(), "zz".into()],
        from: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(
        f.db.export_conversations(&only).await.on(d),
        ["c"],
        "{d:?}: only and from together"
    );
    assert_eq!(
        f.db.count_selected(&[], &all).await.on(d),
        0,
        "{d:?}: no conversations"
    );
    let many: Vec<String> = (0..1200)
        .map(|i| format!("m{i}"))
        .chain(["a".to_owned()])
        .collect();
    assert_eq!(
        f.db.count_selected(&many, &all).await.on(d),
        2,
        "{d:?}: a long list of conversations"
    );
    let read = f.db.conversation_rows("b").await.on(d);
    assert_eq!(
        read.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        [Some("b1".into()), Some("b2".into())],
        "{d:?}"
    );
    assert_eq!(
        read.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        [Some(150.0), None],
        "{d:?}"
    );
    assert!(
        read[0].row_id > 0 && read[0].row_id < read[1].row_id,
        "{d:?}: row ids"
    );
    assert!(
        f.db.conversation_rows("nobody").await.on(d).is_empty(),
        "{d:?}"
    );
    let (by_type, conversations) = f.db.event_counts().await.on(d);
    assert_eq!(
        by_type,
        [("user".to_owned(), 3), ("bot".to_owned(), 2)],
        "{d:?}"
    );
    assert_eq!(conversations, 3, "{d:?}");
}

async fn dead_letters_list_previews_and_deletes(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    assert_eq!(f.db.last_dead_letter_id().await.on(d), 0, "{d:?}: none yet");
    let letters: Vec<DeadLetterRow> = (0..3u8)
        .map(|i| DeadLetterRow {
            source: format!("q{i}"),
            body: (0..200_000u32).map(|b| (b % 251) as u8 ^ i).collect(),
            properties: "{}".into(),
            error: format!("error {i}"),
        })
        .collect();
    f.db.store_batch(&[], &letters).await.on(d);
    let previews = f.db.dead_letters(0, 10, Some(16)).await.on(d);
    assert_eq!(previews.len(), 3, "{d:?}");
    for (preview, letter) in previews.iter().zip(&letters) {
        assert_eq!(
            preview.body,
            letter.body[..16],
            "{d:?}: the first bytes only"
        );
        assert_eq!(preview.body_len, 200_000, "{d:?}: the whole body's length");
        assert_eq!(preview.error, letter.error, "{d:?}");
    }
    let whole = f.db.dead_letters(0, 10, None).await.on(d);
    assert_eq!(
        whole[2].body, letters[2].body,
        "{d:?}: whole bodies when asked"
    );
    let last = f.db.last_dead_letter_id().await.on(d);
    assert_eq!(last, previews[2].id, "{d:?}: the last id");
    let page = f.db.dead_letters(previews[0].id, 1, Some(0)).await.on(d);
    assert_eq!(page.len(), 1, "{d:?}: limit");
    assert_eq!(page[0].id, previews[1].id, "{d:?}: after");
    assert!(page[0].body.is_empty(), "{d:?}: a preview of 0 bytes");
    f.db.delete_dead_letter(previews[1].id).await.on(d);
    let ids: Vec<i64> =
        f.db.dead_letters(0, 10, Some(1))
            .await
            .on(d)
            .iter()
            .map(|l| l.id)
            .collect();
    assert_eq!(ids, [previews[0].id, previews[2].id], "{d:?}: deleted");
    f.db.delete_dead_letter(previews[1].id).await.on(d);
    assert_eq!(f.db.last_dead_letter_id().await.on(d), last, "{d:?}");
}

async fn a_missing_table_or_unique_index_is_a_schema_fault(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::Events).await.on(d);
    f.db.store_batch(&[row("s", "e0", "bot", None)], &[])
        .await
        .on(d);
    // PostgreSQL dedupes on the compact `event_key`, the others on `event_id`.
    let dedupe_index = match d {
        TestDialect::Postgres => "events_event_key",
        _ => "events_event_id_key",
    };
    f.exec(&f.drop_index_sql(dedupe_index)).await;
    let error =
        f.db.store_batch(&[row("s", "e1", "bot", None)], &[])
            .await
            .expect_err("no unique dedupe index");
    assert!(
        error.is_schema_missing() && error.is_config(),
        "{d:?}: a dropped unique index: {:?}: {error:?}",
        error.kind()
    );
    assert!(!error.is_transient(), "{d:?}");
    // The pool still works afterwards.
    assert_eq!(
        f.db.count_events("s").await.on(d),
        1,
        "{d:?}: nothing stored"
    );

    f.exec("DROP TABLE events").await;
    let error =
        f.db.store_batch(&[row("s", "e2", "bot", None)], &[])
            .await
            .expect_err("no events table");
    assert!(
        error.is_schema_missing() && error.is_config(),
        "{d:?}: a missing table on write: {:?}: {error:?}",
        error.kind()
    );
    let error =
        f.db.read_conversation("s", true)
            .await
            .expect_err("no events table");
    assert!(
        error.is_schema_missing(),
        "{d:?}: a missing table on read: {:?}: {error:?}",
        error.kind()
    );
    let error =
        f.db.require_events_table()
            .await
            .expect_err("no events table");
    assert!(
        error.is_schema_missing() && error.is_config(),
        "{d:?}: require_events_table: {error:?}"
    );
    f.db.require_dead_letters_table()
        .await
        .unwrap_or_else(|error| panic!("{d:?}: {error:?}"));
    f.exec("DROP TABLE dead_letters").await;
    let error =
        f.db.dead_letters(0, 10, Some(10))
            .await
            .expect_err("no dead_letters table");
    assert!(
        error.is_schema_missing(),
        "{d:?}: {:?}: {error:?}",
        error.kind()
    );
    assert!(
        f.db.require_dead_letters_table()
            .await
            .unwrap_err()
            .is_config(),
        "{d:?}"
    );
}

/// `url` with its user or database replaced.
fn with(url: &str, user: Option<&str>, database: Option<&str>, port: Option<u16>) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    if let Some(user) = user {
        parsed.set_username(user).unwrap();
    }
    if let Some(database) = database {
        parsed.set_path(&format!("/{database}"));
    }
    if let Some(port) = port {
        parsed.set_port(Some(port)).unwrap();
    }
    parsed.to_string()
}

fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

async fn refused_credentials_and_missing_databases_are_config_errors(f: &Fixture) {
    let d = f.dialect;
    let cases: Vec<(&str, String)> = match d {
        TestDialect::Postgres | TestDialect::MySql => vec![
            (
                "refused credentials",
                with(&f.url, Some("colloquy_no_such_user"), None, None),
            ),
            (
                "a missing database",
                with(&f.url, None, Some("colloquy_no_such_database"), None),
            ),
        ],
        TestDialect::Sqlite => {
            // A read-only command on a file that does not exist.
            let missing = std::env::temp_dir().join(format!("{}-missing.db", f.name()));
            vec![(
                "a missing database file",
                format!("sqlite://{}", missing.display()),
            )]
        }
    };
    for (what, url) in cases {
        let options = if d == TestDialect::Sqlite {
            ConnectOptions::read_only()
        } else {
            quick()
        };
        let db = Database::connect_lazy(&url, &options).on(d);
        let error = db.ping().await.expect_err("the database refuses");
        assert!(
            error.is_config(),
            "{d:?}: {what} is a configuration error, not {:?}: {error:?}",
            error.kind()
        );
        let error = Database::connect(&url, &options, 3)
            .await
            .expect_err("the database refuses");
        assert!(
            error.is_config(),
            "{d:?}: {what}: connect gives up at once: {error:?}"
        );
        assert!(
            !format!("{error}").contains("colloquy_no_such_user:"),
            "{d:?}"
        );
    }
}

async fn a_server_that_is_down_is_transient(f: &Fixture) {
    let d = f.dialect;
    if d == TestDialect::Sqlite {
        return; // no server
    }
    // Nothing listens on port 1.
    let url = with(&f.url, None, None, Some(1));
    let db = Database::connect_lazy(&url, &quick()).on(d);
    let error = db.ping().await.expect_err("nothing listens");
    assert!(
        error.is_transient(),
        "{d:?}: a server that is down is transient, not {:?}: {error:?}",
        error.kind()
    );
    let error = db
        .store_batch(&[row("s", "e", "bot", None)], &[])
        .await
        .expect_err("nothing listens");
    assert!(error.is_transient(), "{d:?}: {error:?}");
    let error = Database::connect(&url, &quick(), 2)
        .await
        .expect_err("nothing listens");
    assert!(error.is_transient(), "{d:?}: {error:?}");
}
