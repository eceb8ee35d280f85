//! The Redis store against the shared test Redis, each test on a key prefix of its own (deleted afterwards):
//! the conformance cases, Rasa's keys and values both ways, keys that do not hold a tracker, the outbox under
//! a killed process and at `close`, and start-up errors.

use colloquy_testkit::tracker_store as common;
use colloquy_testkit::tracker_store::redis as redis_support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use colloquy_broker::EventBroker;
use colloquy_events::{Event, Tracker};
use colloquy_testkit::wait_until;
use colloquy_tracker_store::{RedisConfig, RedisStore, TrackerStore};
use common::{
    NeverConfirmingBroker, Recorder, amqp_broker, conformance, event, in_process_broker,
    session_start, turn,
};
use redis::Commands;
use redis_support::Prefix;
use serde_json::json;

/// Runs `body` with a store on a fresh prefix streaming to the real in-process broker, and what its
/// subscription received; the prefix's keys are deleted even when the body fails.
async fn with_store<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce(Arc<RedisStore>, Arc<Recorder>, Arc<Prefix>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let prefix = Arc::new(Prefix::new());
    let (broker, received) = in_process_broker();
    let store = Arc::new(RedisStore::connect(&prefix.config(), Some(broker)).await?);
    let result = body(store.clone(), received, prefix.clone()).await;
    store.close().await?;
    result
}

#[tokio::test]
async fn sessions_and_streaming() -> Result<()> {
    with_store(|store, broker, _| async move {
        conformance::sessions_and_streaming(store.as_ref(), &broker).await
    })
    .await
}

#[tokio::test]
async fn only_new_events_are_streamed() -> Result<()> {
    with_store(|store, broker, _| async move {
        conformance::only_new_events_are_streamed(store.as_ref(), &broker).await
    })
    .await
}

