//! The SQL store on every dialect (PostgreSQL, MySQL/MariaDB, SQLite): the shared conformance cases, Rasa's own
//! rows read and continued, and `close` publishing everything saved before it.

use colloquy_testkit::tracker_store as common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use colloquy_events::Tracker;
use colloquy_storage::{ConnectOptions, Database, EventRow, Schema};
use colloquy_testkit::{TestDatabase, TestDialect, wait_until};
use colloquy_tracker_store::{SqlConfig, SqlStore, TrackerStore};
use common::{Recorder, conformance, event, in_process_broker, session_start, turn};
use serde_json::json;

/// Runs `body` with a fresh database of `dialect` and a store streaming to the in-process broker (and what
/// its subscription received); drops the database even when the body fails.
async fn with_store<F, Fut>(dialect: TestDialect, body: F) -> Result<()>
where
    F: FnOnce(Arc<SqlStore>, Arc<Recorder>, TestDatabase) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let db = dialect.fresh_database().await;
    let (broker, received) = in_process_broker();
    let result = match SqlStore::connect(&SqlConfig::from_url(&db.url)?, Some(broker)).await {
        Ok(store) => {
            let store = Arc::new(store);
            let result = body(store.clone(), received, db.clone()).await;
            store.close().await.ok();
            result
        }
        Err(error) => Err(error.into()),
    };
    db.drop_database().await;
    result.with_context(|| format!("on {dialect:?}"))
}

async fn sessions_and_streaming(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, _| async move {
        conformance::sessions_and_streaming(store.as_ref(), &broker).await
    })
    .await
}

async fn only_new_events_are_streamed(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, _| async move {
        conformance::only_new_events_are_streamed(store.as_ref(), &broker).await
    })
    .await
}

async fn retried_save_is_idempotent(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, _| async move {
        conformance::retried_save_is_idempotent(store.as_ref(), &broker).await?;
        wait_until("the outbox to drain", Duration::from_secs(20), || async {
            store.outbox_len().await.unwrap() == 0
        })
        .await;
        ensure!(
            broker.count() == 7,
            "nothing published twice: {}",
            broker.count()
        );
        Ok(())
    })
    .await
}

async fn concurrent_saves_of_one_conversation(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, _| async move {
        conformance::concurrent_saves_of_one_conversation(store, broker).await
    })
    .await
}

/// On MySQL/MariaDB also: InnoDB detected no deadlock in this database. The store runs a deadlock's victim
/// again, so a deadlock rarely fails a save; they made saves fail under load in CI until the outbox insert
/// stopped taking shared locks (hundreds of them per run before, none after).
async fn contended_and_new_conversations_at_once(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, db| async move {
        conformance::contended_and_new_conversations_at_once(store, broker).await?;
        if dialect == TestDialect::MySql {
            let latest = latest_innodb_deadlock(&db.url).await?;
            ensure!(
                !latest.contains(&db.name),
                "saves deadlocked in {}:\n{latest}",
                db.name
            );
        }
        Ok(())
    })
    .await
}

/// The "LATEST DETECTED DEADLOCK" section of `SHOW ENGINE INNODB STATUS` (empty when there was none): the
/// server keeps only the latest, which names the tables (with their database) it involved.
async fn latest_innodb_deadlock(url: &str) -> Result<String> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::MySqlConnection::connect(url).await?;
    let status: String = sqlx::query("SHOW ENGINE INNODB STATUS")
        .fetch_one(&mut conn)
        .await
        .context("SHOW ENGINE INNODB STATUS (needs the PROCESS privilege)")?
        .try_get("Status")?;
    conn.close().await?;
    Ok(status
        .split_once("LATEST DETECTED DEADLOCK")
        .map(|(_, rest)| {
            rest.split("\nTRANSACTIONS\n")
                .next()
                .unwrap_or(rest)
                .to_owned()
        })
        .unwrap_or_default())
}

async fn many_conversations_in_parallel(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, _| async move {
        conformance::many_conversations_in_parallel(store.clone(), broker, 300).await?;
        wait_until("the outbox to drain", Duration::from_secs(60), || async {
            store.outbox_len().await.unwrap() == 0
        })
        .await;
        Ok(())
    })
    .await
}

/// `close` returns only once everything saved before it is published (issue: events sat in the outbox
/// until the next start of a store).
async fn close_publishes_everything_saved(dialect: TestDialect) -> Result<()> {
    let db = dialect.fresh_database().await;
    let result = async {
        let (broker, received) = in_process_broker();
        let store =
            Arc::new(SqlStore::connect(&SqlConfig::from_url(&db.url)?, Some(broker)).await?);
        let mut tasks = Vec::new();
        for n in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tracker = Tracker::new(format!("closing-{n}"));
                tracker.apply_all(session_start(1.0));
                store.save(&mut tracker).await?;
                tracker.apply_all(turn(2.0, n));
                store.save(&mut tracker).await?;
                anyhow::Ok(tracker.events().len())
            }));
        }
        let mut saved = 0;
        for task in tasks {
            saved += task.await??;
        }
        store.close().await?;
        // Published before `close` returned: the in-process broker has handed them to the subscription.
        wait_until(
            "the subscription to receive them",
            Duration::from_secs(10),
            || async { received.count() >= saved },
        )
        .await;
        ensure!(received.count() == saved, "{} of {saved}", received.count());
        let inspector = Database::connect_lazy(&db.url, &ConnectOptions::default())?;
        ensure!(
            inspector.outbox_len().await? == 0,
            "the outbox is empty after close"
        );
        inspector.close().await;
        Ok(())
    }
    .await;
    db.drop_database().await;
    result.with_context(|| format!("on {dialect:?}"))
}

