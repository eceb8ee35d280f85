//! Issue 12's schema on every dialect: what a new database gets (64-bit ids; on PostgreSQL the compact
//! dedupe key and one index on `sender_id`), what `events_status` reports, and the conversions of a table
//! that held rows before, which run only on request and keep every stored event deduplicated.

use colloquy_storage::{EventRow, Schema};
use colloquy_testkit::TestDialect;

use crate::adoption::rasa_ddl;
use crate::fixture::{Fixture, OnDialect, row};

crate::dialect_tests!(
    a_new_table_gets_64_bit_ids_and_its_dedupe_index,
    a_table_rasa_filled_is_converted_only_on_request_and_keeps_deduping,
);

async fn index_count(f: &Fixture, names: &str) -> i64 {
    let sql = match f.dialect {
        TestDialect::Postgres => format!(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'events' AND indexname IN ({names})"
        ),
        TestDialect::MySql => format!(
            "SELECT count(DISTINCT index_name) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = 'events' AND index_name IN ({names})"
        ),
        TestDialect::Sqlite => format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
             AND name IN ({names})"
        ),
    };
    f.int(&sql).await
}

async fn a_new_table_gets_64_bit_ids_and_its_dedupe_index(f: &Fixture) {
    let d = f.dialect;
    f.db.migrate(Schema::TrackerStore).await.on(d);
    let status = f.db.events_status().await.on(d);
    assert_eq!(status.id_bits, 64, "{d:?}: {status:?}");
    assert_eq!(status.last_id, 0, "{d:?}");
    assert!(status.legacy_indexes.is_empty(), "{d:?}: {status:?}");
    if d == TestDialect::Postgres {
        assert!(status.compact_key, "{d:?}: {status:?}");
        assert_eq!(
            index_count(f, "'events_event_id_key', 'events_sender_id_id'").await,
            0,
            "{d:?}: no unique event_id index, one index on sender_id"
        );
        assert_eq!(
            index_count(f, "'events_event_key', 'ix_events_sender_id'").await,
            2,
            "{d:?}"
        );
        assert_eq!(
            f.int(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'outbox' \
                 AND column_name = 'event_row_id' AND data_type = 'bigint'"
            )
            .await,
            1,
            "{d:?}: the outbox refers to 64-bit ids"
        );
    }
    let rows = [row("s", "a", "bot", Some(1.5)), row("s", "b", "bot", None)];
    assert_eq!(f.db.store_batch(&rows, &[]).await.on(d), 2, "{d:?}");
    assert_eq!(
        f.db.store_batch(&rows, &[]).await.on(d),
        0,
        "{d:?}: redelivered"
    );
    // PostgreSQL's sequence also spends ids on skipped redeliveries: what it gave out is what counts.
    assert!(f.db.events_status().await.on(d).last_id >= 2, "{d:?}");
    // Migrating again changes nothing.
    f.db.migrate(Schema::TrackerStore).await.on(d);
    assert_eq!(f.db.store_batch(&rows, &[]).await.on(d), 0, "{d:?}");
}

/// Rows whose keys stress the formula: fractions of a microsecond, no timestamp, a negative one.
fn colloquy_rows() -> Vec<EventRow> {
    vec![
        row("bob", "e1", "user", Some(1_700_000_000.123_456_7)),
        row("bob", "e2", "bot", Some(1_700_000_000.999_999_9)),
        row("bob", "e3", "action", None),
        row("carol", "e4", "user", Some(-3.25)),
        row("carol", "é5", "user", Some(0.000_000_1)),
    ]
}

async fn a_table_rasa_filled_is_converted_only_on_request_and_keeps_deduping(f: &Fixture) {
    let d = f.dialect;
    f.exec(rasa_ddl(d)).await;
    f.exec(
        "INSERT INTO events (sender_id, type_name, timestamp, data) \
         VALUES ('alice', 'action', 1700000000.5, '{}'), ('alice', 'bot', 1700000001.5, '{}')",
    )
    .await;
    f.db.migrate(Schema::Events).await.on(d);
    let status = f.db.events_status().await.on(d);
    // A table holding rows keeps what it has until asked: Rasa's int4 id (64-bit on SQLite anyway).
    let rasa_bits = if d == TestDialect::Sqlite { 64 } else { 32 };
    assert_eq!(status.id_bits, rasa_bits, "{d:?}: {status:?}");
    assert_eq!(status.last_id, 2, "{d:?}");
    assert!(!status.compact_key, "{d:?}: {status:?}");
    if d == TestDialect::Postgres {
        assert_eq!(status.legacy_indexes.len(), 2, "{d:?}: {status:?}");
        assert!(status.id_used_percent() > 0.0 && status.id_used_percent() < 1e-6);
    }

    let rows = colloquy_rows();
    assert_eq!(f.db.store_batch(&rows, &[]).await.on(d), 5, "{d:?}");
    assert_eq!(
        f.db.store_batch(&rows, &[]).await.on(d),
        0,
        "{d:?}: deduped by event_id"
    );

    if d == TestDialect::Postgres {
        // As if stored before the key existed: the conversion fills the keys by the same formula as Rust.
        f.exec("UPDATE events SET event_key = NULL").await;
        let filled = std::sync::atomic::AtomicU64::new(0);
        let steps =
            f.db.convert_event_key(2, &|n| {
                filled.store(n, std::sync::atomic::Ordering::Relaxed)
            })
            .await
            .on(d);
        assert_eq!(steps.len(), 3, "{d:?}: {steps:?}");
        assert_eq!(
            filled.into_inner(),
            5,
            "{d:?}: Rasa's rows have no event_id, no key"
        );
        for row in &rows {
            let key = row.dedupe_key().expect("an id");
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                f.int(&format!(
                    "SELECT count(*) FROM events WHERE event_key = '\\x{hex}'::bytea"
                ))
                .await,
                1,
                "{d:?}: the SQL key of {:?} equals the Rust key",
                row.event_id
            );
        }
        let status = f.db.events_status().await.on(d);
        assert!(status.compact_key, "{d:?}: {status:?}");
        assert!(status.legacy_indexes.is_empty(), "{d:?}: {status:?}");
        // This handle looked up the event_id index before: it finds the new one by itself.
        assert_eq!(
            f.db.store_batch(&rows, &[]).await.on(d),
            0,
            "{d:?}: redeliveries of events stored before the conversion are still skipped"
        );
        // Resumable: a second run finds everything done.
        f.db.convert_event_key(2, &|_| {}).await.on(d);
    } else {
        let error = f.db.convert_event_key(2, &|_| {}).await;
        assert!(
            error.as_ref().is_err_and(|e| e.is_config()),
            "{d:?}: the key is PostgreSQL's: {error:?}"
        );
    }

    let steps = f.db.convert_ids().await.on(d);
    assert_eq!(steps.len(), 1, "{d:?}");
    assert_eq!(f.db.events_status().await.on(d).id_bits, 64, "{d:?}");
    let next = [row("alice", "after", "bot", Some(1_700_000_002.0))];
    assert_eq!(f.db.store_batch(&next, &[]).await.on(d), 1, "{d:?}");
    let last_id = f.db.events_status().await.on(d).last_id;
    assert!(
        last_id >= 8,
        "{d:?}: ids continue after the conversion: {last_id}"
    );
    assert_eq!(f.db.count_events("alice").await.on(d), 3, "{d:?}");
    assert_eq!(f.db.count_events("bob").await.on(d), 3, "{d:?}");
}
