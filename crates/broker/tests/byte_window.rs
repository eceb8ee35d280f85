//! The subscription's byte bound against the real RabbitMQ: multi-megabyte messages with a small bound are
//! never held (received and not yet acknowledged) beyond it, and all of them still arrive, in order.

use colloquy_testkit::broker as common;

use std::num::NonZeroUsize;
use std::time::Duration;

use colloquy_broker::{AmqpSubscription, Next, Subscription, UnackedBytes};
use colloquy_testkit::unique_name;
use common::*;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};

const BODY_BYTES: usize = 3_000_000;
const MESSAGES: usize = 8;
/// Room for two of the bodies (each counted as 4 MiB, its size rounded up to a power of two).
const BOUND: usize = 10 << 20;
/// How long without a delivery means that RabbitMQ sends no more for now.
const QUIET: Duration = Duration::from_millis(300);

fn body(n: usize) -> Vec<u8> {
    let mut body = vec![b'a' + (n % 26) as u8; BODY_BYTES];
    body[..8].copy_from_slice(&(n as u64).to_be_bytes());
    body
}

async fn publish(exchange: &str) {
    let (connection, channel) = raw_channel().await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for n in 0..MESSAGES {
        channel
            .basic_publish(
                exchange.into(),
                "".into(),
                BasicPublishOptions::default(),
                &body(n),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    connection.close(200, "OK".into()).await.unwrap();
}

/// Takes deliveries without acknowledging them until none comes for [`QUIET`], then acknowledges all of them;
/// checks the counter against `bound` after every delivery. Returns the bodies' numbers, in the order received.
async fn hold_until_quiet(
    subscription: &mut AmqpSubscription,
    unacked: &UnackedBytes,
    bound: usize,
) -> Vec<u64> {
    let mut received = Vec::new();
    let mut last = None;
    let mut quiet = 0;
    while received.len() < MESSAGES {
        match subscription.next_within(QUIET).await.unwrap() {
            Next::Delivery(delivery) => {
                assert_eq!(delivery.body.len(), BODY_BYTES);
                received.push(u64::from_be_bytes(delivery.body[..8].try_into().unwrap()));
                last = Some(delivery.acker);
                quiet = 0;
            }
            Next::Idle => {
                if let Some(acker) = last.take() {
                    acker.ack_up_to().await.unwrap();
                }
                quiet += 1;
                assert!(
                    quiet < 20,
                    "no delivery for {quiet} quiet periods; got {received:?}"
                );
            }
            Next::Ended => panic!("the subscription ended"),
        }
        assert!(
            unacked.current() <= bound,
            "{} bytes held",
            unacked.current()
        );
    }
    if let Some(acker) = last {
        acker.ack_up_to().await.unwrap();
    }
    received
}

#[tokio::test(flavor = "current_thread")]
async fn large_messages_are_held_within_the_byte_bound_and_all_arrive_in_order() {
    let guard = TopologyGuard {
        exchange: unique_name("bytes-ex"),
        queue: unique_name("bytes-q"),
    };
    let config = config(&guard.exchange, &guard.queue, &unique_name("bytes-conn")).await;
    let mut subscription =
        AmqpSubscription::connect_bounded(config.clone(), NonZeroUsize::new(BOUND).unwrap())
            .await
            .unwrap();
    let unacked = subscription.unacked_bytes();
    publish(&guard.exchange).await;
    let received = hold_until_quiet(&mut subscription, &unacked, BOUND).await;
    assert_eq!(
        received,
        (0..MESSAGES as u64).collect::<Vec<_>>(),
        "all, in order"
    );
    assert!(
        unacked.peak() <= BOUND,
        "peak {} over {BOUND}",
        unacked.peak()
    );
    assert!(
        unacked.peak() >= 2 * BODY_BYTES,
        "the window grew to two bodies (peak {})",
        unacked.peak()
    );
    wait_for_zero(&unacked).await;
    subscription.cancel().await.unwrap();
    drop(subscription);

    // Control: without the bound, the prefetch alone lets RabbitMQ send every message at once.
    let mut subscription = AmqpSubscription::connect(config).await.unwrap();
    let unacked = subscription.unacked_bytes();
    publish(&guard.exchange).await;
    let received = hold_until_quiet(&mut subscription, &unacked, usize::MAX).await;
    assert_eq!(received.len(), MESSAGES);
    assert!(
        unacked.peak() > BOUND,
        "peak {} without the bound",
        unacked.peak()
    );
}

async fn wait_for_zero(unacked: &UnackedBytes) {
    colloquy_testkit::wait_until(
        "the acks release every byte",
        Duration::from_secs(10),
        || {
            let unacked = unacked.clone();
            async move { unacked.current() == 0 }
        },
    )
    .await;
}
