//! `colloquy markers evaluate`: Rasa 3.6's `rasa evaluate markers all` on the events of a database.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use colloquy_analytics::markers::{
    Evaluator, MarkerConfig, TagNegation, patterns_of, write_markers_csv, write_overall_statistics,
    write_per_session_statistics,
};
use colloquy_events::Event;
use colloquy_storage::{ConnectOptions, Database, redact};

use crate::cli::{MarkersCommand, MarkersEvaluateArgs, MarkersUploadArgs};
use crate::settings::Endpoints;

/// Runs a `markers` subcommand.
pub async fn run(command: MarkersCommand, endpoints: Option<&Endpoints>) -> Result<()> {
    match command {
        MarkersCommand::Evaluate(args) => evaluate(args, endpoints).await,
        MarkersCommand::Upload(args) => upload(args, endpoints).await,
    }
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let file = File::create(path).map_err(|error| {
        super::ConfigError(format!("cannot create {}: {error}", path.display()))
    })?;
    let mut out = BufWriter::new(file);
    write(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn evaluate(args: MarkersEvaluateArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let yaml = std::fs::read_to_string(&args.config).map_err(|error| {
        super::ConfigError(format!("cannot read {}: {error}", args.config.display()))
    })?;
    let config = MarkerConfig::from_yaml(&yaml, TagNegation::AsRasa3_6)
        .map_err(|error| super::ConfigError(format!("{}: {error}", args.config.display())))?;
    let (database, url) =
        super::open_database(&args.database, endpoints, &ConnectOptions::read_only())?;
    let outcome = evaluate_on(&database, &config, &args).await;
    database.close().await;
    outcome.with_context(|| format!("markers evaluate on {}", redact(&url)))
}

async fn evaluate_on(
    database: &Database,
    config: &MarkerConfig,
    args: &MarkersEvaluateArgs,
) -> Result<()> {
    database
        .require_events_table()
        .await
        .map_err(super::storage_error)?;
    let senders = database.sender_ids().await.map_err(super::storage_error)?;
    let mut evaluator = Evaluator::new(config);
    let mut results = Vec::with_capacity(senders.len());
    let mut events_read = 0u64;
    for sender in &senders {
        let rows = database
            .conversation_rows(sender)
            .await
            .map_err(super::storage_error)?;
        let events = rows
            .iter()
            .map(|row| {
                Event::from_json(row.data.as_bytes()).map_err(|error| {
                    anyhow!(
                        "row {} of conversation `{sender}` is not a readable event: {error}",
                        row.row_id
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        events_read += events.len() as u64;
        results.push(evaluator.evaluate(sender, &events));
    }
    write_file(&args.output_file, |out| write_markers_csv(out, &results))?;
    if let Some(prefix) = &args.stats_file_prefix {
        write_file(Path::new(&format!("{prefix}-overall.csv")), |out| {
            write_overall_statistics(out, &results)
        })?;
        write_file(Path::new(&format!("{prefix}-per-session.csv")), |out| {
            write_per_session_statistics(out, &results)
        })?;
    }
    tracing::info!(
        conversations = senders.len(),
        events = events_read,
        markers = config.markers.len(),
        "Markers evaluated."
    );
    Ok(())
}

async fn upload(args: MarkersUploadArgs, endpoints: Option<&Endpoints>) -> Result<()> {
    let yaml = std::fs::read_to_string(&args.config).map_err(|error| {
        super::ConfigError(format!("cannot read {}: {error}", args.config.display()))
    })?;
    let patterns = patterns_of(&yaml, TagNegation::AsRasa3_6)
        .map_err(|error| super::ConfigError(format!("{}: {error}", args.config.display())))?;
    let (database, url) =
        super::open_database(&args.database, endpoints, &ConnectOptions::default())?;
    let outcome = async {
        database
            .migrate_analytics()
            .await
            .map_err(super::storage_error)?;
        database
            .upload_patterns(&patterns)
            .await
            .map_err(super::storage_error)
    }
    .await;
    database.close().await;
    outcome.with_context(|| format!("markers upload to {}", redact(&url)))?;
    eprintln!("Uploaded {} active patterns.", patterns.len());
    Ok(())
}
