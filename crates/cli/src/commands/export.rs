//! `colloquy export`.

use anyhow::Result;

use crate::cli::ExportArgs;
use crate::settings::Endpoints;

/// Runs `colloquy export`.
pub async fn run(_args: ExportArgs, _endpoints: Option<&Endpoints>) -> Result<()> {
    anyhow::bail!("not implemented yet")
}
