//! The behaviour every `TrackerStore` must have, run against each store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use colloquy_events::{Event, Tracker};
use colloquy_tracker_store::TrackerStore;
use serde_json::json;

use super::{Recorder, event, session_start, turn};

/// How long the broker may take to show what a save streamed (the PostgreSQL relay is asynchronous).
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(20);

async fn wait_for_published(received: &Recorder, count: usize) {
    crate::wait_until(
        "the saved events to be published",
        STREAM_TIMEOUT,
        || async { received.count() >= count },
    )
    .await;
}

/// The events as Rasa writes them.
fn rasa_forms(events: &[Event]) -> Vec<String> {
    events.iter().map(Event::to_rasa_json).collect()
}

/// Two sessions saved turn by turn: `retrieve` returns the latest session (Rasa's rule), `retrieve_full`
/// everything, a retrieved tracker can be continued, and the broker got every event once, in order.
pub async fn sessions_and_streaming(store: &dyn TrackerStore, received: &Recorder) -> Result<()> {
    let id = "sessions";
    ensure!(!store.exists(id).await?);
    ensure!(store.retrieve(id).await?.is_none());
    let mut tracker = store.get_or_create(id).await?;
    let mut all: Vec<Event> = Vec::new();
    let mut steps: Vec<Vec<Event>> = vec![session_start(100.0), turn(101.0, 1), turn(102.0, 2)];
    steps.push(vec![
        event(json!({"event": "restart", "timestamp": 103.0})),
        event(json!({"event": "user", "timestamp": 103.5, "text": "oops", "parse_data": {"intent": {"name": "deny", "confidence": 0.5}}, "input_channel": null, "message_id": null, "metadata": {}})),
        event(json!({"event": "rewind", "timestamp": 103.6})),
    ]);
    steps.push(session_start(200.0));
    steps.push(turn(201.0, 3));
    for step in &steps {
        tracker.apply_all(step.clone());
        let written = store.save(&mut tracker).await?;
        ensure!(
            written == step.len() as u64,
            "wrote {written} of {}",
            step.len()
        );
        ensure!(tracker.events_since_last_save().is_empty());
        all.extend(step.iter().cloned());
    }
    ensure!(store.exists(id).await?);

    let full = store.retrieve_full(id).await?.context("stored")?;
    // Every event in order, as Rasa stores it: a store that keeps Rasa's `data` column gives back Rasa's form
    // (an older shape, like the `oops` message, as Rasa 3.6 writes it).
    ensure!(
        rasa_forms(full.events()) == rasa_forms(&all),
        "retrieve_full returns every event in order"
    );
    ensure!(full.first_seq() == 0 && full.saved_len() == all.len());

    let latest = store.retrieve(id).await?.context("stored")?;
    let session: Vec<Event> = session_start(200.0)
        .into_iter()
        .chain(turn(201.0, 3))
        .collect();
    ensure!(
        latest.events() == session.as_slice(),
        "retrieve returns the latest session: {:?}",
        latest.events()
    );
    ensure!(latest.first_seq() == (all.len() - session.len()) as u64);

    // Continue from the latest session only.
    let mut latest = latest;
    latest.apply_all(turn(202.0, 4));
    ensure!(store.save(&mut latest).await? == 4);
    all.extend(turn(202.0, 4));
    let full = store.retrieve_full(id).await?.context("stored")?;
    ensure!(rasa_forms(full.events()) == rasa_forms(&all));

    wait_for_published(received, all.len()).await;
    let published = received.published();
    ensure!(
        published.len() == all.len(),
        "each event published once: {}",
        published.len()
    );
    for (seq, (stamped, event)) in published.iter().zip(&all).enumerate() {
        ensure!(stamped.seq == Some(seq as u64), "in order");
        // Published in Rasa's form (an older shape, like the `oops` message, comes out as Rasa 3.6 writes it).
        ensure!(
            stamped.envelope.event.to_rasa_json() == event.to_rasa_json()
                && stamped.envelope.sender_id == id
        );
    }
    // The ids are the ones the full tracker stamps.
    let ids: Vec<_> = full.stamp_all().into_iter().map(|s| s.id).collect();
    ensure!(published.iter().map(|s| s.id.clone()).collect::<Vec<_>>() == ids);
    ensure!(store.keys().await? == [id]);
    Ok(())
}

