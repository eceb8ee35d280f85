//! PostgreSQL restarted in the middle of a stream of saves: no event lost, none stored twice, every event
//! published in order (duplicates only as same-id re-sends). The restart happens on a private PostgreSQL
//! cluster of the test's own, never on the shared server.

use colloquy_testkit::tracker_store as common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use colloquy_events::Tracker;
use colloquy_testkit::{PrivatePostgres, wait_until};
use colloquy_tracker_store::{SqlConfig, SqlStore, TrackerStore};
use common::{in_process_broker, session_start, turn};

/// The pause between attempts of [`save_with_retry`] while PostgreSQL restarts.
const SAVE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Saves, retrying transient failures (the retry of a save that did commit is recognised by the store).
async fn save_with_retry(store: &SqlStore, tracker: &mut Tracker) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match store.save(tracker).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(SAVE_RETRY_PAUSE).await;
            }
            Err(error) => bail!("save failed: {error:#}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_in_a_stream_of_saves() -> Result<()> {
    /// An upper bound only: the stream stops a few turns after the restart.
    const MAX_TURNS: usize = 5000;
    let cluster = Arc::new(PrivatePostgres::init());
    cluster.start();
    let (broker, received) = in_process_broker();
    let mut config = SqlConfig::from_url(&cluster.url("postgres"))?;
    config.relay.max_retry_delay = Duration::from_millis(500);
    let store = Arc::new(SqlStore::connect(&config, Some(broker)).await?);
    let saved_turns = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let saver = tokio::spawn({
        let store = store.clone();
        let saved_turns = saved_turns.clone();
        let stop = stop.clone();
        async move {
            let mut tracker = Tracker::new("restart");
            tracker.apply_all(session_start(1.0));
            save_with_retry(&store, &mut tracker).await?;
            for n in 0..MAX_TURNS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                tracker.apply_all(turn(2.0 + n as f64, n));
                save_with_retry(&store, &mut tracker).await?;
                saved_turns.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(tracker)
        }
    });

    let result = async {
        wait_until("a few saves", Duration::from_secs(30), || async {
            saved_turns.load(Ordering::SeqCst) >= 5
        })
        .await;
        let restarted = cluster.clone();
        tokio::task::spawn_blocking(move || {
            restarted.stop();
            restarted.start();
        })
        .await?;
        let after_restart = saved_turns.load(Ordering::SeqCst);
        wait_until(
            "saves after the restart",
            Duration::from_secs(60),
            || async { saved_turns.load(Ordering::SeqCst) >= after_restart + 5 },
        )
        .await;
        stop.store(true, Ordering::SeqCst);
        let tracker = saver.await??;
        let turns = saved_turns.load(Ordering::SeqCst);
        ensure!(
            turns < MAX_TURNS,
            "the stream was still running when the server restarted"
        );
        let total = tracker.events().len();
        ensure!(total == 3 + turns * 4);

        let stored = store.retrieve_full("restart").await?.context("stored")?;
        ensure!(
            stored.events() == tracker.events(),
            "every event stored once, in order"
        );
        wait_until("the outbox to drain", Duration::from_secs(60), || async {
            store.outbox_len().await.is_ok_and(|len| len == 0)
        })
        .await;
        wait_until("every event to arrive", Duration::from_secs(30), || async {
            received.positions_of("restart").len() >= total
        })
        .await;
        ensure!(received.positions_of("restart") == (0..total as u64).collect::<Vec<_>>());
        let ids: Vec<_> = stored.stamp_all().into_iter().map(|e| e.id).collect();
        for message in received.published() {
            ensure!(message.id == ids[message.seq.context("a position")? as usize]);
        }
        Ok(())
    }
    .await;
    store.close().await?;
    // Dropping the last handle on the cluster stops it and deletes its directory.
    drop(cluster);
    result
}
