//! `colloquy migrate`.

use anyhow::Result;
use colloquy_storage::{ConnectOptions, Schema, redact};

use crate::cli::DatabaseArgs;
use crate::settings::Endpoints;

/// Applies the schema migrations and exits.
pub async fn run(args: DatabaseArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let (database, url) = super::open_database(&args, endpoints, &ConnectOptions::default())?;
    database
        .migrate(Schema::Events)
        .await
        .map_err(super::storage_error)?;
    tracing::info!(database = %redact(&url), "Schema is up to date.");
    database.close().await;
    Ok(())
}
