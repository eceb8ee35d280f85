//! `colloquy migrate`.

use anyhow::{Context, Result};
use colloquy_consumer::redact;

use crate::cli::DatabaseArgs;
use crate::settings::Endpoints;

/// Applies the schema migrations and exits.
pub async fn run(args: DatabaseArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let (database, url) = super::open_database(&args, endpoints)?;
    database
        .migrate()
        .await
        .with_context(|| format!("migrating {} failed", redact(&url)))?;
    tracing::info!(database = %redact(&url), "Schema is up to date.");
    database.close().await;
    Ok(())
}
