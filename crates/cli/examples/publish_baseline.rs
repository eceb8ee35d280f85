//! The baseline for `colloquy import`'s throughput: a minimal lapin publisher that sends each line of a JSON
//! lines file as it is (no parsing, no ids, no tracker), persistent, with publisher confirms pipelined through
//! a window of 1000 — the same window as `colloquy import` — to a fanout exchange bound to one queue.
//!
//! `cargo run --release -p colloquy --example publish_baseline -- FILE [AMQP_URL]` prints events/s; it deletes
//! its queue and exchange at the end.

use std::collections::VecDeque;
use std::time::Instant;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
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

    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for line in &lines {
        if in_flight.len() == WINDOW {
            let confirm: lapin::PublisherConfirm = in_flight.pop_front().expect("non-empty");
            anyhow::ensure!(confirm.await?.is_ack(), "nack");
        }
        let confirm = channel
            .basic_publish(
                name.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                line.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        in_flight.push_back(confirm);
    }
    for confirm in in_flight {
        anyhow::ensure!(confirm.await?.is_ack(), "nack");
    }
    let elapsed = started.elapsed();
    println!(
        "raw lapin publish: {} events in {:.2} s = {:.0} events/s",
        lines.len(),
        elapsed.as_secs_f64(),
        lines.len() as f64 / elapsed.as_secs_f64()
    );
    channel
        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await?;
    channel
        .exchange_delete(name.as_str().into(), Default::default())
        .await?;
    connection.close(200, "done".into()).await?;
    Ok(())
}
