//! `colloquy`: the command-line service. Thin by design: it parses flags, environment and Rasa's
//! endpoints.yml, sets up logging, wires the library crates together and maps failures to exit codes.
//!
//! Exit codes: 0 success; 1 failure at run time (the message says what and what to do); 2 bad usage or
//! configuration (see [`cli::EXIT_CODES`]).

mod cli;
mod commands;
mod input;
mod progress;
mod settings;
mod streaming_store;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// Exit code for bad usage or configuration (clap uses 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    // The demo prints its own story on stdout; its consumer's start/stop lines would only clutter it.
    // lapin logs every closed connection and refused login at ERROR, in its own words; the broker crate reports
    // what matters (refusals, reconnects, what was not confirmed) in its own lines, so every command leaves
    // lapin out unless RUST_LOG asks.
    let default_level = match cli.command {
        Command::Demo(_) => "warn,lapin=off",
        _ => "info,lapin=off",
    };
    init_tracing(log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        let endpoints = settings::Endpoints::load(cli.endpoints.as_deref())
            .map_err(|error| commands::ConfigError(format!("{error:#}")))?;
        match cli.command {
            Command::Consume(args) => commands::consume::run(args, endpoints.as_ref()).await,
            Command::Migrate(args) => commands::migrate::run(args, endpoints.as_ref()).await,
            Command::DeadLetters(command) => {
                commands::dead_letters::run(command, endpoints.as_ref()).await
            }
            Command::Import(args) => commands::import::run(args, endpoints.as_ref()).await,
            Command::Export(args) => commands::export::run(args, endpoints.as_ref()).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Analytics(command) => {
                commands::analytics::run(command, endpoints.as_ref()).await
            }
            Command::Markers(command) => commands::markers::run(command, endpoints.as_ref()).await,
            Command::Serve(args) => commands::serve::run(args, endpoints.as_ref()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // People read a plain line; log collectors get a structured one.
            match log_format {
                LogFormat::Text => eprintln!("error: {error:#}"),
                LogFormat::Json => {
                    tracing::error!(error = format!("{error:#}"), "Exiting on an error.")
                }
            }
            ExitCode::from(commands::exit_code(&error))
        }
    }
}

/// Whether text logs may carry colour codes: only on a terminal, and not when `NO_COLOR` is set
/// (<https://no-color.org>). Files, pipes and log collectors get plain text.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_logs());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
