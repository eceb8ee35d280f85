//! `colloquy analytics rebuild`: derives Rasa Pro's analytics tables from the events a database holds.

use anyhow::{Context, Result};
use colloquy_storage::{AnalyticsSettings, ConnectOptions, Database, redact};

use crate::cli::{AnalyticsCommand, AnalyticsRebuildArgs};
use crate::progress::{Progress, Unit};
use crate::settings::Endpoints;

/// Runs an `analytics` subcommand.
pub async fn run(command: AnalyticsCommand, endpoints: Option<&Endpoints>) -> Result<()> {
    match command {
        AnalyticsCommand::Rebuild(args) => rebuild(args, endpoints).await,
    }
}

/// Retries `op` through a passing database outage (bounded by [`super::OUTAGE_LIMIT`]).
async fn with_retries<T, F, Fut>(what: &'static str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = colloquy_storage::Result<T>>,
{
    let mut outage = super::Outage::default();
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() => outage.wait(&error, what).await?,
            Err(error) => return Err(super::storage_error(error)),
        }
    }
}

async fn rebuild(args: AnalyticsRebuildArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let (database, url) =
        super::open_database(&args.database, endpoints, &ConnectOptions::default())?;
    let outcome = rebuild_on(&database, &args).await;
    database.close().await;
    outcome.with_context(|| format!("analytics rebuild of {}", redact(&url)))
}

async fn rebuild_on(database: &Database, args: &AnalyticsRebuildArgs) -> Result<()> {
    with_retries("The database is not reachable; retrying.", || {
        database.require_events_table()
    })
    .await?;
    with_retries("Creating the analytics tables failed; retrying.", || {
        database.migrate_analytics()
    })
    .await?;
    if args.from_scratch {
        with_retries("Emptying the analytics tables failed; retrying.", || {
            database.reset_analytics()
        })
        .await?;
    }
    let senders = with_retries("Reading the conversations failed; retrying.", || {
        database.sender_ids()
    })
    .await?;
    let settings = AnalyticsSettings::default();
    let progress = Progress::new(
        args.progress,
        "Derived",
        Unit::Conversations,
        Some(senders.len() as u64),
    );
    let (mut done, mut derived) = (0u64, 0u64);
    for chunk in senders.chunks(args.conversations_per_transaction as usize) {
        let step = with_retries("Deriving analytics failed; retrying.", || {
            database.derive_analytics(chunk, &settings)
        })
        .await?;
        done += step.conversations;
        derived += step.events;
        progress.advance(step.events, done);
    }
    progress.finish();
    let elapsed = progress.elapsed();
    tracing::info!(
        conversations = done,
        events = derived,
        seconds = elapsed.as_secs_f64(),
        "The analytics tables are up to date."
    );
    eprintln!(
        "Analytics up to date: {done} conversations, {derived} events newly derived in {:.1} s.",
        elapsed.as_secs_f64()
    );
    Ok(())
}
