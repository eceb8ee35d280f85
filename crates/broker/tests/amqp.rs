//! The AMQP broker and subscription against the real RabbitMQ (`AMQP_URL` or the local one): round trip,
//! properties, topology compatibility with Rasa, configuration errors, back-pressure, acknowledgements.

use colloquy_testkit::broker as common;

use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use colloquy_broker::{
    AckOutcome, AmqpBroker, AmqpConfig, AmqpSubscription, Error, EventBroker, MessageProperties,
    Subscription,
};
use colloquy_testkit::{unique_name, wait_until};
use common::*;
use lapin::ExchangeKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

struct Names {
    exchange: String,
    queue: String,
    connection: String,
}

fn names() -> Names {
    Names {
        exchange: unique_name("ex"),
        queue: unique_name("q"),
        connection: unique_name("conn"),
    }
}

#[tokio::test]
async fn every_event_type_round_trips_with_its_properties() {
    let n = names();
    let config = config(&n.exchange, &n.queue, &n.connection)
        .await
        .with_app_id(Some("production"))
        .unwrap();
    let broker = AmqpBroker::connect(config.clone()).await.unwrap();
    assert!(broker.is_ready());
    let events: Vec<_> = EVERY_EVENT_TYPE
        .iter()
        .enumerate()
        .map(|(seq, body)| stamped(body, "round-trip", seq as u64))
        .collect();
    broker.publish(events[0].clone()).await.unwrap();
    broker.publish_batch(events[1..].to_vec()).await.unwrap();
    broker.close().await.unwrap();

    let deliveries = drain(
        config,
        events.len(),
        Duration::from_millis(300),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(deliveries.len(), events.len());
    for (event, delivery) in events.iter().zip(&deliveries) {
        assert_eq!(delivery.body, event.envelope.to_rasa_json().into_bytes());
        let mut expected = MessageProperties::for_event(event, Some("production"));
        expected.timestamp = None;
        assert_eq!(delivery.properties, expected);
        assert_eq!(delivery.properties.delivery_mode, Some(2));
        assert_eq!(
            delivery.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(
            delivery.properties.message_id.as_deref(),
            Some(event.id.as_str())
        );
        assert_eq!(delivery.properties.seq(), event.seq);
        assert_eq!(delivery.source, n.queue);
        assert!(!delivery.redelivered);
    }
    delete_topology(&n.exchange, &n.queue).await;
}

#[tokio::test]
async fn seq_header_is_a_long_integer_on_the_wire() {
    let n = names();
    let config = config(&n.exchange, &n.queue, &n.connection).await;
    let broker = AmqpBroker::connect(config).await.unwrap();
    broker
        .publish(stamped(EVERY_EVENT_TYPE[4], "wire", 7))
        .await
        .unwrap();
    broker.close().await.unwrap();
    let (connection, channel) = raw_channel().await;
    let message = channel
        .basic_get(
            n.queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("one message");
    let headers = message.delivery.properties.headers().clone().unwrap();
    let seq = headers.inner().get("colloquy-seq").unwrap();
    assert_eq!(seq, &lapin::types::AMQPValue::LongLongInt(7));
    let _ = connection.close(200, "OK".into()).await;
    delete_topology(&n.exchange, &n.queue).await;
}

#[tokio::test]
async fn connects_to_a_topology_declared_the_way_rasa_does() {
    let n = names();
    // What Rasa's PikaEventBroker declares: fanout, non-durable exchange; durable queue bound with "".
    let (connection, channel) = raw_channel().await;
    channel
        .exchange_declare(
            n.exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: false,
                auto_delete: false,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            n.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            n.queue.as_str().into(),
            n.exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let config = config(&n.exchange, &n.queue, &n.connection).await;
    let broker = AmqpBroker::connect(config.clone()).await.unwrap();
    broker
        .publish(stamped(EVERY_EVENT_TYPE[0], "rasa-first", 0))
        .await
        .unwrap();
    broker.close().await.unwrap();
    let subscription = AmqpSubscription::connect(config).await.unwrap();
    drop(subscription);
    // The subscription may have taken the message before it was dropped: it is requeued once it is gone.
    wait_until(
        "the message to be ready in the queue",
        Duration::from_secs(10),
        || async { queue_len(&channel, &n.queue).await == 1 },
    )
    .await;
    let _ = connection.close(200, "OK".into()).await;
    delete_topology(&n.exchange, &n.queue).await;
}

#[tokio::test]
async fn rasa_can_declare_its_topology_after_ours() {
    let n = names();
    let config = config(&n.exchange, &n.queue, &n.connection).await;
    let broker = AmqpBroker::connect(config).await.unwrap();
    broker.close().await.unwrap();
    // Rasa's declarations must be accepted as equivalent (a mismatch would close the channel).
    let (connection, channel) = raw_channel().await;
    channel
        .exchange_declare(
            n.exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: false,
                auto_delete: false,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("Rasa's exchange declaration is equivalent to ours");
    channel
        .queue_declare(
            n.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("Rasa's queue declaration is equivalent to ours");
    let _ = connection.close(200, "OK".into()).await;
    delete_topology(&n.exchange, &n.queue).await;
}

#[tokio::test]
async fn a_durable_exchange_of_the_same_name_is_a_clear_error() {
    let n = names();
    let (connection, channel) = raw_channel().await;
    channel
        .exchange_declare(
            n.exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let config = config(&n.exchange, &n.queue, &n.connection).await;
    let error = AmqpBroker::connect(config.clone()).await.unwrap_err();
    assert!(error.is_config() && !error.is_transient(), "{error:?}");
    let message = error.chain();
    assert!(
        message.contains(&format!(
            "refused to declare exchange `{}` as a fanout exchange, non-durable",
            n.exchange
        )),
        "{message}"
    );
    assert!(
        message.contains("PRECONDITION_FAILED") && message.contains("durable"),
        "{message}"
    );
    let error = AmqpSubscription::connect(config).await.unwrap_err();
    assert!(error.is_config(), "{error:?}");
    channel
        .exchange_delete(n.exchange.as_str().into(), Default::default())
        .await
        .unwrap();
    let _ = connection.close(200, "OK".into()).await;
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let url = colloquy_testkit::amqp_url().await;
    let (_, rest) = url.split_once('@').unwrap();
    let config = AmqpConfig::from_url(&format!("amqp://guest:wrong-password@{rest}"))
        .unwrap()
        .with_connection_attempts(NonZeroU32::new(3).unwrap());
    let error = AmqpBroker::connect(config).await.unwrap_err();
    assert!(
        error.is_config() && !error.is_transient(),
        "{}",
        error.chain()
    );
    let message = error.to_string();
    assert!(
        message.contains("refused the connection: wrong username or password"),
        "{message}"
    );
    assert!(
        !error.chain().contains("wrong-password"),
        "{}",
        error.chain()
    );
}

#[tokio::test]
async fn an_unreachable_broker_is_a_retryable_error_after_the_attempts() {
    let config = AmqpConfig::from_url("amqp://guest:guest@127.0.0.1:1/%2f")
        .unwrap()
        .with_connection_attempts(NonZeroU32::new(2).unwrap())
        .with_retry_delays(Duration::from_millis(10), Duration::from_millis(20))
        .unwrap();
    let error = AmqpBroker::connect(config).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("cannot connect to RabbitMQ at amqp://guest@127.0.0.1:1/%2f"),
        "{error}"
    );
}

fn unreachable_config(buffer: usize, fail_when_full: bool) -> AmqpConfig {
    AmqpConfig::from_url("amqp://guest:guest@127.0.0.1:1/%2f")
        .unwrap()
        .with_buffer_capacity(NonZeroUsize::new(buffer).unwrap())
        .with_confirm_window(NonZeroUsize::new(1).unwrap())
        .with_fail_when_full(fail_when_full)
        .with_connection_attempts(NonZeroU32::new(2).unwrap())
        .with_retry_delays(Duration::from_millis(10), Duration::from_millis(50))
        .unwrap()
}

#[tokio::test]
async fn a_full_buffer_makes_publish_wait() {
    let broker = AmqpBroker::spawn(unreachable_config(2, false));
    assert!(!broker.is_ready());
    // Nothing is taken from the buffer while disconnected: two events fit.
    for seq in 0..2 {
        broker
            .publish(stamped(EVERY_EVENT_TYPE[4], "bp", seq))
            .await
            .unwrap();
    }
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        broker.publish(stamped(EVERY_EVENT_TYPE[4], "bp", 2)),
    )
    .await;
    assert!(
        waiting.is_err(),
        "publish should wait while the buffer is full"
    );
    assert_eq!(broker.unconfirmed(), 2);
    // Flush reports the undelivered events once the connection attempts are exhausted.
    let error = tokio::time::timeout(Duration::from_secs(10), broker.flush())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, Error::Unconfirmed { pending: 2, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("2 events handed over are not confirmed by RabbitMQ"),
        "{error}"
    );
}

#[tokio::test]
async fn a_full_buffer_fails_at_once_when_configured() {
    let broker = AmqpBroker::spawn(unreachable_config(2, true));
    let mut handed_over = 0;
    let error = loop {
        match broker
            .publish(stamped(EVERY_EVENT_TYPE[4], "bp", handed_over))
            .await
        {
            Ok(()) => handed_over += 1,
            Err(error) => break error,
        }
        assert!(handed_over <= 2, "the buffer should be full after 2 events");
    };
    assert!(error.is_buffer_full() && error.is_transient(), "{error:?}");
    assert!(
        error.to_string().contains("buffer of 2 events is full"),
        "{error}"
    );
    let batch = (10..12)
        .map(|seq| stamped(EVERY_EVENT_TYPE[4], "bp", seq))
        .collect();
    assert!(
        broker
            .publish_batch(batch)
            .await
            .unwrap_err()
            .is_buffer_full()
    );
}

#[tokio::test]
async fn acks_multiple_acks_and_rejects() {
    let n = names();
    let config = config(&n.exchange, &n.queue, &n.connection)
        .await
        .with_prefetch(NonZeroU16::new(100).unwrap());
    let mut subscription = AmqpSubscription::connect(config.clone()).await.unwrap();
    assert!(subscription.is_ready());
    let broker = AmqpBroker::connect(config.clone()).await.unwrap();
    let events: Vec<_> = (0..10)
        .map(|seq| stamped(EVERY_EVENT_TYPE[4], "acks", seq))
        .collect();
    broker.publish_batch(events).await.unwrap();
    broker.close().await.unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..10 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        deliveries.push(delivery);
    }
    assert_eq!(deliveries[0].acker.ack().await.unwrap(), AckOutcome::Acked);
    assert_eq!(
        deliveries[1].acker.reject().await.unwrap(),
        AckOutcome::Acked
    );
    assert_eq!(
        deliveries[5].acker.ack_up_to().await.unwrap(),
        AckOutcome::Acked
    );
    // Covered by the multiple-ack: not sent again (RabbitMQ would close the channel).
    assert_eq!(deliveries[3].acker.ack().await.unwrap(), AckOutcome::Acked);
    assert_eq!(
        deliveries[4].acker.reject().await.unwrap(),
        AckOutcome::Acked
    );
    assert_eq!(
        deliveries[9].acker.ack_up_to().await.unwrap(),
        AckOutcome::Acked
    );
    assert!(subscription.is_ready());
    subscription.cancel().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none(), "{end:?}");
    let (connection, channel) = raw_channel().await;
    wait_until("the queue to be empty", Duration::from_secs(10), || async {
        queue_len(&channel, &n.queue).await == 0
    })
    .await;
    let _ = connection.close(200, "OK".into()).await;
    delete_topology(&n.exchange, &n.queue).await;
}

#[tokio::test]
async fn a_stale_ack_is_not_sent_on_the_new_channel_and_the_message_is_redelivered() {
    let n = names();
    let config = config(&n.exchange, &n.queue, &n.connection).await;
    let mut subscription = AmqpSubscription::connect(config.clone()).await.unwrap();
    let broker = AmqpBroker::connect(config.clone().with_connection_name(unique_name("pub")))
        .await
        .unwrap();
    broker
        .publish(stamped(EVERY_EVENT_TYPE[4], "stale", 0))
        .await
        .unwrap();
    broker
        .publish(stamped(EVERY_EVENT_TYPE[4], "stale", 1))
        .await
        .unwrap();
    broker.close().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!first.redelivered);

    wait_until(
        "the subscription's connection to be listed",
        Duration::from_secs(10),
        || async { close_connections_named(&n.connection) > 0 },
    )
    .await;
    wait_until(
        "the subscription to notice",
        Duration::from_secs(10),
        || async { !subscription.is_ready() },
    )
    .await;
    // Redelivered on the new channel...
    let again = tokio::time::timeout(Duration::from_secs(20), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(again.redelivered);
    assert_eq!(again.body, first.body);
    assert!(subscription.is_ready());
    // ...while the old deliveries' acks are stale and not sent (the new channel stays open).
    assert_eq!(first.acker.ack().await.unwrap(), AckOutcome::Stale);
    assert_eq!(second.acker.ack_up_to().await.unwrap(), AckOutcome::Stale);
    let again_second = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(again_second.body, second.body);
    assert_eq!(
        again_second.acker.ack_up_to().await.unwrap(),
        AckOutcome::Acked
    );
    assert!(subscription.is_ready());
    let (connection, channel) = raw_channel().await;
    wait_until("the queue to be empty", Duration::from_secs(10), || async {
        queue_len(&channel, &n.queue).await == 0
    })
    .await;
    let _ = connection.close(200, "OK".into()).await;
    subscription.cancel().await.unwrap();
    delete_topology(&n.exchange, &n.queue).await;
}

#[tokio::test]
async fn publish_raw_is_confirmed_with_its_properties() {
    let n = names();
    let config = config(&n.exchange, &n.queue, &n.connection).await;
    let broker = AmqpBroker::connect(config.clone()).await.unwrap();
    let mut properties = MessageProperties {
        message_id: Some("raw-1".into()),
        ..MessageProperties::default()
    };
    properties
        .headers
        .insert("x-reason".into(), serde_json::json!("not json"));
    broker
        .publish_raw(b"\xff not json".to_vec(), &properties)
        .await
        .unwrap();
    broker.flush().await.unwrap();
    assert_eq!(broker.unconfirmed(), 0);
    broker.close().await.unwrap();
    let deliveries = drain(
        config,
        1,
        Duration::from_millis(300),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(deliveries[0].body, b"\xff not json");
    assert_eq!(
        deliveries[0].properties.message_id.as_deref(),
        Some("raw-1")
    );
    assert_eq!(deliveries[0].properties.delivery_mode, Some(2));
    assert_eq!(deliveries[0].properties.headers["x-reason"], "not json");
    delete_topology(&n.exchange, &n.queue).await;
}
