//! Queues as operators declare them (quorum, classic with arguments), `QueueType::Quorum` for new queues, one
//! active consumer per queue with a standby that takes over, a queue that rejects publishes, and draining with
//! a deadline — against the real RabbitMQ.

use colloquy_testkit::broker as common;

use std::time::Duration;

use colloquy_broker::{
    AmqpBroker, AmqpSubscription, ConsumerRole, EventBroker, Next, QueueType, Subscription,
};
use colloquy_testkit::{unique_name, wait_until};
use common::*;
use lapin::types::{AMQPValue, LongString};

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn names(prefix: &str) -> (TopologyGuard, String) {
    let guard = TopologyGuard {
        exchange: unique_name(&format!("{prefix}-ex")),
        queue: unique_name(&format!("{prefix}-q")),
    };
    (guard, unique_name(&format!("{prefix}-conn")))
}

/// Publishes `events` through our broker and drains them back with our subscription.
async fn round_trip(guard: &TopologyGuard, connection: &str, count: usize) {
    let config = config(&guard.exchange, &guard.queue, connection).await;
    let broker = AmqpBroker::connect(config.clone()).await.unwrap();
    let events = many_events(connection, count, 10);
    broker.publish_batch(events.clone()).await.unwrap();
    broker.close().await.unwrap();
    let deliveries = drain(
        config,
        events.len(),
        Duration::from_millis(300),
        Duration::from_secs(60),
    )
    .await;
    assert_every_event_once_in_order(&events, &deliveries);
}

#[tokio::test]
async fn a_quorum_queue_declared_by_the_operator_is_used_as_it_is() {
    let (guard, connection) = names("quorum");
    declare_queue_as_operator(
        &guard.queue,
        &[
            ("x-queue-type", text("quorum")),
            ("x-max-length", AMQPValue::LongLongInt(1_000_000)),
        ],
    )
    .await;
    round_trip(&guard, &connection, 500).await;
    assert_eq!(queue_type(&guard.queue), "quorum");
}

#[tokio::test]
async fn a_classic_queue_with_arguments_is_used_as_it_is() {
    let (guard, connection) = names("classic-args");
    declare_queue_as_operator(
        &guard.queue,
        &[
            ("x-max-length", AMQPValue::LongLongInt(1_000_000)),
            ("x-dead-letter-exchange", text("some-dlx")),
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ],
    )
    .await;
    round_trip(&guard, &connection, 500).await;
    assert_eq!(queue_type(&guard.queue), "classic");
}

#[tokio::test]
async fn queue_type_quorum_declares_a_quorum_queue_when_missing() {
    let (guard, connection) = names("new-quorum");
    let config = config(&guard.exchange, &guard.queue, &connection)
        .await
        .with_queue_type(QueueType::Quorum);
    let subscription = AmqpSubscription::connect(config).await.unwrap();
    assert_eq!(queue_type(&guard.queue), "quorum");
    drop(subscription);
    // A second start finds it and uses it (a classic declaration would be refused by RabbitMQ).
    round_trip(&guard, &connection, 100).await;
}

/// Two subscriptions on one queue: one consumes, the other is a standby that takes over when the first goes
/// away, receiving what the first had not acknowledged.
async fn standby_takes_over(guard: &TopologyGuard, connection: &str) {
    let config = config(&guard.exchange, &guard.queue, connection).await;
    let mut active = AmqpSubscription::connect(config.clone()).await.unwrap();
    let mut standby = AmqpSubscription::connect(config.clone()).await.unwrap();
    assert_eq!(active.role(), ConsumerRole::Active);
    assert_eq!(standby.role(), ConsumerRole::Standby);
    assert!(standby.is_ready(), "a standby is connected");

    let broker = AmqpBroker::connect(config.clone()).await.unwrap();
    let events = many_events(connection, 200, 5);
    broker.publish_batch(events.clone()).await.unwrap();
    broker.flush().await.unwrap();
    // The active one takes 50 and acknowledges none; the standby gets nothing meanwhile.
    let mut first = Vec::new();
    while first.len() < 50 {
        match active.next_within(Duration::from_secs(10)).await.unwrap() {
            Next::Delivery(delivery) => first.push(delivery),
            other => panic!("the active subscription got {other:?}"),
        }
    }
    assert!(matches!(
        standby
            .next_within(Duration::from_millis(300))
            .await
            .unwrap(),
        Next::Idle
    ));
    drop(first);
    drop(active);
    wait_until(
        "the standby to take over",
        Duration::from_secs(10),
        || async { standby.role() == ConsumerRole::Active },
    )
    .await;
    let mut deliveries = Vec::new();
    while let Next::Delivery(delivery) = standby
        .next_within(Duration::from_millis(500))
        .await
        .unwrap()
    {
        deliveries.push(delivery);
    }
    if let Some(last) = deliveries.last() {
        last.acker.ack_up_to().await.unwrap();
    }
    assert_eq!(deliveries.len(), events.len(), "every event, once");
    assert_every_event_once_in_order(&events, &deliveries);
    standby.cancel().await.unwrap();
    broker.close().await.unwrap();
}