/// Rows Rasa inserted itself (no `event_id`, no `seq`) are read by us, and we continue the conversation.
async fn we_read_and_continue_rasas_rows(dialect: TestDialect) -> Result<()> {
    with_store(dialect, |store, broker, db| async move {
        let id = "theirs";
        // Exactly as Rasa's SQLTrackerStore writes them: `data` is Python's json.dumps of the event.
        let rasa_rows = [
            ("action", 1700000000.5, None, Some("action_session_start"), r#"{"event": "action", "timestamp": 1700000000.5, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}"#),
            ("session_started", 1700000000.25, None, None, r#"{"event": "session_started", "timestamp": 1700000000.25, "metadata": {"model_id": "m1", "assistant_id": "a1"}}"#),
            ("action", 1700000000.625, None, Some("action_listen"), r#"{"event": "action", "timestamp": 1700000000.625, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}"#),
            ("user", 1700000000.75, Some("request_restaurant"), None, r#"{"event": "user", "timestamp": 1700000000.75, "metadata": {"source": "web"}, "text": "I want \u00e9 food \ud83c\udf5c", "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.94}, "entities": [], "text": "I want \u00e9 food \ud83c\udf5c", "message_id": "6f1b", "metadata": {"source": "web"}}, "input_channel": "rest", "message_id": "6f1b"}"#),
            ("bot", 1700000002.625, None, None, r#"{"event": "bot", "timestamp": 1700000002.625, "text": "Hey there!", "data": {}, "metadata": {}}"#),
        ];
        // Rows without `event_id` and `seq`, as Rasa inserts them.
        let rows: Vec<EventRow> = rasa_rows
            .iter()
            .map(|(type_name, timestamp, intent_name, action_name, data)| EventRow {
                sender_id: id.to_owned(),
                type_name: (*type_name).to_owned(),
                timestamp: Some(*timestamp),
                intent_name: intent_name.map(str::to_owned),
                action_name: action_name.map(str::to_owned),
                data: (*data).to_owned(),
                event_id: None,
            })
            .collect();
        let rasa = Database::connect_lazy(&db.url, &ConnectOptions::default())?;
        rasa.migrate(Schema::TrackerStore).await?;
        rasa.store_batch(&rows, &[]).await?;
        rasa.close().await;

        ensure!(store.exists(id).await?);
        let mut tracker = store.retrieve(id).await?.context("Rasa's conversation")?;
        ensure!(tracker.events().len() == 5 && tracker.first_seq() == 0);
        for (event, (type_name, timestamp, intent_name, action_name, _)) in tracker.events().iter().zip(rasa_rows) {
            ensure!(event.type_name() == type_name && event.timestamp() == Some(timestamp));
            ensure!(event.intent_name() == intent_name && event.action_name() == action_name);
        }
        ensure!(tracker.events()[3].to_value()["text"] == "I want é food 🍜");

        // Continue it: our events go after Rasa's, at positions 5.., and only ours are streamed.
        tracker.apply_all(turn(1700000010.0, 1));
        ensure!(store.save(&mut tracker).await? == 4);
        let full = store.retrieve_full(id).await?.context("stored")?;
        ensure!(full.events().len() == 9);
        ensure!(full.events()[5..] == turn(1700000010.0, 1)[..]);
        wait_until("our events to be published", Duration::from_secs(20), || async { broker.count() >= 4 }).await;
        ensure!(broker.positions_of(id) == [5, 6, 7, 8]);
        // A stale copy of Rasa's tracker (it does not know our events) is refused.
        let mut stale = Tracker::restore(id, 0, full.events()[..5].to_vec());
        stale.apply(event(json!({"event": "restart", "timestamp": 1700000020.0})));
        ensure!(store.save(&mut stale).await.unwrap_err().is_conflict());
        Ok(())
    })
    .await
}

/// Defines one test per dialect for each case.
macro_rules! on_every_dialect {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use colloquy_testkit::TestDialect;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() -> anyhow::Result<()> {
                    super::$name(TestDialect::Postgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn mysql() -> anyhow::Result<()> {
                    super::$name(TestDialect::MySql).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() -> anyhow::Result<()> {
                    super::$name(TestDialect::Sqlite).await
                }
            }
        )*
    };
}

on_every_dialect!(
    sessions_and_streaming,
    only_new_events_are_streamed,
    retried_save_is_idempotent,
    concurrent_saves_of_one_conversation,
    contended_and_new_conversations_at_once,
    many_conversations_in_parallel,
    close_publishes_everything_saved,
    we_read_and_continue_rasas_rows,
);
