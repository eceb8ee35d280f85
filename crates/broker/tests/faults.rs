//! Fault injection against the real RabbitMQ: connections closed mid-publish, the broker application stopped and
//! started, the broker down from the start. Each test ends by checking that the queue holds every event (at
//! least once, duplicates sharing their id) in per-conversation order. The tests serialise on one lock, close
//! only their own connections, and always restart the broker application (a drop guard).

mod common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::{AmqpBroker, EventBroker};
use colloquy_testkit::{rabbitmqctl, unique_name, wait_until};
use common::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the RabbitMQ application again when dropped, even if the test panicked.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connections_in_the_middle_of_a_50k_publish_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (exchange, queue, name) = (
        unique_name("ex"),
        unique_name("q"),
        unique_name("fault-close"),
    );
    let config = config(&exchange, &queue, &name).await;
    let broker = Arc::new(AmqpBroker::connect(config.clone()).await.unwrap());
    let events = many_events("close", 50_000, 50);
    let publisher = {
        let broker = broker.clone();
        let events = events.clone();
        tokio::spawn(async move {
            for event in events {
                broker.publish(event).await.unwrap();
            }
        })
    };
    let (checker, channel) = raw_channel().await;
    wait_until(
        "10k events in the queue",
        Duration::from_secs(60),
        || async { queue_len(&channel, &queue).await >= 10_000 },
    )
    .await;
    assert!(
        close_connections_named(&name) > 0,
        "our connection was not listed"
    );
    publisher.await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), broker.flush())
        .await
        .unwrap()
        .unwrap();
    broker.close().await.unwrap();
    let _ = checker.close(200, "OK".into()).await;
    let deliveries = drain(
        config,
        events.len(),
        Duration::from_millis(500),
        Duration::from_secs(120),
    )
    .await;
    assert_every_event_once_in_order(&events, &deliveries);
    delete_topology(&exchange, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_broker_application_for_a_few_seconds_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (exchange, queue, name) = (
        unique_name("ex"),
        unique_name("q"),
        unique_name("fault-stop"),
    );
    let config = config(&exchange, &queue, &name).await;
    let broker = Arc::new(AmqpBroker::connect(config.clone()).await.unwrap());
    let events = many_events("stop", 10_000, 20);
    let (first, second) = events.split_at(4_000);
    for event in first {
        broker.publish(event.clone()).await.unwrap();
    }
    {
        let _restart = StartAppOnDrop;
        rabbitmqctl(&["stop_app"]);
        wait_until(
            "the publisher to notice",
            Duration::from_secs(30),
            || async { !broker.is_ready() },
        )
        .await;
        // Handed over while the broker is down: kept in the buffer.
        for event in &second[..2_000] {
            broker.publish(event.clone()).await.unwrap();
        }
    }
    for event in &second[2_000..] {
        broker.publish(event.clone()).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), broker.flush())
        .await
        .unwrap()
        .unwrap();
    assert!(broker.is_ready());
    broker.close().await.unwrap();
    let deliveries = drain(
        config,
        events.len(),
        Duration::from_millis(500),
        Duration::from_secs(120),
    )
    .await;
    assert_every_event_once_in_order(&events, &deliveries);
    delete_topology(&exchange, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_broker_is_down_from_the_start_are_kept() {
    let _serial = SERIAL.lock().await;
    let (exchange, queue, name) = (
        unique_name("ex"),
        unique_name("q"),
        unique_name("fault-down"),
    );
    let config = config(&exchange, &queue, &name).await;
    let events = many_events("down", 2_000, 10);
    let broker = {
        let _restart = StartAppOnDrop;
        rabbitmqctl(&["stop_app"]);
        let broker = AmqpBroker::spawn(config.clone());
        assert!(!broker.is_ready());
        for event in &events[..1_000] {
            broker.publish(event.clone()).await.unwrap();
        }
        broker
    };
    for event in &events[1_000..] {
        broker.publish(event.clone()).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), broker.flush())
        .await
        .unwrap()
        .unwrap();
    broker.close().await.unwrap();
    let deliveries = drain(
        config,
        events.len(),
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .await;
    assert_every_event_once_in_order(&events, &deliveries);
    delete_topology(&exchange, &queue).await;
}