#[tokio::test]
async fn a_second_subscription_is_a_standby_that_takes_over_on_a_classic_queue() {
    let (guard, connection) = names("standby-classic");
    standby_takes_over(&guard, &connection).await;
}

#[tokio::test]
async fn a_second_subscription_is_a_standby_that_takes_over_on_a_quorum_queue() {
    let (guard, connection) = names("standby-quorum");
    declare_queue_as_operator(&guard.queue, &[("x-queue-type", text("quorum"))]).await;
    standby_takes_over(&guard, &connection).await;
}

#[tokio::test]
async fn a_second_subscription_is_a_standby_that_takes_over_on_a_single_active_consumer_queue() {
    let (guard, connection) = names("standby-sac");
    declare_queue_as_operator(
        &guard.queue,
        &[("x-single-active-consumer", AMQPValue::Boolean(true))],
    )
    .await;
    standby_takes_over(&guard, &connection).await;
}

#[tokio::test]
async fn a_standby_takes_over_when_the_active_connection_is_cut() {
    let (guard, connection) = names("standby-cut");
    let active_name = unique_name("standby-cut-active");
    let config = config(&guard.exchange, &guard.queue, &connection).await;
    let active = AmqpSubscription::connect(config.clone().with_connection_name(&active_name))
        .await
        .unwrap();
    let standby = AmqpSubscription::connect(config).await.unwrap();
    assert_eq!(standby.role(), ConsumerRole::Standby);
    assert!(close_connections_named(&active_name) > 0);
    // Whoever asks first becomes the active one: the standby (it asks every second) or the cut one reconnecting.
    wait_until(
        "one active consumer again",
        Duration::from_secs(10),
        || async {
            active.is_ready()
                && (active.role() == ConsumerRole::Active)
                    != (standby.role() == ConsumerRole::Active)
        },
    )
    .await;
}

#[tokio::test]
async fn a_queue_that_rejects_publishes_fails_the_flush_naming_the_events() {
    let (guard, connection) = names("reject-publish");
    declare_queue_as_operator(
        &guard.queue,
        &[
            ("x-overflow", text("reject-publish")),
            ("x-max-length", AMQPValue::LongLongInt(10)),
        ],
    )
    .await;
    let config = config(&guard.exchange, &guard.queue, &connection).await;
    let broker = AmqpBroker::connect(config).await.unwrap();
    let events = many_events(&connection, 100, 4);
    broker.publish_batch(events.clone()).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(60), broker.flush())
        .await
        .expect("a flush that ends")
        .unwrap_err();
    assert!(error.is_transient() && !error.is_config(), "{error:?}");
    let colloquy_broker::Error::Rejected {
        pending,
        event_ids,
        nacks,
        ..
    } = &error
    else {
        panic!("not a rejection: {error:?}");
    };
    assert_eq!(*pending, 90, "the ten that fit are confirmed");
    assert!(*nacks >= 5, "{nacks} nacks");
    assert_eq!(
        event_ids.first().map(String::as_str),
        Some(events[10].id.as_str())
    );
    let message = error.to_string();
    assert!(
        message.contains("rejected (Nack)") && message.contains(events[10].id.as_str()),
        "{message}"
    );
    // Still kept: once a consumer makes room, every event goes through.
    let mut subscription = AmqpSubscription::connect(
        common::config(&guard.exchange, &guard.queue, &unique_name("reject-drain")).await,
    )
    .await
    .unwrap();
    let consumer = tokio::spawn(async move {
        let mut deliveries = Vec::new();
        while let Next::Delivery(delivery) = subscription
            .next_within(Duration::from_secs(5))
            .await
            .unwrap()
        {
            delivery.acker.ack().await.unwrap();
            deliveries.push(delivery);
        }
        deliveries
    });
    wait_until(
        "the rejected events to go through",
        Duration::from_secs(60),
        || async { broker.flush().await.is_ok() },
    )
    .await;
    broker.close().await.unwrap();
    let deliveries = consumer.await.unwrap();
    assert_every_event_once_in_order(&events, &deliveries);
}

#[tokio::test]
async fn next_within_reports_an_idle_queue() {
    let (guard, connection) = names("idle");
    let config = config(&guard.exchange, &guard.queue, &connection).await;
    let mut subscription = AmqpSubscription::connect(config.clone()).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        subscription
            .next_within(Duration::from_millis(200))
            .await
            .unwrap(),
        Next::Idle
    ));
    assert!(started.elapsed() >= Duration::from_millis(200));
    let broker = AmqpBroker::connect(config).await.unwrap();
    let events = many_events(&connection, 3, 1);
    broker.publish_batch(events).await.unwrap();
    broker.close().await.unwrap();
    for _ in 0..3 {
        let Next::Delivery(delivery) = subscription
            .next_within(Duration::from_secs(10))
            .await
            .unwrap()
        else {
            panic!("expected a delivery");
        };
        delivery.acker.ack().await.unwrap();
    }
    subscription.cancel().await.unwrap();
    assert!(matches!(
        subscription
            .next_within(Duration::from_secs(10))
            .await
            .unwrap(),
        Next::Ended
    ));
}
