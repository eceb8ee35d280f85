//! What a user reads when RabbitMQ is not there: connecting fails after the configured attempts, not a
//! connect timeout each, and `chain()` says "connection refused".

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use colloquy_broker::{AmqpBroker, AmqpConfig, AmqpSubscription};

#[tokio::test]
async fn a_closed_port_fails_quickly_saying_connection_refused() {
    // A port nobody listens on: bound to learn a free one, then released.
    let port = colloquy_testkit::free_port();
    let config = AmqpConfig::from_url(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
        .unwrap()
        .with_connect_timeout(Duration::from_secs(30))
        .unwrap()
        .with_retry_delays(Duration::from_millis(100), Duration::from_millis(400))
        .unwrap()
        .with_connection_attempts(NonZeroU32::new(3).unwrap());
    let started = Instant::now();
    let error = AmqpBroker::connect(config.clone())
        .await
        .expect_err("nothing listens there");
    let chain = error.chain();
    assert!(started.elapsed() < Duration::from_secs(10), "{chain}");
    assert!(
        chain.to_lowercase().contains("connection refused"),
        "{chain}"
    );
    assert!(error.is_transient(), "{chain}");

    let error = AmqpSubscription::connect(config)
        .await
        .expect_err("nothing listens there");
    assert!(
        error.chain().to_lowercase().contains("connection refused"),
        "{}",
        error.chain()
    );
}
