//! Publish throughput: `AmqpBroker` against a minimal raw lapin publisher (pipelined confirms, same window),
//! both publishing the same persistent ~500-byte Rasa-shaped events. `COLLOQUY_BENCH_EVENTS` sets the count
//! (default 200000); `AMQP_URL` the broker. Run: `cargo bench -p colloquy-broker --bench publish`.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use colloquy_broker::{AmqpBroker, AmqpConfig, EventBroker};
use colloquy_events::{Envelope, EventId, StampedEnvelope};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

const WINDOW: usize = 1_000;

fn events(count: usize) -> Vec<StampedEnvelope> {
    let padding = "x".repeat(300);
    (0..count)
        .map(|i| {
            let sender = format!("bench-{}", i % 100);
            let seq = (i / 100) as u64;
            let body = format!(
                r#"{{"sender_id": "{sender}", "event": "user", "timestamp": 1700000000.5, "text": "message {i} {padding}", "parse_data": {{"intent": {{"name": "greet", "confidence": 0.9}}, "entities": []}}, "input_channel": "rest", "message_id": "m{i}", "metadata": {{}}}}"#
            );
            let envelope = Envelope::from_json(body.as_bytes()).unwrap();
            let id = EventId::for_tracked(&sender, seq, body.as_bytes());
            StampedEnvelope { envelope, id, seq: Some(seq) }
        })
        .collect()
}

async fn declare(channel: &Channel, exchange: &str, queue: &str) {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.into(),
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
            queue.into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

async fn cleanup(channel: &Channel, exchange: &str, queue: &str) {
    // Deleting the queue drops its messages (RabbitMQ keeps bodies in RAM).
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

/// The baseline: serialise, publish with the same properties, keep at most WINDOW confirms outstanding.
async fn raw_lapin(url: &str, exchange: &str, events: &[StampedEnvelope]) -> Duration {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for event in events {
        if in_flight.len() == WINDOW {
            let confirm: lapin::PublisherConfirm = in_flight.pop_front().unwrap();
            assert!(confirm.await.unwrap().is_ack());
        }
        let body = event.envelope.to_rasa_json();
        let mut headers = FieldTable::default();
        headers.insert(
            "colloquy-event-id".into(),
            AMQPValue::LongString(LongString::from(event.id.as_str())),
        );
        headers.insert(
            "colloquy-seq".into(),
            AMQPValue::LongLongInt(event.seq.unwrap() as i64),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(event.id.as_str()))
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await
            .unwrap();
        in_flight.push_back(confirm);
    }
    for confirm in in_flight {
        assert!(confirm.await.unwrap().is_ack());
    }
    let elapsed = start.elapsed();
    let _ = connection.close(200, "OK".into()).await;
    elapsed
}

async fn ours(url: &str, exchange: &str, queue: &str, events: &[StampedEnvelope]) -> Duration {
    let config = AmqpConfig::from_url(url)
        .unwrap()
        .with_exchange(exchange)
        .unwrap()
        .with_queues([queue])
        .unwrap()
        .with_confirm_window(NonZeroUsize::new(WINDOW).unwrap())
        .with_connection_name("colloquy-bench");
    let broker = AmqpBroker::connect(config).await.unwrap();
    let start = Instant::now();
    for event in events {
        broker.publish(event.clone()).await.unwrap();
    }
    broker.flush().await.unwrap();
    let elapsed = start.elapsed();
    broker.close().await.unwrap();
    elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| colloquy_broker::DEFAULT_URL.to_owned());
    let count: usize = std::env::var("COLLOQUY_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let events = events(count);
    let size = events[0].envelope.to_rasa_json().len();
    let suffix = std::process::id();
    let (exchange, queue) = (format!("bench-ex-{suffix}"), format!("bench-q-{suffix}"));
    let admin = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = admin.create_channel().await.unwrap();

    declare(&channel, &exchange, &queue).await;
    let raw = raw_lapin(&url, &exchange, &events).await;
    cleanup(&channel, &exchange, &queue).await;

    declare(&channel, &exchange, &queue).await;
    let ours = ours(&url, &exchange, &queue, &events).await;
    cleanup(&channel, &exchange, &queue).await;
    let _ = admin.close(200, "OK".into()).await;

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    println!("events: {count} of {size} bytes, persistent, confirm window {WINDOW}");
    println!("raw lapin:   {:>9.0} events/s ({:.2?})", rate(raw), raw);
    println!("AmqpBroker:  {:>9.0} events/s ({:.2?})", rate(ours), ours);
    println!("ratio ours/raw: {:.2}", rate(ours) / rate(raw));
}