/// Rasa re-publishes when a tracker holds more than its latest session; we publish exactly the new events.
/// A tracker that does not know what is stored cannot save at all.
pub async fn only_new_events_are_streamed(
    store: &dyn TrackerStore,
    received: &Recorder,
) -> Result<()> {
    let id = "republish";
    let mut tracker = Tracker::new(id);
    tracker.apply_all(session_start(10.0).into_iter().chain(turn(11.0, 1)));
    tracker.apply_all(session_start(20.0).into_iter().chain(turn(21.0, 2)));
    store.save(&mut tracker).await?;
    let stored = tracker.events().len();
    wait_for_published(received, stored).await;

    // The full tracker (two sessions) gains one event: Rasa would publish len(full) - len(latest) + 1 events.
    let mut full = store.retrieve_full(id).await?.context("stored")?;
    let new = event(json!({"event": "slot", "timestamp": 22.0, "name": "x", "value": 1}));
    full.apply(new.clone());
    ensure!(store.save(&mut full).await? == 1);
    // The latest session gains one event.
    let mut latest = store.retrieve(id).await?.context("stored")?;
    ensure!(latest.events().len() < stored);
    let newer = event(json!({"event": "slot", "timestamp": 23.0, "name": "x", "value": 2}));
    latest.apply(newer.clone());
    ensure!(store.save(&mut latest).await? == 1);
    // Saving again without new events writes and publishes nothing.
    ensure!(store.save(&mut latest).await? == 0);

    // A tracker rebuilt from scratch with every event (nothing marked saved) is refused: it would duplicate.
    let mut rebuilt = Tracker::new(id);
    rebuilt.apply_all(
        store
            .retrieve_full(id)
            .await?
            .context("stored")?
            .events()
            .iter()
            .cloned(),
    );
    rebuilt.apply(event(
        json!({"event": "slot", "timestamp": 24.0, "name": "x", "value": 3}),
    ));
    let error = store.save(&mut rebuilt).await.unwrap_err();
    ensure!(error.is_conflict(), "{error}");
    ensure!(
        !rebuilt.events_since_last_save().is_empty(),
        "a refused tracker is not marked saved"
    );

    wait_for_published(received, stored + 2).await;
    let published: Vec<_> = received
        .published()
        .into_iter()
        .filter(|s| s.envelope.sender_id == id)
        .collect();
    ensure!(
        published.len() == stored + 2,
        "published {} events",
        published.len()
    );
    ensure!(
        published[stored].envelope.event == new && published[stored].seq == Some(stored as u64)
    );
    ensure!(
        published[stored + 1].envelope.event == newer
            && published[stored + 1].seq == Some(stored as u64 + 1)
    );
    ensure!(
        store
            .retrieve_full(id)
            .await?
            .context("stored")?
            .events()
            .len()
            == stored + 2
    );
    Ok(())
}

/// A save retried after an unknown outcome (same tracker, same new events) succeeds without storing twice.
pub async fn retried_save_is_idempotent(
    store: &dyn TrackerStore,
    received: &Recorder,
) -> Result<()> {
    let id = "retry";
    let mut tracker = Tracker::new(id);
    tracker.apply_all(session_start(1.0));
    store.save(&mut tracker).await?;
    tracker.apply_all(turn(2.0, 1));
    let mut retry = tracker.clone();
    ensure!(store.save(&mut tracker).await? == 4);
    ensure!(
        store.save(&mut retry).await? == 0,
        "the retry finds its events stored"
    );
    ensure!(retry.events_since_last_save().is_empty());
    ensure!(
        store
            .retrieve_full(id)
            .await?
            .context("stored")?
            .events()
            .len()
            == 7
    );
    wait_for_published(received, 7).await;
    ensure!(received.positions_of(id) == (0..7).collect::<Vec<_>>());
    Ok(())
}

