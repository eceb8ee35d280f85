//! `colloquy serve`.

use anyhow::Result;
use colloquy_server::{Server, ServerConfig};

use crate::cli::ServeArgs;
use crate::settings::{Endpoints, amqp_config, env_lookup};

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let database_url = crate::settings::database_url(&args.database, endpoints)
        .map_err(|error| super::ConfigError(format!("{error:#}")))?;
    // A broker only when one is named: --amqp-url, or an endpoints file with an `event_broker` section.
    let broker =
        if args.broker.amqp_url.is_some() || endpoints.is_some_and(Endpoints::has_event_broker) {
            Some(
                amqp_config(&args.broker, endpoints)
                    .map_err(|error| super::ConfigError(format!("{error:#}")))?
                    .with_connection_name(format!("colloquy-serve-{}", std::process::id())),
            )
        } else {
            None
        };
    let tracker_store = match (&args.tracker_store, endpoints) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(endpoints)) => endpoints
            .sql_tracker_store(env_lookup)
            .map_err(|error| super::ConfigError(format!("{error:#}")))?,
        (None, None) => None,
    };
    let config = ServerConfig {
        database_url,
        listen: args.http,
        auth_token: args.auth_token,
        domain: args.domain,
        tracker_store,
        broker,
        consumer_metrics: args.consumer_metrics,
        ..ServerConfig::new("")
    };
    let server = Server::bind(config).await.map_err(server_error)?;
    let addr = server.local_addr();
    eprintln!("colloquy serve: http://{addr}/");
    server
        .run(super::shutdown_signal())
        .await
        .map_err(server_error)
}

/// A server error as the CLI reports it: a configuration error (exit 2) when the settings are at fault.
fn server_error(error: colloquy_server::Error) -> anyhow::Error {
    if error.is_config() {
        super::ConfigError(error.to_string()).into()
    } else {
        error.into()
    }
}
