//! The file broker (Rasa's `FileEventBroker` format) and the in-process broker and subscription.

use colloquy_testkit::broker as common;

use std::num::NonZeroUsize;
use std::time::Duration;

use colloquy_broker::{AckCounts, EventBroker, FileBroker, Subscription, in_process};
use common::{EVERY_EVENT_TYPE, stamped};

#[tokio::test]
async fn file_brokers_append_one_rasa_body_per_line_and_share_a_file() {
    let path = std::env::temp_dir().join(format!(
        "{}.log",
        colloquy_testkit::unique_name("rasa_event")
    ));
    let first = FileBroker::open(&path).unwrap();
    let second = FileBroker::open(&path).unwrap();
    let events: Vec<_> = EVERY_EVENT_TYPE
        .iter()
        .enumerate()
        .map(|(i, b)| stamped(b, "file", i as u64))
        .collect();
    let (left, right) = events.split_at(10);
    let writers =
        [(&first, left.to_vec()), (&second, right.to_vec())].map(|(broker, events)| async move {
            for event in events {
                broker.publish(event).await.unwrap();
            }
        });
    futures_util::future::join_all(writers).await;
    first.flush().await.unwrap();
    first.close().await.unwrap();
    second.close().await.unwrap();
    assert!(
        first
            .publish(events[0].clone())
            .await
            .unwrap_err()
            .is_closed()
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let mut expected: Vec<String> = events.iter().map(|e| e.envelope.to_rasa_json()).collect();
    lines.sort_unstable();
    expected.sort_unstable();
    assert_eq!(lines, expected);
    assert!(text.ends_with('\n'));
    // Append-only: a new broker adds to the end.
    let third = FileBroker::open(&path).unwrap();
    third.publish_batch(events[..2].to_vec()).await.unwrap();
    third.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        events.len() + 2
    );
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn in_process_round_trip_acks_and_back_pressure() {
    let (broker, mut subscription) = in_process(NonZeroUsize::new(2).unwrap());
    let broker = broker.with_app_id(Some("test"));
    broker
        .publish(stamped(EVERY_EVENT_TYPE[0], "ip", 0))
        .await
        .unwrap();
    broker
        .publish(stamped(EVERY_EVENT_TYPE[4], "ip", 1))
        .await
        .unwrap();
    let waiting = tokio::time::timeout(
        Duration::from_millis(100),
        broker.publish(stamped(EVERY_EVENT_TYPE[4], "ip", 2)),
    )
    .await;
    assert!(waiting.is_err(), "a full channel makes publish wait");
    let first = subscription.next().await.unwrap().unwrap();
    let second = subscription.next().await.unwrap().unwrap();
    assert_eq!(first.properties.app_id.as_deref(), Some("test"));
    assert_eq!(second.properties.seq(), Some(1));
    second.acker.ack_up_to().await.unwrap();
    assert_eq!(
        subscription.ack_counts(),
        AckCounts {
            delivered: 2,
            acked: 2,
            rejected: 0,
            unsettled: 0
        }
    );
    broker
        .publish(stamped(EVERY_EVENT_TYPE[4], "ip", 2))
        .await
        .unwrap();
    let third = subscription.next().await.unwrap().unwrap();
    third.acker.reject().await.unwrap();
    assert_eq!(subscription.ack_counts().rejected, 1);
    broker.close().await.unwrap();
    assert!(subscription.next().await.unwrap().is_none());

    let (broker, _subscription) = in_process(NonZeroUsize::new(1).unwrap());
    let broker = broker.with_fail_when_full(true);
    broker
        .publish(stamped(EVERY_EVENT_TYPE[4], "ip", 0))
        .await
        .unwrap();
    assert!(
        broker
            .publish(stamped(EVERY_EVENT_TYPE[4], "ip", 1))
            .await
            .unwrap_err()
            .is_buffer_full()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_file_broker_blocked_on_its_file_does_not_stall_the_runtime() {
    // A FIFO whose reader waits: writing more than the pipe holds blocks until the reader drains it.
    let path = std::env::temp_dir().join(colloquy_testkit::unique_name("fifo"));
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let (drain, drain_now) = std::sync::mpsc::channel::<()>();
    let reader = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::open(&path).unwrap();
            // Drains when told, or after 10 s at the latest (so that a stalled runtime fails, not hangs).
            let _ = drain_now.recv_timeout(Duration::from_secs(10));
            let mut sink = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut sink).unwrap();
            sink.len()
        })
    };
    let broker = FileBroker::open(&path).unwrap();
    let body = EVERY_EVENT_TYPE[2];
    let events: Vec<_> = (0..400).map(|i| stamped(body, "fifo", i)).collect();
    let flush = async {
        broker.publish_batch(events).await?;
        broker.flush().await
    };
    tokio::pin!(flush);
    tokio::select! {
        biased;
        _ = &mut flush => panic!("the writes cannot finish before the reader drains"),
        // The condition itself: a timer on this current-thread runtime fires while the write is blocked.
        () = tokio::time::sleep(RUNTIME_STILL_TICKS) => {}
    }
    drain.send(()).unwrap();
    // The lines are written; the fsync that follows is not defined on a FIFO (EINVAL).
    let _ = flush.await;
    let _ = broker.close().await;
    assert!(reader.join().unwrap() > 64 * 1024);
    let _ = std::fs::remove_file(&path);
}

/// How long the blocked FIFO write must leave the runtime free to run a timer.
const RUNTIME_STILL_TICKS: Duration = Duration::from_millis(100);
