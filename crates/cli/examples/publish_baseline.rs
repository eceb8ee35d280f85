//! The baseline for `colloquy import`'s throughput: a minimal lapin publisher that sends each line of a JSON
//! lines file as it is (no parsing, no ids, no tracker), persistent, with publisher confirms pipelined through
//! a window of 1000 — the same window as `colloquy import` — to a fanout exchange bound to one queue.
//!
//! `cargo run --release -p colloquy --example publish_baseline -- FILE [AMQP_URL]` prints events/s, first with
//! bare properties (delivery mode only, as Rasa publishes), then with the properties `colloquy import` sends
//! (message id, content type, headers `colloquy-event-id` and `colloquy-seq`); it deletes its queue and
//! exchange at the end.

use std::collections::VecDeque;
use std::time::Instant;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

const WINDOW: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .expect("usage: publish_baseline FILE [AMQP_URL]");
    let url = args
        .next()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let text = std::fs::read_to_string(&file)?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let name = format!("publish-baseline-{}", std::process::id());

    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            name.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            name.as_str().into(),
            name.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    for with_properties in [false, true] {
        let started = Instant::now();
        publish(&channel, &name, &lines, with_properties).await?;
        let elapsed = started.elapsed();
        println!(
            "raw lapin publish ({}): {} events in {:.2} s = {:.0} events/s",
            if with_properties {
                "colloquy's properties"
            } else {
                "bare properties"
            },
            lines.len(),
            elapsed.as_secs_f64(),
            lines.len() as f64 / elapsed.as_secs_f64()
        );
        channel
            .queue_purge(name.as_str().into(), Default::default())
            .await?;
    }
    channel
        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await?;
    channel
        .exchange_delete(name.as_str().into(), Default::default())
        .await?;
    connection.close(200, "done".into()).await?;
    Ok(())
}

async fn publish(
    channel: &lapin::Channel,
    name: &str,
    lines: &[&str],
    with_properties: bool,
) -> anyhow::Result<()> {
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for (seq, line) in lines.iter().enumerate() {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if with_properties {
            // An id of the same shape as ours: 64 hex digits.
            let id = format!("{:064x}", seq as u128 * 0x9e37_79b9_7f4a_7c15);
            let mut headers = FieldTable::default();
            headers.insert(
                ShortString::from("colloquy-event-id"),
                AMQPValue::LongString(LongString::from(id.as_bytes())),
            );
            headers.insert(
                ShortString::from("colloquy-seq"),
                AMQPValue::LongLongInt(seq as i64),
            );
            properties = properties
                .with_message_id(ShortString::from(id.as_str()))
                .with_content_type(ShortString::from("application/json"))
                .with_headers(headers);
        }
        if in_flight.len() == WINDOW {
            let confirm: lapin::PublisherConfirm = in_flight.pop_front().expect("non-empty");
            anyhow::ensure!(confirm.await?.is_ack(), "nack");
        }
        let confirm = channel
            .basic_publish(
                name.into(),
                "".into(),
                BasicPublishOptions::default(),
                line.as_bytes(),
                properties,
            )
            .await?;
        in_flight.push_back(confirm);
    }
    for confirm in in_flight {
        anyhow::ensure!(confirm.await?.is_ack(), "nack");
    }
    Ok(())
}
