//! `colloquy consume`: the consumer service.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use colloquy_consumer::{Consumer, ConsumerOptions, Database, redact};

use crate::cli::ConsumeArgs;
use crate::settings::{Endpoints, amqp_config, prefetch_for};

/// Runs the consumer until SIGTERM / SIGINT.
pub async fn run(args: ConsumeArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let (database, url) = super::open_database(&args.database, endpoints)?;
    let amqp = amqp_config(&args.broker, endpoints)
        .map_err(|error| super::ConfigError(format!("{error:#}")))?
        .with_prefetch(prefetch_for(args.batch_size, args.prefetch))
        .with_connection_name(format!("colloquy-consume-{}", std::process::id()));
    migrate_when_ready(&database, &url).await?;

    let queues: Vec<&str> = amqp.queues().iter().map(|queue| queue.as_str()).collect();
    tracing::info!(
        broker = %amqp.target(),
        exchange = amqp.exchange().as_str(),
        queues = ?queues,
        database = %redact(&url),
        batch_size = args.batch_size,
        prefetch = amqp.prefetch().get(),
        "Starting the consumer."
    );
    let subscription = super::subscribe(amqp).await?;
    let options = ConsumerOptions {
        batch_size: args.batch_size as usize,
        batch_timeout: Duration::from_millis(args.batch_timeout_ms),
        max_body_bytes: args.max_body_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        http: args.http,
    };
    let consumer = Consumer::new(Arc::new(database.clone()), options);
    consumer
        .run(Box::new(subscription), super::shutdown_signal())
        .await?;
    database.close().await;
    Ok(())
}

/// Applies the migrations, waiting (with backoff, up to [`super::OUTAGE_LIMIT`]) for a database that is still
/// starting.
async fn migrate_when_ready(database: &Database, url: &str) -> Result<()> {
    let mut outage = super::Outage::default();
    loop {
        match database.migrate().await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_transient() => {
                outage
                    .wait(&error, "The database does not answer yet.")
                    .await
                    .with_context(|| format!("the database at {} does not answer", redact(url)))?;
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot prepare the database at {}", redact(url)));
            }
        }
    }
}