/// Two saves of one conversation from the same starting point: exactly one wins, the other gets a conflict.
/// Then many tasks append to one conversation with retrieve-and-retry: nothing is lost or duplicated.
pub async fn concurrent_saves_of_one_conversation(
    store: Arc<dyn TrackerStore>,
    received: Arc<Recorder>,
) -> Result<()> {
    let id = "contended";
    let mut base = Tracker::new(id);
    base.apply_all(session_start(1.0));
    store.save(&mut base).await?;

    let mut a = base.clone();
    a.apply_all(turn(2.0, 1));
    let mut b = base.clone();
    b.apply_all(turn(2.0, 2));
    let (ra, rb) = tokio::join!(store.save(&mut a), store.save(&mut b));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    ensure!(wins == 1, "exactly one save wins: {ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    ensure!(loser.unwrap_err().is_conflict());
    ensure!(
        store
            .retrieve_full(id)
            .await?
            .context("stored")?
            .events()
            .len()
            == 7
    );

    const TASKS: usize = 8;
    const APPENDS: usize = 10;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            for n in 0..APPENDS {
                let slot = event(json!({"event": "slot", "timestamp": 3.0, "name": format!("t{task}"), "value": n}));
                append_retrying_conflicts(store.as_ref(), id, slot).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let full = store.retrieve_full(id).await?.context("stored")?;
    let total = 7 + TASKS * APPENDS;
    ensure!(
        full.events().len() == total,
        "{} events stored",
        full.events().len()
    );
    for task in 0..TASKS {
        let values: Vec<_> = full
            .events()
            .iter()
            .filter(|e| e.action_name() == Some(format!("t{task}").as_str()))
            .map(|e| e.to_value()["value"].as_u64().unwrap())
            .collect();
        ensure!(
            values == (0..APPENDS as u64).collect::<Vec<_>>(),
            "task {task}: {values:?}"
        );
    }
    wait_for_published(&received, total).await;
    ensure!(received.positions_of(id) == (0..total as u64).collect::<Vec<_>>());
    Ok(())
}

/// Appends `event` to the stored conversation `id` as a writer racing others does: retrieve, apply, save, and
/// again from the start on a conflict (bounded); any other error fails.
async fn append_retrying_conflicts(store: &dyn TrackerStore, id: &str, event: Event) -> Result<()> {
    for _ in 0..1000 {
        let mut tracker = store.get_or_create(id).await?;
        tracker.apply(event.clone());
        match store.save(&mut tracker).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_conflict() => tokio::task::yield_now().await,
            Err(error) => return Err(anyhow::Error::new(error).context(format!("saving {id}"))),
        }
    }
    anyhow::bail!("1000 conflicts in a row saving {id}")
}

/// Writers on one conversation (retrying their conflicts) and writers starting new conversations, all at
/// once: no save fails for any reason but a conflict, and every event is stored and streamed once. Saves of
/// different conversations must not fail each other (MySQL's shared next-key locks once made them deadlock).
pub async fn contended_and_new_conversations_at_once(
    store: Arc<dyn TrackerStore>,
    received: Arc<Recorder>,
) -> Result<()> {
    const WRITERS: usize = 16;
    const SAVES: usize = 10;
    let shared = "shared";
    let mut base = Tracker::new(shared);
    base.apply_all(session_start(1.0));
    store.save(&mut base).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            let own = format!("own-{writer:02}");
            let mut tracker = Tracker::new(&own);
            for n in 0..SAVES {
                tracker.apply_all(turn(2.0 + n as f64, n));
                store.save(&mut tracker).await.context(own.clone())?;
                let slot = event(json!({"event": "slot", "timestamp": 3.0, "name": format!("w{writer}"), "value": n}));
                append_retrying_conflicts(store.as_ref(), shared, slot).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let shared_events = base.events().len() + WRITERS * SAVES;
    let stored = store.retrieve_full(shared).await?.context("stored")?;
    ensure!(stored.events().len() == shared_events);
    for writer in 0..WRITERS {
        let own = format!("own-{writer:02}");
        let stored = store.retrieve_full(&own).await?.context("stored")?;
        ensure!(
            stored.events().len() == SAVES * 4,
            "{own}: {}",
            stored.events().len()
        );
    }
    wait_for_published(&received, shared_events + WRITERS * SAVES * 4).await;
    ensure!(received.positions_of(shared) == (0..shared_events as u64).collect::<Vec<_>>());
    Ok(())
}

/// Many conversations saved turn by turn in parallel.
pub async fn many_conversations_in_parallel(
    store: Arc<dyn TrackerStore>,
    received: Arc<Recorder>,
    conversations: usize,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conversations {
        let store = store.clone();
        tasks.spawn(async move {
            let id = format!("parallel-{c:05}");
            let mut tracker = store.get_or_create(&id).await?;
            tracker.apply_all(session_start(1.0));
            store.save(&mut tracker).await?;
            for n in 0..3 {
                tracker.apply_all(turn(2.0 + n as f64, n));
                store.save(&mut tracker).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let keys = store.keys().await?;
    ensure!(keys.len() == conversations);
    for key in keys.iter().step_by(conversations.div_ceil(50)) {
        let tracker = store.retrieve_full(key).await?.context("stored")?;
        ensure!(tracker.events().len() == 15);
    }
    wait_for_published(&received, conversations * 15).await;
    for key in keys.iter().step_by(conversations.div_ceil(50)) {
        ensure!(received.positions_of(key) == (0..15).collect::<Vec<_>>());
    }
    Ok(())
}
