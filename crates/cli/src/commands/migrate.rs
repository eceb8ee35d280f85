//! `colloquy migrate`.

use anyhow::{Context, Result};
use colloquy_consumer::{Database, redact};

use crate::cli::DatabaseArgs;
use crate::settings::{Endpoints, database_url};

/// Applies the schema migrations and exits.
pub async fn run(args: DatabaseArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let url = database_url(&args, endpoints)?;
    let database =
        Database::connect_lazy(&url).map_err(|error| super::ConfigError(error.to_string()))?;
    database
        .migrate()
        .await
        .with_context(|| format!("migrating {} failed", redact(&url)))?;
    tracing::info!(database = %redact(&url), "Schema is up to date.");
    database.close().await;
    Ok(())
}
