//! Fault injection, on classic and quorum queues: connections closed mid-publish and mid-consume (on the shared
//! RabbitMQ, closing only this test's connections), the broker application stopped and started, the broker
//! down from the start (on a private RabbitMQ node of the test's own, never the shared one). Each test ends by
//! checking that every event arrived (at least once, duplicates sharing their id) in per-conversation order.

use colloquy_testkit::broker as common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_broker::{
    AmqpBroker, AmqpConfig, AmqpSubscription, EventBroker, Next, QueueType, Subscription,
};
use colloquy_testkit::{PrivateRabbitMq, unique_name, wait_until};
use common::*;

fn guard(prefix: &str) -> TopologyGuard {
    TopologyGuard {
        exchange: unique_name(&format!("{prefix}-ex")),
        queue: unique_name(&format!("{prefix}-q")),
    }
}

/// Starts the private node's application again when dropped, even if the test panicked.
struct StartAppOnDrop<'a>(&'a PrivateRabbitMq);

impl Drop for StartAppOnDrop<'_> {
    fn drop(&mut self) {
        self.0.ctl(&["start_app"]);
        self.0.ctl(&["await_startup"]);
    }
}

async fn close_connections_mid_publish(queue_type: QueueType, count: usize) {
    let topology = guard("fault-close");
    let name = unique_name("fault-close");
    let config = config(&topology.exchange, &topology.queue, &name)
        .await
        .with_queue_type(queue_type);
    let broker = Arc::new(AmqpBroker::connect(config.clone()).await.unwrap());
    let events = many_events("close", count, 50);
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
        "a fifth of the events in the queue",
        Duration::from_secs(60),
        || async { queue_len(&channel, &topology.queue).await as usize >= count / 5 },
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connections_in_the_middle_of_a_50k_publish_loses_nothing() {
    close_connections_mid_publish(QueueType::Classic, 50_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connections_in_the_middle_of_a_publish_to_a_quorum_queue_loses_nothing() {
    close_connections_mid_publish(QueueType::Quorum, 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_subscription_connection_mid_consume_of_a_quorum_queue_loses_nothing() {
    let topology = guard("fault-consume");
    let name = unique_name("fault-consume");
    let config = config(&topology.exchange, &topology.queue, &name)
        .await
        .with_queue_type(QueueType::Quorum);
    let mut subscription = AmqpSubscription::connect(config.clone()).await.unwrap();
    let broker = AmqpBroker::connect(config.with_connection_name(unique_name("fault-pub")))
        .await
        .unwrap();
    let events = many_events("consume", 5_000, 20);
    broker.publish_batch(events.clone()).await.unwrap();
    broker.close().await.unwrap();
    let mut deliveries = Vec::new();
    let mut cut = false;
    loop {
        match subscription
            .next_within(Duration::from_secs(5))
            .await
            .unwrap()
        {
            Next::Delivery(delivery) => {
                if deliveries.len() % 100 == 99 {
                    // Stale after the cut: RabbitMQ redelivers those.
                    delivery.acker.ack_up_to().await.unwrap();
                }
                deliveries.push(delivery);
                if deliveries.len() == 1_000 && !cut {
                    assert!(close_connections_named(&name) > 0);
                    cut = true;
                }
            }
            Next::Idle => break,
            Next::Ended => panic!("the subscription ended"),
        }
    }
    if let Some(last) = deliveries.last() {
        last.acker.ack_up_to().await.unwrap();
    }
    assert!(cut);
    assert_every_event_once_in_order(&events, &deliveries);
    subscription.cancel().await.unwrap();
}

async fn stop_the_application_mid_publish(queue_type: QueueType) {
    let node = PrivateRabbitMq::start();
    let config = config_at(
        &node.url,
        &unique_name("ex"),
        &unique_name("q"),
        &unique_name("fault-stop"),
    )
    .with_queue_type(queue_type);
    let broker = Arc::new(AmqpBroker::connect(config.clone()).await.unwrap());
    let events = many_events("stop", 10_000, 20);
    let (first, second) = events.split_at(4_000);
    for event in first {
        broker.publish(event.clone()).await.unwrap();
    }
    {
        let _restart = StartAppOnDrop(&node);
        node.ctl(&["stop_app"]);
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_broker_application_for_a_few_seconds_loses_nothing() {
    stop_the_application_mid_publish(QueueType::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_broker_application_with_a_quorum_queue_loses_nothing() {
    stop_the_application_mid_publish(QueueType::Quorum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_broker_is_down_from_the_start_are_kept() {
    let node = PrivateRabbitMq::start();
    let config: AmqpConfig = config_at(
        &node.url,
        &unique_name("ex"),
        &unique_name("q"),
        &unique_name("fault-down"),
    );
    let events = many_events("down", 2_000, 10);
    let broker = {
        let _restart = StartAppOnDrop(&node);
        node.ctl(&["stop_app"]);
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
}