#[tokio::test]
async fn retried_save_is_idempotent() -> Result<()> {
    with_store(|store, broker, _| async move {
        conformance::retried_save_is_idempotent(store.as_ref(), &broker).await?;
        store.drain(Duration::from_secs(20)).await?;
        ensure!(store.outbox_len().await? == 0);
        ensure!(
            broker.count() == 7,
            "nothing published twice: {}",
            broker.count()
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_of_one_conversation() -> Result<()> {
    with_store(|store, broker, _| async move {
        conformance::concurrent_saves_of_one_conversation(store, broker).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contended_and_new_conversations_at_once() -> Result<()> {
    with_store(|store, broker, _| async move {
        conformance::contended_and_new_conversations_at_once(store, broker).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_conversations_in_parallel() -> Result<()> {
    with_store(|store, broker, _| async move {
        conformance::many_conversations_in_parallel(store.clone(), broker, 300).await?;
        store.drain(Duration::from_secs(30)).await?;
        Ok(())
    })
    .await
}

/// The JSON text of Rasa's `json.dumps(Dialogue(sender_id, events).as_dict())`.
fn rasa_value(sender_id: &str, events: &[Event]) -> String {
    let events: Vec<String> = events.iter().map(|e| e.to_rasa_json()).collect();
    format!(
        r#"{{"events": [{}], "name": {}}}"#,
        events.join(", "),
        colloquy_events::pyjson::to_string(&json!(sender_id), colloquy_events::pyjson::Style::Rasa)
    )
}

/// What we save is, byte for byte, what Rasa's `RedisTrackerStore` writes for the same events, under Rasa's
/// key, with `record_exp` as its expiry; our own keys stay out of Rasa's `keys()` pattern.
#[tokio::test]
async fn our_value_is_rasas_value() -> Result<()> {
    let prefix = Prefix::new();
    let config = prefix
        .config()
        .with_record_exp(Some(Duration::from_secs(600)));
    let store = RedisStore::connect(&config, None).await?;
    let id = "héllo \"you\"";
    let mut tracker = Tracker::new(id);
    let mut all = Vec::new();
    for step in [
        session_start(100.0),
        turn(101.0, 1),
        session_start(200.0),
        turn(201.0, 2),
    ] {
        tracker.apply_all(step.clone());
        store.save(&mut tracker).await?;
        all.extend(step);
    }
    let mut conn = prefix.connection();
    let key = format!("{}{id}", prefix.keys());
    let stored: String = conn.get(&key)?;
    ensure!(
        stored == rasa_value(id, &all),
        "the value as Rasa writes it:\n{stored}"
    );
    let ttl: i64 = conn.ttl(&key)?;
    ensure!((1..=600).contains(&ttl), "record_exp as the expiry: {ttl}");
    let rasa_keys: Vec<String> = conn.keys(format!("{}*", prefix.keys()))?;
    ensure!(rasa_keys == [key.clone()], "Rasa's keys(): {rasa_keys:?}");
    ensure!(store.keys().await? == [id], "ours: conversation ids");
    // Rasa's `retrieve` rule: from the last action_session_start.
    let latest = store.retrieve(id).await?.context("stored")?;
    ensure!(latest.events() == &all[7..] && latest.first_seq() == 7);
    Ok(())
}

/// A value Rasa wrote (Python's bytes, no metadata of ours) is read, continued after its events (its bytes
/// kept), and a stale copy of it is refused; Rasa appending behind our back is noticed.
#[tokio::test]
async fn we_read_and_continue_rasas_value() -> Result<()> {
    with_store(|store, broker, prefix| async move {
        let id = "theirs";
        let key = format!("{}{id}", prefix.keys());
        let rasa = r#"{"events": [{"event": "action", "timestamp": 1700000000.5, "name": "action_session_start", "policy": null, "confidence": 1.0, "action_text": null, "hide_rule_turn": false}, {"event": "session_started", "timestamp": 1700000000.25, "metadata": {"model_id": "m1", "assistant_id": "a1"}}, {"event": "action", "timestamp": 1700000000.625, "name": "action_listen", "policy": null, "confidence": null, "action_text": null, "hide_rule_turn": false}, {"event": "user", "timestamp": 1700000000.75, "metadata": {"source": "web"}, "text": "I want \u00e9 food \ud83c\udf5c", "parse_data": {"intent": {"name": "request_restaurant", "confidence": 0.94}, "entities": [], "text": "I want \u00e9 food \ud83c\udf5c", "message_id": "6f1b", "metadata": {"source": "web"}}, "input_channel": "rest", "message_id": "6f1b"}, {"event": "bot", "timestamp": 1700000002.625, "text": "Hey there!", "data": {}, "metadata": {}}], "name": "theirs"}"#;
        let mut conn = prefix.connection();
        let _: () = conn.set(&key, rasa)?;
        ensure!(store.exists(id).await?);
        let mut tracker = store.retrieve(id).await?.context("Rasa's conversation")?;
        ensure!(tracker.events().len() == 5 && tracker.first_seq() == 0);
        ensure!(tracker.events()[3].to_value()["text"] == "I want é food 🍜");

        tracker.apply_all(turn(1700000010.0, 1));
        ensure!(store.save(&mut tracker).await? == 4);
        let stored: String = conn.get(&key)?;
        let head = &rasa[..rasa.len() - r#"], "name": "theirs"}"#.len()];
        ensure!(stored.starts_with(head), "Rasa's bytes are kept");
        ensure!(stored == rasa_value(id, tracker.events()));
        store.drain(Duration::from_secs(20)).await?;
        wait_until("our events to arrive", Duration::from_secs(20), || async { broker.count() >= 4 }).await;
        ensure!(broker.positions_of(id) == [5, 6, 7, 8], "only ours are streamed");

        // Rasa appends one event behind our back (its save rewrites the whole value).
        let mut with_rasas = tracker.events().to_vec();
        with_rasas.push(event(json!({"event": "slot", "timestamp": 1700000020.0, "name": "x", "value": 1})));
        let _: () = conn.set(&key, rasa_value(id, &with_rasas))?;
        tracker.apply(event(json!({"event": "restart", "timestamp": 1700000021.0})));
        let error = store.save(&mut tracker).await.unwrap_err();
        ensure!(error.is_conflict(), "{error}");
        let mut fresh = store.retrieve_full(id).await?.context("stored")?;
        ensure!(fresh.events() == with_rasas.as_slice());
        fresh.apply(event(json!({"event": "restart", "timestamp": 1700000021.0})));
        ensure!(store.save(&mut fresh).await? == 1);
        let stored: String = conn.get(&key)?;
        ensure!(stored == rasa_value(id, fresh.events()));
        Ok(())
    })
    .await
}

/// A key that holds something else than a tracker: a typed error naming the key, the key left as it was.
#[tokio::test]
async fn a_key_that_is_not_a_tracker_is_refused_and_left_alone() -> Result<()> {
    with_store(|store, _broker, prefix| async move {
        let mut conn = prefix.connection();
        let check = |error: colloquy_tracker_store::Error, key: &str| -> Result<()> {
            let message = error.to_string();
            ensure!(
                matches!(error, colloquy_tracker_store::Error::NotATracker { .. }),
                "{error:?}"
            );
            ensure!(
                message.contains(key) && message.contains("nothing was written"),
                "{message}"
            );
            ensure!(!error.is_transient() && !error.is_conflict());
            Ok(())
        };
        let hash_key = format!("{}hash", prefix.keys());
        let _: () = conn.hset(&hash_key, "field", "value")?;
        let mut tracker = Tracker::new("hash");
        tracker.apply_all(session_start(1.0));
        check(store.save(&mut tracker).await.unwrap_err(), &hash_key)?;
        check(store.retrieve("hash").await.unwrap_err(), &hash_key)?;
        let field: String = conn.hget(&hash_key, "field")?;
        ensure!(field == "value" && tracker.saved_len() == 0);

        for garbage in [
            "not json",
            r#"{"events": [{"no": "event"}], "name": "text"}"#,
            r#"{"name": "text"}"#,
        ] {
            let text_key = format!("{}text", prefix.keys());
            let _: () = conn.set(&text_key, garbage)?;
            let mut tracker = Tracker::new("text");
            tracker.apply_all(session_start(1.0));
            check(store.save(&mut tracker).await.unwrap_err(), &text_key)?;
            check(store.retrieve_full("text").await.unwrap_err(), &text_key)?;
            let kept: String = conn.get(&text_key)?;
            ensure!(kept == garbage, "left as it was");
        }
        ensure!(
            store.outbox_len().await? == 0,
            "nothing recorded for a refused save"
        );
        Ok(())
    })
    .await
}

/// Three conversations saved from three tasks, then `close()`: every event is confirmed when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_publishes_everything_saved() -> Result<()> {
    let prefix = Prefix::new();
    let (broker, received) = in_process_broker();
    let store = Arc::new(RedisStore::connect(&prefix.config(), Some(broker)).await?);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..3 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut tracker = Tracker::new(format!("close-{c}"));
            tracker.apply_all(session_start(1.0));
            store.save(&mut tracker).await?;
            for n in 0..2 {
                tracker.apply_all(turn(2.0 + n as f64, n));
                store.save(&mut tracker).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    store.close().await?;
    ensure!(
        store.outbox_len().await? == 0,
        "everything confirmed when close returns"
    );
    wait_until("the events to arrive", Duration::from_secs(20), || async {
        received.count() >= 33
    })
    .await;
    for c in 0..3 {
        ensure!(received.positions_of(&format!("close-{c}")) == (0..11).collect::<Vec<_>>());
    }
    Ok(())
}

/// A broker that never confirms: `close` gives up after its timeout and says how many events are left and
/// that they are safe; they are still in the outbox.
#[tokio::test]
async fn close_reports_what_the_broker_did_not_confirm() -> Result<()> {
    let prefix = Prefix::new();
    let mut config = prefix.config();
    config.relay.confirm_timeout = Duration::from_millis(300);
    let store = RedisStore::connect(&config, Some(Arc::new(NeverConfirmingBroker))).await?;
    let mut tracker = Tracker::new("stuck");
    tracker.apply_all(session_start(1.0));
    store.save(&mut tracker).await?;
    let error = store
        .close_within(Duration::from_secs(1))
        .await
        .unwrap_err();
    let message = error.to_string();
    ensure!(
        matches!(
            error,
            colloquy_tracker_store::Error::Unpublished { events: 3, .. }
        ),
        "{error:?}"
    );
    ensure!(
        message.contains("3 saved events") && message.contains("safe in the outbox"),
        "{message}"
    );
    ensure!(store.outbox_len().await? == 3);
    Ok(())
}

const CHILD_PREFIX_ENV: &str = "COLLOQUY_REDIS_CRASH_CHILD_PREFIX";
const CHILD_EVENTS: usize = 3 + 10 * 4;

/// The crash test. The parent runs this test binary again as a child process that saves a conversation with a
/// broker that never confirms, prints `SAVED`, and is then killed with SIGKILL. A new store with the real
/// RabbitMQ broker publishes everything the child saved, in order, once confirmed.
#[tokio::test]
async fn outbox_survives_a_killed_process() -> Result<()> {
    if let Ok(name) = std::env::var(CHILD_PREFIX_ENV) {
        return crash_child(&name).await;
    }
    let prefix = Prefix::new();
    crash_parent(&prefix).await
}

async fn crash_child(name: &str) -> Result<()> {
    let mut config =
        RedisConfig::from_url(&colloquy_testkit::redis_url())?.with_key_prefix(Some(name));
    // A short lease, so that the parent's relay takes over soon after the kill.
    config.relay.confirm_timeout = Duration::from_millis(500);
    let store = RedisStore::connect(&config, Some(Arc::new(NeverConfirmingBroker))).await?;
    let mut tracker = Tracker::new("crash");
    tracker.apply_all(session_start(1.0));
    store.save(&mut tracker).await?;
    for n in 0..10 {
        tracker.apply_all(turn(2.0 + n as f64, n));
        store.save(&mut tracker).await?;
    }
    println!("SAVED {}", tracker.events().len());
    // Wait to be killed. The parent holds our stdin open; should it die instead, stdin ends and so do we.
    tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await??;
    anyhow::bail!("the parent did not kill the child")
}

async fn crash_parent(prefix: &Prefix) -> Result<()> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "outbox_survives_a_killed_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PREFIX_ENV, &prefix.name)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let saved = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, count)) = line.split_once("SAVED ") {
                return anyhow::Ok(count.trim().parse::<usize>()?);
            }
        }
        anyhow::bail!("the child ended without saving")
    })
    .await
    .context("the child did not save in time")??;
    ensure!(saved == CHILD_EVENTS);
    child.start_kill()?; // SIGKILL
    child.wait().await?;

    let inspector = RedisStore::connect(&prefix.config(), None).await?;
    ensure!(
        inspector.outbox_len().await? == CHILD_EVENTS as u64,
        "everything saved is in the outbox"
    );

    // The child's relay lease outlives it by at most 1 s: then the new store's relay takes over.
    let (amqp, broker, queue) = amqp_broker().await;
    let mut config = prefix.config();
    config.relay.confirm_timeout = Duration::from_secs(5);
    let store = RedisStore::connect(&config, Some(amqp.clone() as Arc<dyn EventBroker>)).await?;
    wait_until(
        "the leftovers to be published and confirmed",
        Duration::from_secs(90),
        || async { store.outbox_len().await.unwrap() == 0 },
    )
    .await;
    wait_until(
        "the leftovers to arrive",
        Duration::from_secs(30),
        || async { broker.count() >= CHILD_EVENTS },
    )
    .await;
    ensure!(broker.positions_of("crash") == (0..CHILD_EVENTS as u64).collect::<Vec<_>>());
    let stored = store.retrieve_full("crash").await?.context("stored")?;
    let ids: Vec<_> = stored.stamp_all().into_iter().map(|e| e.id).collect();
    for message in broker.published() {
        let seq = message.seq.context("a position")? as usize;
        ensure!(message.id == ids[seq] && message.envelope.event == stored.events()[seq]);
    }
    store.close().await?;
    amqp.close().await?;
    drop(queue);
    Ok(())
}

/// Redis down at start-up: bounded retries, then a clear, transient error without the password.
#[tokio::test]
async fn unreachable_redis_fails_clearly_after_bounded_retries() -> Result<()> {
    let mut config = RedisConfig::from_url("redis://:secret@127.0.0.1:1/3")?;
    config.connect_attempts = 3;
    config.connect_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let error = RedisStore::connect(&config, None).await.unwrap_err();
    ensure!(started.elapsed() < Duration::from_secs(30));
    let message = error.to_string();
    ensure!(error.is_transient(), "{message}");
    ensure!(
        message.contains("127.0.0.1:1/3") && message.contains("3 attempts"),
        "{message}"
    );
    ensure!(!format!("{error:?}").contains("secret"));
    Ok(())
}
