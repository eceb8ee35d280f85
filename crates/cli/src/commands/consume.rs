//! `colloquy consume`: the consumer service.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use colloquy_consumer::{AnalyticsSink, Consumer, ConsumerOptions, EventSink};
use colloquy_storage::{AnalyticsSettings, ConnectOptions, redact};

use crate::cli::ConsumeArgs;
use crate::settings::{Endpoints, amqp_config, batch_size_for, prefetch_for};

/// Runs the consumer until SIGTERM / SIGINT. The database is prepared by the consumer itself, which waits out
/// a database that is down or failing (with `/health` saying why) and stops with exit code 2 on one that only
/// the operator can fix.
pub async fn run(args: ConsumeArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let (database, url) =
        super::open_database(&args.database, endpoints, &ConnectOptions::default())?;
    let batch_size = batch_size_for(args.batch_size, args.analytics);
    let amqp = amqp_config(&args.broker, endpoints)
        .map_err(|error| super::ConfigError(format!("{error:#}")))?
        .with_prefetch(prefetch_for(batch_size, args.prefetch))
        .with_connection_name(format!("colloquy-consume-{}", std::process::id()));
    let max_body_bytes = usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX);
    let max_inflight_bytes = match args.max_inflight_bytes {
        Some(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
        None => ConsumerOptions::default_max_inflight_bytes(max_body_bytes),
    };

    let queues: Vec<&str> = amqp.queues().iter().map(|queue| queue.as_str()).collect();
    tracing::info!(
        broker = %amqp.target(),
        exchange = amqp.exchange().as_str(),
        queues = ?queues,
        database = %redact(&url),
        batch_size,
        prefetch = amqp.prefetch().get(),
        max_inflight_bytes,
        analytics = args.analytics,
        "Starting the consumer."
    );
    // The same bound for what RabbitMQ may have sent as for what the consumer takes.
    let max_unacked_bytes =
        std::num::NonZeroUsize::new(max_inflight_bytes).unwrap_or(std::num::NonZeroUsize::MIN);
    let subscription = super::subscribe(amqp, max_unacked_bytes).await?;
    let options = ConsumerOptions {
        batch_size,
        batch_timeout: Duration::from_millis(args.batch_timeout_ms),
        max_body_bytes,
        max_inflight_bytes,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        http: args.http,
    };
    let sink: Arc<dyn EventSink> = if args.analytics {
        Arc::new(AnalyticsSink::new(
            database.clone(),
            AnalyticsSettings::default(),
        ))
    } else {
        Arc::new(database.clone())
    };
    let consumer = Consumer::new(sink, options);
    let outcome = consumer
        .run(Box::new(subscription), super::shutdown_signal())
        .await;
    database.close().await;
    match outcome {
        Ok(_) => Ok(()),
        Err(error) if error.is_configuration() => Err(super::ConfigError(format!(
            "{error} (database {}). What to do: check the credentials, that the database exists and that its \
             schema is Rasa's (`colloquy migrate`); undelivered messages stay in the queue",
            redact(&url)
        ))
        .into()),
        Err(error) => {
            Err(error).with_context(|| format!("the consumer stopped (database {})", redact(&url)))
        }
    }
}
