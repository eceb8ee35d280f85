//! `--analytics` end to end: Rasa-published conversations through the real RabbitMQ into PostgreSQL,
//! MySQL/MariaDB and SQLite, in small batches that split every conversation, then everything published again
//! (a replay, as `rasa export` twice or `colloquy import` twice does): the analytics tables hold each event
//! once and equal exactly what `analytics rebuild` computes from the `events` table.

use colloquy_testkit::consumer as support;
use colloquy_testkit::on_every_dialect;

use colloquy_testkit::{TestDialect, interleave, rasa_conversation, wait_until};
use support::{Harness, STORE_TIMEOUT, TestStore};

async fn analytics_are_kept_exactly_once(dialect: TestDialect) {
    let mut harness = Harness::unmigrated(TestStore::of(dialect).await).await;
    harness.analytics = true;
    harness.options.batch_size = 7;
    harness.prefetch = 14;
    harness.start().await;
    let bodies = interleave(
        (0..4)
            .map(|n| rasa_conversation(&format!("user-{n}"), 3 + n))
            .collect(),
    );
    harness.publish_like_rasa(&bodies).await;
    harness.wait_for_events(bodies.len() as i64).await;
    let kept = harness.database.analytics_dump().await.unwrap();
    let events = kept.iter().filter(|r| r.starts_with("rasa_event:")).count();
    assert_eq!(
        events,
        bodies.len(),
        "{dialect:?}: one rasa_event per event"
    );
    assert_eq!(
        kept.iter()
            .filter(|r| r.starts_with("rasa_sender:"))
            .count(),
        4
    );
    assert_eq!(
        kept.iter().filter(|r| r.starts_with("rasa_turn:")).count(),
        3 + 4 + 5 + 6
    );

    // A replay, then one new event: once it is stored, the replay was handled before it.
    harness.publish_like_rasa(&bodies).await;
    let last = rasa_conversation("late", 0).remove(0);
    let late_sender = colloquy_analytics::ids::uuid_of(&["rasa_sender", "late"]);
    harness.publish_like_rasa(&[last]).await;
    harness.wait_for_events(bodies.len() as i64 + 1).await;
    let after_replay: Vec<String> = harness
        .database
        .analytics_dump()
        .await
        .unwrap()
        .into_iter()
        .filter(|row| {
            !row.contains("\"late\"") && !row.contains("'late'") && !row.contains(&late_sender)
        })
        .collect();
    assert_eq!(
        after_replay, kept,
        "{dialect:?}: the replay changed nothing"
    );
    let summary = harness.stop().await;
    assert_eq!(summary.events_stored, bodies.len() as u64 + 1);

    // The rebuild from the events table gives exactly what the consumer kept.
    let database = harness.database.clone();
    let incremental = database.analytics_dump().await.unwrap();
    database.reset_analytics().await.unwrap();
    let senders = database.sender_ids().await.unwrap();
    database
        .derive_analytics(&senders, &Default::default())
        .await
        .unwrap();
    wait_until("the rebuild to be visible", STORE_TIMEOUT, || {
        let database = database.clone();
        let incremental = incremental.clone();
        async move { database.analytics_dump().await.unwrap() == incremental }
    })
    .await;
    harness.cleanup().await;
}

on_every_dialect!(analytics_are_kept_exactly_once);
