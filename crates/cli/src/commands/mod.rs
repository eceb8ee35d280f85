//! One module per subcommand.

pub mod consume;
pub mod dead_letters;
pub mod migrate;

/// The database named by the flags, environment or endpoints.yml (connected lazily), and its URL.
pub fn open_database(
    args: &crate::cli::DatabaseArgs,
    endpoints: Option<&crate::settings::Endpoints>,
) -> anyhow::Result<(colloquy_consumer::Database, String)> {
    let url = crate::settings::database_url(args, endpoints)
        .map_err(|error| ConfigError(format!("{error:#}")))?;
    let database = colloquy_consumer::Database::connect_lazy(&url)
        .map_err(|error| ConfigError(error.to_string()))?;
    Ok((database, url))
}

/// A configuration problem: reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The exit code for a failure: 2 for configuration problems, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<ConfigError>()) {
        crate::EXIT_USAGE
    } else {
        crate::EXIT_FAILURE
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only SIGINT stops the consumer.");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!(signal = "SIGINT", "Stop requested."),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "Stop requested."),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
        tracing::info!(signal = "SIGINT", "Stop requested.");
    }
}
