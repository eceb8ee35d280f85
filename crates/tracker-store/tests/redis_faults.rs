//! A private Redis (its own `redis-server`, every write on disk) crashed and restarted in the middle of a
//! stream of saves: no event lost, none stored twice, every event published in order (duplicates only as
//! same-id re-sends).

use colloquy_testkit::tracker_store as common;
use colloquy_testkit::tracker_store::redis as redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use colloquy_events::Tracker;
use colloquy_testkit::wait_until;
use colloquy_tracker_store::{RedisStore, TrackerStore};
use common::{in_process_broker, session_start, turn};
use redis_support::{Prefix, PrivateRedis};

/// How long a save that failed while Redis was down waits before it is tried again.
const SAVE_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Saves, retrying transient failures (the retry of a save that did go through is recognised by the store);
/// counts the retries.
async fn save_with_retry(
    store: &RedisStore,
    tracker: &mut Tracker,
    retries: &AtomicUsize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match store.save(tracker).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_transient() && Instant::now() < deadline => {
                retries.fetch_add(1, Ordering::SeqCst);
                // A retry pause, not a synchronisation: the loop is bounded by `deadline`.
                tokio::time::sleep(SAVE_RETRY_PAUSE).await;
            }
            Err(error) => bail!("save failed: {error:#}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crashed_and_restarted_in_a_stream_of_saves() -> Result<()> {
    /// An upper bound only: the stream stops a few turns after the restart.
    const MAX_TURNS: usize = 20_000;
    let mut server = PrivateRedis::start();
    let prefix = Prefix::on(&server.url());
    let (broker, received) = in_process_broker();
    let mut config = prefix.config();
    config.connect_timeout = Duration::from_secs(1);
    let store = Arc::new(RedisStore::connect(&config, Some(broker)).await?);
    let saved_turns = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let retries = Arc::new(AtomicUsize::new(0));

    let saver = tokio::spawn({
        let store = store.clone();
        let saved_turns = saved_turns.clone();
        let stop = stop.clone();
        let retries = retries.clone();
        async move {
            let mut tracker = Tracker::new("restart");
            tracker.apply_all(session_start(1.0));
            save_with_retry(&store, &mut tracker, &retries).await?;
            for n in 0..MAX_TURNS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                tracker.apply_all(turn(2.0 + n as f64, n));
                save_with_retry(&store, &mut tracker, &retries).await?;
                saved_turns.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(tracker)
        }
    });

    wait_until("a few saves", Duration::from_secs(30), || async {
        saved_turns.load(Ordering::SeqCst) >= 20
    })
    .await;
    server.kill();
    let during_outage = saved_turns.load(Ordering::SeqCst);
    server.run();
    wait_until(
        "saves after the restart",
        Duration::from_secs(60),
        || async { saved_turns.load(Ordering::SeqCst) >= during_outage + 20 },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let tracker = saver.await??;
    let turns = saved_turns.load(Ordering::SeqCst);
    ensure!(
        turns < MAX_TURNS,
        "the stream was still running when Redis restarted"
    );
    let total = tracker.events().len();
    ensure!(total == 3 + turns * 4);

    let stored = store.retrieve_full("restart").await?.context("stored")?;
    ensure!(
        stored.events() == tracker.events(),
        "every event stored once, in order"
    );
    store.drain(Duration::from_secs(60)).await?;
    wait_until("every event to arrive", Duration::from_secs(30), || async {
        received.positions_of("restart").len() >= total
    })
    .await;
    ensure!(received.positions_of("restart") == (0..total as u64).collect::<Vec<_>>());
    let ids: Vec<_> = stored.stamp_all().into_iter().map(|e| e.id).collect();
    for message in received.published() {
        ensure!(message.id == ids[message.seq.context("a position")? as usize]);
    }
    store.close().await?;
    drop(prefix);
    Ok(())
}
